// The Softphone wrapper against a fake of JsSIP's UA, replaced at the module
// boundary ('jssip'). The SIP-over-WebSocket end-to-end test is separate.
import { beforeEach, describe, expect, it, vi } from 'vitest'

import { FakeSession, type FakeUA } from './fakeJssip'

const fake = vi.hoisted(() => ({ uas: [] as unknown[], sockets: [] as string[] }))
vi.mock('jssip', async () => (await import('./fakeJssip')).fakeJssip(fake))

const { Softphone, defaultWssUrl } = await import('../src/softphone/softphone')

const lastUA = (): FakeUA => fake.uas[fake.uas.length - 1] as FakeUA

const SETTINGS = { sipUri: 'sip:agent-7@pbx.example', password: 'x'.repeat(32), displayName: '兴宁坐席一' }
const LOCATION = { protocol: 'https:', host: 'console.example' }

function startedPhone(iceServers?: RTCIceServer[]) {
  const phone = new Softphone({ ...SETTINGS, iceServers }, { location: LOCATION })
  phone.start()
  const ua = lastUA()
  ua.emit('connected', {})
  ua.emit('registered', {})
  return { phone, ua }
}

function ring(ua: FakeUA): FakeSession {
  const session = new FakeSession('13800001234', '')
  ua.emit('newRTCSession', { originator: 'remote', session, request: {} })
  return session
}

beforeEach(() => {
  fake.uas.length = 0
  fake.sockets.length = 0
})

describe('Softphone', () => {
  it('registers over WSS on its own origin by default, with the working settings', () => {
    const { phone, ua } = startedPhone()
    expect(fake.sockets).toEqual(['wss://console.example/ws'])
    expect(ua.start).toHaveBeenCalledOnce()
    expect(ua.configuration).toMatchObject({
      uri: 'sip:agent-7@pbx.example',
      register: true,
      session_timers: false,
    })
    expect(phone.state.status).toBe('registered')
  })

  it('uses a configured WSS URL instead', () => {
    new Softphone({ ...SETTINGS, wssUrl: 'wss://pbx.example:8089/ws' }, { location: LOCATION }).start()
    expect(fake.sockets).toEqual(['wss://pbx.example:8089/ws'])
  })

  it('answers audio only with no ICE servers unless some are configured', () => {
    const { phone, ua } = startedPhone()
    const session = ring(ua)
    expect(phone.state).toMatchObject({ status: 'ringing', caller: '13800001234' })
    phone.answer()
    expect(session.answer).toHaveBeenCalledWith({
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: [] },
    })

    const turn = [{ urls: 'turn:turn.example:3478', username: 'u', credential: 'c' }]
    const second = startedPhone(turn)
    const s2 = ring(second.ua)
    second.phone.answer()
    expect(s2.answer.mock.calls[0]?.[0]).toMatchObject({ pcConfig: { iceServers: turn } })
  })

  it('sends DTMF as RFC 4733 events, never SIP INFO, and only valid keys', () => {
    const { phone, ua } = startedPhone()
    const session = ring(ua)
    phone.answer()
    session.emit('confirmed', {})
    expect(phone.state.status).toBe('in_call')
    phone.sendDtmf('5')
    phone.sendDtmf('#')
    phone.sendDtmf('x')
    expect(session.sendDTMF.mock.calls).toEqual([
      ['5', { transportType: 'RFC2833', duration: 250 }],
      ['#', { transportType: 'RFC2833', duration: 250 }],
    ])
  })

  it('offers only G.711 and telephone-event in its own SDP', () => {
    const { ua } = startedPhone()
    const session = ring(ua)
    const event = {
      originator: 'local',
      type: 'answer',
      sdp: 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 8 0 126\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\n',
    }
    session.emit('sdp', event)
    expect(event.sdp).toContain('m=audio 9 UDP/TLS/RTP/SAVPF 8 0 126')
    expect(event.sdp).not.toContain('opus')
  })

  it('an untrusted certificate (1006 before any connection) is shown, not retried silently', () => {
    const phone = new Softphone(SETTINGS, { location: LOCATION })
    phone.start()
    lastUA().emit('disconnected', { error: true, code: 1006, reason: '' })
    expect(phone.state.problem?.kind).toBe('certificate')
    expect(phone.state.problem?.hint).toContain('https://console.example/ws')
  })

  it('losing the registration after it worked says so', () => {
    const { phone, ua } = startedPhone()
    ua.emit('unregistered', { response: {} })
    expect(phone.state.status).toBe('unregistered')
    expect(phone.state.problem?.message).toBe('注册丢失：电话已无法呼入')
  })

  it('a failed re-registration says so', () => {
    const { phone, ua } = startedPhone()
    ua.emit('registrationFailed', { response: {}, cause: 'Request Timeout' })
    expect(phone.state.problem?.kind).toBe('registrationLost')
  })

  it('answering on a non-WebRTC extension (JsSIP 488, "WebRTC Error") names the misconfiguration', () => {
    const { phone, ua } = startedPhone()
    const session = ring(ua)
    phone.answer()
    session.emit('failed', { originator: 'system', cause: 'WebRTC Error', message: null })
    expect(phone.state.problem?.message).toBe('座席分机配置错误，无法接通')
    expect(phone.state.status).toBe('registered')
  })

  it('a refused microphone on answer is named', () => {
    const { phone, ua } = startedPhone()
    const session = ring(ua)
    phone.answer()
    session.emit('getusermediafailed', Object.assign(new Error('denied'), { name: 'NotAllowedError' }))
    session.emit('failed', { originator: 'local', cause: 'User Denied Media Access', message: null })
    expect(phone.state.problem?.kind).toBe('microphone')
  })

  it('a caller who hangs up while ringing leaves no problem behind', () => {
    const { phone, ua } = startedPhone()
    const session = ring(ua)
    session.emit('failed', { originator: 'remote', cause: 'Canceled', message: {} })
    expect(phone.state).toMatchObject({ status: 'registered', problem: null, caller: null })
  })

  it('a second call while busy is refused with 486 so the queue tries someone else', () => {
    const { ua } = startedPhone()
    ring(ua)
    const second = ring(ua)
    expect(second.terminate).toHaveBeenCalledWith({ status_code: 486 })
  })

  it('stopping the phone is not reported as a lost registration', () => {
    const { phone, ua } = startedPhone()
    phone.stop()
    ua.emit('unregistered', { response: {} })
    ua.emit('disconnected', { error: false, code: 1000 })
    expect(ua.stop).toHaveBeenCalledOnce()
    expect(phone.state).toMatchObject({ status: 'idle', problem: null })
  })

  it('the default WSS URL follows the page: wss behind https, ws on plain http', () => {
    expect(defaultWssUrl({ protocol: 'https:', host: 'a.example:8443' })).toBe('wss://a.example:8443/ws')
    expect(defaultWssUrl({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080/ws')
  })
})
