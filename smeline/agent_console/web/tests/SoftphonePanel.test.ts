// The softphone panel wired to the server's phone settings
// (GET /api/telephony/agents/me/phone), with JsSIP replaced at the module
// boundary ('jssip'); the API client is real, the server a fake at fetch.
// The same flow against a SIP-over-WebSocket peer in Chromium is
// tests/e2e/test_softphone.py.
import { flushPromises, mount } from '@vue/test-utils'
import { beforeEach, describe, expect, it, vi } from 'vitest'

import { FakeSession, type FakeUA } from './fakeJssip'

import type { PhoneSettingsResponse } from '../src/softphone/settings'
import { provideSession, sessionOn, type Routes } from './helpers'

const fake = vi.hoisted(() => ({ uas: [] as unknown[], sockets: [] as string[] }))
vi.mock('jssip', async () => (await import('./fakeJssip')).fakeJssip(fake))

// Imported after the mock is set up (the classes above must exist first).
const { default: SoftphonePanel } = await import('../src/components/SoftphonePanel.vue')
const { toSoftphoneSettings } = await import('../src/softphone/settings')

const lastUA = (): FakeUA => fake.uas[fake.uas.length - 1] as FakeUA

const PHONE: PhoneSettingsResponse = {
  endpoint: 'agent-7',
  sip_uri: 'sip:agent-7@127.0.0.1',
  authorization_user: 'agent-7',
  password: 'Zq3-secret-from-the-server',
  display_name: 'xn_agent',
  ws_url: 'ws://127.0.0.1:41234/ws',
  ice_servers: [],
  codecs: ['PCMA', 'PCMU'],
  dtmf: 'rfc4733',
}

function mountPanel(routes: Routes, enabled = true) {
  const { session, calls } = sessionOn(routes)
  const wrapper = mount(SoftphonePanel, { props: { enabled }, global: provideSession(session) })
  return { wrapper, calls, session }
}

const phoneRoute = (body: PhoneSettingsResponse = PHONE): Routes => ({
  'GET /api/telephony/agents/me/phone': { status: 200, body },
})

function ring(ua: FakeUA): FakeSession {
  const session = new FakeSession()
  ua.emit('newRTCSession', { originator: 'remote', session, request: {} })
  return session
}

const status = (w: ReturnType<typeof mountPanel>['wrapper']) => w.find('[data-test="softphone-status"]').text()
const button = (w: ReturnType<typeof mountPanel>['wrapper'], name: string) => w.find(`[data-test="softphone-${name}"]`)

beforeEach(() => {
  fake.uas.length = 0
  fake.sockets.length = 0
})

describe('toSoftphoneSettings', () => {
  it('maps the server fields and turns ICE URLs into RTCIceServers', () => {
    expect(toSoftphoneSettings({ ...PHONE, ice_servers: ['turn:turn.example:3478', ' '] })).toEqual({
      sipUri: 'sip:agent-7@127.0.0.1',
      authorizationUser: 'agent-7',
      password: 'Zq3-secret-from-the-server',
      displayName: 'xn_agent',
      wssUrl: 'ws://127.0.0.1:41234/ws',
      iceServers: [{ urls: 'turn:turn.example:3478' }],
    })
  })
})

