// The agent's phone settings as the server hands them out
// (GET /api/telephony/agents/me/phone, smeline/telephony/http.py), turned into
// the Softphone wrapper's settings. The server answers 503 when telephony is
// not configured and 403 for a role without a phone: both mean "no phone",
// said plainly by the panel, never retried in a loop.
import type { ApiClient } from '../api'
import type { SoftphoneSettings } from './softphone'

export const PHONE_SETTINGS_PATH = '/api/telephony/agents/me/phone'

/** The server's PhoneSettingsOut, field for field. */
export interface PhoneSettingsResponse {
  endpoint: string
  sip_uri: string
  authorization_user: string
  password: string
  display_name: string
  ws_url: string
  ice_servers: string[]
  codecs: string[]
  dtmf: string
}

export function fetchPhoneSettings(api: Pick<ApiClient, 'request'>): Promise<PhoneSettingsResponse> {
  return api.request<PhoneSettingsResponse>('GET', PHONE_SETTINGS_PATH)
}

/**
 * The wrapper's settings. ICE servers arrive as URLs (`stun:…`, `turn:…`):
 * each becomes one RTCIceServer; none by default (a public STUN server is
 * blocked in China and makes JsSIP's answer wait for ICE gathering). The
 * codecs (PCMA, PCMU) and the DTMF mode (rfc4733) are what the wrapper always
 * does (sdp.ts, sendDtmf): the server states them for the administrator.
 */
export function toSoftphoneSettings(response: PhoneSettingsResponse): SoftphoneSettings {
  return {
    sipUri: response.sip_uri,
    authorizationUser: response.authorization_user || undefined,
    password: response.password,
    displayName: response.display_name || undefined,
    wssUrl: response.ws_url || null,
    iceServers: response.ice_servers.filter((url) => url.trim() !== '').map((url) => ({ urls: url.trim() })),
  }
}
