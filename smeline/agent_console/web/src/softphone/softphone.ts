// The agent's WebRTC phone: a thin wrapper around JsSIP's UA with the
// settings that worked against a real Asterisk (WORKING-CONFIG.txt of the
// recordings): one WSS socket, register, no session timers, answer audio
// only with `iceServers: []` (JsSIP waits for ICE gathering before its 200
// OK, and an unreachable STUN server makes that 10-40 s on a closed
// network), DTMF as RFC 4733 events (JsSIP's default is SIP INFO), G.711.
import * as JsSIP from 'jssip'
import type { RTCSession } from 'jssip/lib/RTCSession'
import type { RTCSessionEvent, UA, UAConfiguration } from 'jssip/lib/UA'

import { describeFailure, type PhoneFailure, type PhoneProblem } from './failures'
import { restrictAudioCodecs } from './sdp'

export interface SoftphoneSettings {
  /** SIP over WebSocket; by default the console's own origin, path /ws (TLS proxy to Asterisk). */
  wssUrl?: string | null
  /** sip:agent-12@pbx.example */
  sipUri: string
  /** The digest user name when it differs from the URI's user (Asterisk: the auth section's username). */
  authorizationUser?: string
  password: string
  displayName?: string
  /** Empty by default: no public STUN (blocked in China; makes answering wait). */
  iceServers?: RTCIceServer[]
}

export type PhoneStatus = 'idle' | 'connecting' | 'registered' | 'unregistered' | 'ringing' | 'answering' | 'in_call'

export interface PhoneSnapshot {
  status: PhoneStatus
  caller: string | null
  held: boolean
  muted: boolean
  problem: PhoneProblem | null
}

export type SnapshotListener = (snapshot: PhoneSnapshot) => void