describe('SoftphonePanel wired to the server', () => {
  it('fetches my phone settings and registers with them', async () => {
    const { wrapper, calls } = mountPanel(phoneRoute())
    await wrapper.vm.$nextTick()
    expect(status(wrapper)).toBe('正在获取分机设置…')
    await flushPromises()
    expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['GET /api/telephony/agents/me/phone'])
    expect(fake.sockets).toEqual(['ws://127.0.0.1:41234/ws'])
    const ua = lastUA()
    expect(ua.start).toHaveBeenCalledOnce()
    expect(ua.configuration).toMatchObject({
      uri: 'sip:agent-7@127.0.0.1',
      authorization_user: 'agent-7',
      password: 'Zq3-secret-from-the-server',
      register: true,
      session_timers: false,
    })
    ua.emit('connecting', {})
    await flushPromises()
    expect(status(wrapper)).toBe('正在连接…')
    ua.emit('connected', {})
    ua.emit('registered', {})
    await flushPromises()
    expect(status(wrapper)).toBe('已注册，等待来电')
    expect(button(wrapper, 'answer').attributes('disabled')).toBeDefined()
  })

  it('does not ask for settings when telephony is not configured', async () => {
    const { wrapper, calls } = mountPanel(phoneRoute(), false)
    await flushPromises()
    expect(calls).toEqual([])
    expect(fake.uas).toEqual([])
    expect(status(wrapper)).toBe('电话功能未配置')
  })

  it('says so when the settings cannot be fetched, and never registers', async () => {
    const { wrapper } = mountPanel({
      'GET /api/telephony/agents/me/phone': {
        status: 503,
        body: { error: { id: 'telephony_not_configured', message: 'Telephony is not configured' } },
      },
    })
    await flushPromises()
    expect(fake.uas).toEqual([])
    expect(status(wrapper)).toBe('尚未获取分机设置')
    expect(wrapper.find('[data-test="softphone-settings-error"]').text()).toContain('无法获取分机设置，电话无法呼入')
  })

  it('rings, answers audio only, holds, mutes, sends RFC 4733 DTMF and hangs up', async () => {
    const { wrapper } = mountPanel(phoneRoute())
    await flushPromises()
    const ua = lastUA()
    ua.emit('connected', {})
    ua.emit('registered', {})
    const session = ring(ua)
    await flushPromises()
    expect(status(wrapper)).toBe('来电：sipp')

    await button(wrapper, 'answer').trigger('click')
    expect(session.answer).toHaveBeenCalledWith({
      mediaConstraints: { audio: true, video: false },
      pcConfig: { iceServers: [] },
    })
    session.emit('confirmed', {})
    await flushPromises()
    expect(status(wrapper)).toBe('通话中：sipp')

    await button(wrapper, 'key-5').trigger('click')
    await button(wrapper, 'key-#').trigger('click')
    expect(session.sendDTMF.mock.calls).toEqual([
      ['5', { transportType: 'RFC2833', duration: 250 }],
      ['#', { transportType: 'RFC2833', duration: 250 }],
    ])

    await button(wrapper, 'hold').trigger('click')
    expect(session.hold).toHaveBeenCalledOnce()
    expect(wrapper.find('[data-test="softphone-held"]').text()).toBe('已保持')
    await button(wrapper, 'hold').trigger('click')
    expect(session.unhold).toHaveBeenCalledOnce()
    expect(wrapper.find('[data-test="softphone-held"]').exists()).toBe(false)

    await button(wrapper, 'mute').trigger('click')
    expect(session.mute).toHaveBeenCalledWith({ audio: true })
    expect(wrapper.find('[data-test="softphone-muted"]').text()).toBe('已静音')

    await button(wrapper, 'hangup').trigger('click')
    expect(session.terminate).toHaveBeenCalledOnce()
    session.emit('ended', { originator: 'local', cause: 'Terminated' })
    await flushPromises()
    expect(status(wrapper)).toBe('已注册，等待来电')
    expect(wrapper.find('[data-test="softphone-problem"]').exists()).toBe(false)
  })

  it('a 488 on answer shows the misconfigured-extension message', async () => {
    const { wrapper } = mountPanel(phoneRoute())
    await flushPromises()
    const ua = lastUA()
    ua.emit('registered', {})
    const session = ring(ua)
    await flushPromises()
    await button(wrapper, 'answer').trigger('click')
    session.emit('failed', { originator: 'local', cause: 'Incompatible SDP', message: { status_code: 488 } })
    await flushPromises()
    expect(wrapper.find('[data-test="softphone-problem"]').text()).toContain('座席分机配置错误，无法接通')
  })

  it('a 1006 close before the socket ever opened shows the certificate message', async () => {
    const { wrapper } = mountPanel(phoneRoute())
    await flushPromises()
    lastUA().emit('disconnected', { error: true, code: 1006, reason: '' })
    await flushPromises()
    const problem = wrapper.find('[data-test="softphone-problem"]')
    expect(problem.text()).toContain('证书不受信任或无法连接电话服务器')
    expect(problem.text()).toContain('http://127.0.0.1:41234/ws')
  })

  it('a registration refused with 403 says so', async () => {
    const { wrapper } = mountPanel(phoneRoute())
    await flushPromises()
    lastUA().emit('registrationFailed', { response: { status_code: 403 }, cause: 'Rejected' })
    await flushPromises()
    expect(wrapper.find('[data-test="softphone-problem"]').text()).toContain('分机注册被电话服务器拒绝')
  })

  it('a microphone refused at login is shown on the phone', async () => {
    const { wrapper, session } = mountPanel(phoneRoute())
    await flushPromises()
    session.setMicrophone({ result: 'denied', errorName: 'NotAllowedError' })
    await flushPromises()
    expect(wrapper.find('[data-test="softphone-problem"]').text()).toContain('麦克风被拒绝，无法接听电话')
  })

  it('stops the phone when the panel goes away', async () => {
    const { wrapper } = mountPanel(phoneRoute())
    await flushPromises()
    const ua = lastUA()
    wrapper.unmount()
    expect(ua.stop).toHaveBeenCalledOnce()
  })
})
