import { flushPromises, mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import { createMemoryHistory, createRouter } from 'vue-router'

import type { Health } from '../src/api'
import TelephonyBanner from '../src/components/TelephonyBanner.vue'
import { LIVE_KEY } from '../src/live/provide'
import ConsoleView from '../src/views/ConsoleView.vue'
import { FakeSocket } from './fakeSocket'
import { AGENT, provideSession, sessionOn } from './helpers'

const health = (telephony: Health['telephony']): Health => ({
  status: 'ok',
  version: '0.1.0',
  database: 'sqlite',
  redis: false,
  telephony,
})

describe('TelephonyBanner', () => {
  it('says plainly that telephony is not configured', () => {
    const wrapper = mount(TelephonyBanner, { props: { health: health('not_configured') } })
    expect(wrapper.find('[data-test="telephony-not-configured"]').text()).toContain('电话功能未配置')
  })

  it('is absent when telephony is configured and connected', () => {
    const wrapper = mount(TelephonyBanner, { props: { health: health('configured'), connected: true } })
    expect(wrapper.text()).toBe('')
  })

  it('warns when Asterisk is configured but not connected', () => {
    const wrapper = mount(TelephonyBanner, { props: { health: health('configured'), connected: false } })
    expect(wrapper.find('[data-test="telephony-disconnected"]').exists()).toBe(true)
  })
})

describe('the console without telephony', () => {
  it('shows the banner, disables the phone controls and still lists work orders and the knowledge panel', async () => {
    const { session, calls } = sessionOn({
      'GET /api/health': { status: 200, body: health('not_configured') },
      'GET /api/tickets': { status: 200, body: { items: [], next_cursor: null } },
    })
    session.setUser({ ...AGENT })
    const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/', name: 'console', component: ConsoleView }] })
    const sockets: string[] = []
    const live = (namespace: string) => {
      sockets.push(namespace)
      return new FakeSocket()
    }
    const { provide } = provideSession(session)
    const wrapper = mount(ConsoleView, {
      global: { provide: { ...provide, [LIVE_KEY as symbol]: live }, plugins: [router] },
    })
    await flushPromises()
    expect(wrapper.find('[data-test="telephony-not-configured"]').text()).toContain('电话功能未配置')
    expect(wrapper.find('[data-test="top-bar-who"]').text()).toContain('兴宁坐席一')
    expect(wrapper.find('[data-test="top-bar-who"]').text()).toContain('兴宁市')
    expect(wrapper.find('[data-test="agent-login"]').attributes('disabled')).toBeDefined()
    expect(wrapper.find('[data-test="softphone-status"]').text()).toBe('电话功能未配置')
    expect(wrapper.find('[data-test="my-tickets"]').text()).toContain('暂无待办工单')
    expect(wrapper.find('[data-test="kb-empty"]').text()).toContain('知识库尚未接入')
    // Web chat works without telephony: the agent's socket and the chat desk.
    expect(sockets).toEqual(['/agent'])
    expect(wrapper.find('[data-test="chat-panel"]').exists()).toBe(true)
    // No phone call is attempted: no agent status, no telephony status.
    expect([...new Set(calls.map((c) => c.path.split('?')[0]))].sort()).toEqual([
      '/api/chats',
      '/api/contacts/wrapups/pending',
      '/api/health',
      '/api/tickets',
      '/api/webchat/canned-replies',
    ])
    wrapper.unmount()
  })
})