/** The console's own origin as a SIP WebSocket URL (wss: behind https:). */
export function defaultWssUrl(location: { protocol: string; host: string }): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`
}

export const DTMF_TONES = /^[0-9*#A-D]$/

export class Softphone {
  readonly wssUrl: string
  private readonly settings: SoftphoneSettings
  private readonly remoteAudio: HTMLAudioElement | null
  private ua: UA | null = null
  private session: RTCSession | null = null
  private everConnected = false
  private wasRegistered = false
  private stopping = false
  private answering = false
  private snapshot: PhoneSnapshot = { status: 'idle', caller: null, held: false, muted: false, problem: null }
  private readonly listeners = new Set<SnapshotListener>()

  constructor(
    settings: SoftphoneSettings,
    options: { location?: { protocol: string; host: string }; remoteAudio?: HTMLAudioElement | null } = {},
  ) {
    this.settings = settings
    this.wssUrl = settings.wssUrl || defaultWssUrl(options.location ?? window.location)
    this.remoteAudio = options.remoteAudio ?? null
  }

  get state(): PhoneSnapshot {
    return this.snapshot
  }

  /** The JsSIP configuration, exposed for the tests and for the admin's diagnostics. */
  uaConfiguration(): UAConfiguration {
    return {
      sockets: [new JsSIP.WebSocketInterface(this.wssUrl)],
      uri: this.settings.sipUri,
      authorization_user: this.settings.authorizationUser,
      password: this.settings.password,
      display_name: this.settings.displayName,
      register: true,
      register_expires: 300,
      session_timers: false,
      user_agent: 'smeline-console',
    }
  }

  /** Options of every answer: audio only, the configured ICE servers (none by default). */
  answerOptions(): { mediaConstraints: MediaStreamConstraints; pcConfig: RTCConfiguration } {
    return {
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: this.settings.iceServers ?? [] },
    }
  }

  subscribe(listener: SnapshotListener): () => void {
    this.listeners.add(listener)
    listener(this.snapshot)
    return () => this.listeners.delete(listener)
  }

  start(): void {
    if (this.ua) return
    this.stopping = false
    const ua = new JsSIP.UA(this.uaConfiguration())
    this.ua = ua
    ua.on('connecting', () => {
      if (this.snapshot.status === 'idle' || this.snapshot.status === 'unregistered') this.update({ status: 'connecting' })
    })
    ua.on('connected', () => {
      this.everConnected = true
      // The WebSocket is open again: a connection problem is over.
      if (this.snapshot.problem?.kind === 'connectionLost' || this.snapshot.problem?.kind === 'certificate') {
        this.update({ problem: null })
      }
    })
    ua.on('disconnected', (e) => {
      if (this.stopping) return
      this.fail({ kind: 'disconnected', code: e.code, everConnected: this.everConnected })
    })
    ua.on('registered', () => {
      this.wasRegistered = true
      this.update({ status: this.session ? this.snapshot.status : 'registered', problem: null })
    })
    ua.on('unregistered', (e) => {
      if (this.stopping) return
      const wasRegistered = this.wasRegistered
      this.wasRegistered = false
      if (!this.session) this.update({ status: 'unregistered' })
      this.fail({ kind: 'unregistered', wasRegistered, cause: e.cause })
    })
    ua.on('registrationFailed', (e) => {
      this.wasRegistered = false
      if (!this.session) this.update({ status: 'unregistered' })
      this.fail({ kind: 'registrationFailed', cause: e.cause })
    })
    ua.on('newRTCSession', (e: RTCSessionEvent) => {
      // Agents only receive calls: click-to-call rings the agent first too.
      if (e.originator !== 'remote') return
      this.adopt(e.session)
    })
    ua.start()
  }

  stop(): void {
    this.stopping = true
    this.ua?.stop()
    this.ua = null
    this.session = null
    this.update({ status: 'idle', caller: null, held: false, muted: false })
  }

  answer(): void {
    const session = this.session
    if (!session || this.snapshot.status !== 'ringing') return
    this.answering = true
    this.update({ status: 'answering' })
    session.answer(this.answerOptions())
  }

  hangup(): void {
    this.session?.terminate()
  }

  hold(): void {
    if (this.session?.hold()) this.update({ held: true })
  }

  unhold(): void {
    if (this.session?.unhold()) this.update({ held: false })
  }

  mute(): void {
    this.session?.mute({ audio: true })
    this.update({ muted: true })
  }

  unmute(): void {
    this.session?.unmute({ audio: true })
    this.update({ muted: false })
  }

  /** One key as an RFC 4733 telephone-event in the RTP stream, never SIP INFO. */
  sendDtmf(tone: string): void {
    if (!DTMF_TONES.test(tone) || this.snapshot.status !== 'in_call') return
    this.session?.sendDTMF(tone, { transportType: JsSIP.C.DTMF_TRANSPORT.RFC2833, duration: 250 })
  }

  /** Shown to the agent; also for failures seen outside JsSIP (getUserMedia at login). */
  fail(failure: PhoneFailure): void {
    const problem = describeFailure(failure, this.wssUrl)
    if (problem) this.update({ problem })
  }

  private adopt(session: RTCSession): void {
    if (this.session) {
      // One call at a time: the queue will offer this caller to someone else.
      session.terminate({ status_code: 486 })
      return
    }
    this.session = session
    this.answering = false
    const caller = session.remote_identity?.display_name || session.remote_identity?.uri?.user || null
    this.update({ status: 'ringing', caller, held: false, muted: false })
    session.on('sdp', (e) => {
      if (e.originator === 'local') e.sdp = restrictAudioCodecs(e.sdp)
    })
    session.on('peerconnection', (e) => {
      e.peerconnection.addEventListener('track', (event: RTCTrackEvent) => {
        const [stream] = event.streams
        if (this.remoteAudio && stream) {
          this.remoteAudio.srcObject = stream
          void this.remoteAudio.play().catch(() => undefined)
        }
      })
    })
    session.on('confirmed', () => {
      this.update({ status: 'in_call', problem: null })
    })
    session.on('getusermediafailed', (error: unknown) => {
      this.fail({ kind: 'microphone', name: errorName(error) })
    })
    session.on('failed', (e) => {
      const statusCode = statusCodeOf(e.message)
      const answering = this.answering
      this.release(session)
      this.fail({ kind: 'sessionFailed', cause: e.cause, statusCode, answering })
    })
    session.on('ended', () => {
      this.release(session)
    })
  }

  private release(session: RTCSession): void {
    if (this.session !== session) return
    this.session = null
    this.answering = false
    const status: PhoneStatus = this.wasRegistered ? 'registered' : this.ua ? 'unregistered' : 'idle'
    this.update({ status, caller: null, held: false, muted: false })
  }

  private update(change: Partial<PhoneSnapshot>): void {
    this.snapshot = { ...this.snapshot, ...change }
    for (const listener of this.listeners) listener(this.snapshot)
  }
}

function errorName(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'name' in error) {
    const name = (error as { name: unknown }).name
    if (typeof name === 'string') return name
  }
  return 'Error'
}

function statusCodeOf(message: unknown): number | undefined {
  if (typeof message === 'object' && message !== null && 'status_code' in message) {
    const code = (message as { status_code: unknown }).status_code
    if (typeof code === 'number') return code
  }
  return undefined
}
