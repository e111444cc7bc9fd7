import { describe, expect, it } from 'vitest'

import { certificatePage, describeFailure } from '../src/softphone/failures'

const WSS = 'wss://console.example:8443/ws'

describe('softphone failures become messages the agent can act on', () => {
  it('close 1006 before any connection means an untrusted certificate, with the page to open', () => {
    const p = describeFailure({ kind: 'disconnected', code: 1006, everConnected: false }, WSS)
    expect(p?.kind).toBe('certificate')
    expect(p?.message).toBe('证书不受信任或无法连接电话服务器')
    expect(p?.hint).toContain('https://console.example:8443/ws')
  })

  it('close 1006 after the socket had been open is a lost connection, not a certificate', () => {
    const p = describeFailure({ kind: 'disconnected', code: 1006, everConnected: true }, WSS)
    expect(p?.kind).toBe('connectionLost')
  })

  it('getUserMedia NotAllowedError is a refused microphone', () => {
    expect(describeFailure({ kind: 'microphone', name: 'NotAllowedError' }, WSS)?.message).toBe(
      '麦克风被拒绝，无法接听电话',
    )
  })

  it('a missing microphone says so rather than "refused"', () => {
    expect(describeFailure({ kind: 'microphone', name: 'NotFoundError' }, WSS)?.kind).toBe('noMicrophone')
  })

  it('a failed registration and an unregistration we did not ask for are a lost registration', () => {
    expect(describeFailure({ kind: 'registrationFailed', cause: 'Request Timeout' }, WSS)?.message).toBe(
      '注册丢失：电话已无法呼入',
    )
    expect(describeFailure({ kind: 'unregistered', wasRegistered: true }, WSS)?.kind).toBe('registrationLost')
  })

  it('unregistered without ever having registered is not reported twice', () => {
    expect(describeFailure({ kind: 'unregistered', wasRegistered: false }, WSS)).toBeNull()
  })

  it('a 401 on REGISTER says the credentials are wrong', () => {
    expect(describeFailure({ kind: 'registrationFailed', cause: 'Authentication Error' }, WSS)?.kind).toBe(
      'authentication',
    )
  })

  it('a 403 on REGISTER (JsSIP cause "Rejected") says the registrar refused the extension', () => {
    const p = describeFailure({ kind: 'registrationFailed', cause: 'Rejected' }, WSS)
    expect(p?.kind).toBe('registrationRefused')
    expect(p?.message).toBe('分机注册被电话服务器拒绝')
  })

  it('"WebRTC Error" on answer (Chrome refused a non-webrtc endpoint, JsSIP sent 488) is a misconfigured extension', () => {
    const p = describeFailure({ kind: 'sessionFailed', cause: 'WebRTC Error', answering: true }, WSS)
    expect(p?.message).toBe('座席分机配置错误，无法接通')
    expect(p?.hint).toContain('webrtc=yes')
  })

  it('a 488 / Incompatible SDP is a misconfigured extension too', () => {
    expect(
      describeFailure({ kind: 'sessionFailed', cause: 'Incompatible SDP', statusCode: 488, answering: false }, WSS)
        ?.kind,
    ).toBe('extensionMisconfigured')
  })

  it('the caller hanging up or another agent answering first is no problem at all', () => {
    for (const cause of ['Canceled', 'Terminated', 'No Answer', 'Busy']) {
      expect(describeFailure({ kind: 'sessionFailed', cause, answering: false }, WSS)).toBeNull()
    }
  })

  it('an unexpected cause is still shown, with the cause', () => {
    const p = describeFailure({ kind: 'sessionFailed', cause: 'RTP Timeout', answering: false }, WSS)
    expect(p?.kind).toBe('callFailed')
    expect(p?.message).toContain('RTP Timeout')
  })

  it('the certificate page of a wss URL is its https twin', () => {
    expect(certificatePage('wss://pbx.local:8089/ws')).toBe('https://pbx.local:8089/ws')
    expect(certificatePage('ws://127.0.0.1:8088/ws')).toBe('http://127.0.0.1:8088/ws')
  })
})
