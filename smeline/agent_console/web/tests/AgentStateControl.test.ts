import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import AgentStateControl from '../src/components/AgentStateControl.vue'
import { provideSession, sessionOn, type Routes } from './helpers'

const NOW = new Date('2026-11-23T02:00:00Z')

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
  vi.setSystemTime(NOW)
})
afterEach(() => {
  vi.useRealTimers()
})

function mountControl(routes: Routes, disabled = false) {
  const { session, calls } = sessionOn(routes)
  const wrapper = mount(AgentStateControl, { props: { disabled }, global: provideSession(session) })
  return { wrapper, calls }
}

const since = (secondsAgo: number): string => new Date(NOW.getTime() - secondsAgo * 1000).toISOString()

describe('AgentStateControl', () => {
  it('shows the state and the time in it, ticking every second', async () => {
    const { wrapper } = mountControl({
      'GET /api/telephony/agents/me': { status: 200, body: { logged_in: true, state: 'ready', since: since(65) } },
    })
    await flushPromises()
    expect(wrapper.find('[data-test="agent-state-label"]').text()).toBe('就绪')
    expect(wrapper.find('[data-test="agent-state-time"]').text()).toBe('已持续 01:05')
    vi.advanceTimersByTime(2000)
    await flushPromises()
    expect(wrapper.find('[data-test="agent-state-time"]').text()).toBe('已持续 01:07')
  })

  it('over an hour the time reads H:MM:SS', async () => {
    const { wrapper } = mountControl({
      'GET /api/telephony/agents/me': {
        status: 200,
        body: { logged_in: true, state: 'paused', reason: 'meal', since: since(3600 + 62) },
      },
    })
    await flushPromises()
    expect(wrapper.find('[data-test="agent-state-label"]').text()).toBe('小休')
    expect(wrapper.find('[data-test="agent-state-reason"]').text()).toBe('用餐')
    expect(wrapper.find('[data-test="agent-state-time"]').text()).toBe('已持续 1:01:02')
  })

  it('小休 asks for a reason and sends it; the answer replaces the state', async () => {
    const { wrapper, calls } = mountControl({
      'GET /api/telephony/agents/me': { status: 200, body: { logged_in: true, state: 'ready', since: since(5) } },
      'POST /api/telephony/agents/me/state': {
        status: 200,
        body: { logged_in: true, state: 'paused', reason: 'rest', since: since(0) },
      },
    })
    await flushPromises()
    await wrapper.find('[data-test="agent-pause"]').trigger('click')
    await wrapper.find('[data-test="pause-confirm"]').trigger('click')
    await flushPromises()
    expect(calls.at(-1)).toMatchObject({ method: 'POST', body: { action: 'pause', reason: 'rest' } })
    expect(wrapper.find('[data-test="agent-state-label"]').text()).toBe('小休')
    expect(wrapper.find('[data-test="agent-state-time"]').text()).toBe('已持续 00:00')
  })

  it('话后处理 shows the wrap-up time left', async () => {
    const until = new Date(NOW.getTime() + 30_000).toISOString()
    const { wrapper } = mountControl({
      'GET /api/telephony/agents/me': { status: 200, body: { logged_in: true, state: 'ready', since: since(5) } },
      'POST /api/telephony/agents/me/state': {
        status: 200,
        body: { logged_in: true, state: 'wrapup', reason: 'wrapup', since: since(0), wrapup_until: until },
      },
    })
    await flushPromises()
    await wrapper.find('[data-test="agent-wrapup"]').trigger('click')
    await flushPromises()
    expect(wrapper.find('[data-test="agent-state-label"]').text()).toBe('话后处理')
    expect(wrapper.find('[data-test="agent-wrapup-left"]').text()).toBe('剩余 00:30')
  })

  it('a refused transition is shown in Chinese and the state stays', async () => {
    const { wrapper } = mountControl({
      'GET /api/telephony/agents/me': { status: 200, body: { logged_in: true, state: 'paused', since: since(5) } },
      'POST /api/telephony/agents/me/state': {
        status: 409,
        body: { error: { id: 'invalid_agent_transition', message: 'Not allowed' } },
      },
    })
    await flushPromises()
    await wrapper.find('[data-test="agent-wrapup"]').trigger('click')
    await flushPromises()
    expect(wrapper.find('[data-test="agent-state-error"]').text()).toBe('当前状态下不能执行此操作')
    expect(wrapper.find('[data-test="agent-state-label"]').text()).toBe('小休')
  })

  it('without telephony the controls are disabled and nothing is asked', async () => {
    const { wrapper, calls } = mountControl({}, true)
    await flushPromises()
    expect(calls).toEqual([])
    expect(wrapper.find('[data-test="agent-state-label"]').text()).toBe('未签入')
    expect(wrapper.find('[data-test="agent-login"]').attributes('disabled')).toBeDefined()
  })
})
