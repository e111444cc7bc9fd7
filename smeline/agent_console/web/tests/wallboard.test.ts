import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createMemoryHistory, createRouter } from 'vue-router'

import { LIVE_KEY } from '../src/live/provide'
import { createConsoleRouter } from '../src/router'
import WallboardView from '../src/views/WallboardView.vue'
import type { Wallboard } from '../src/wallboard/types'
import { FakeSocket } from './fakeSocket'
import { AGENT, provideSession, sessionOn, type Routes } from './helpers'

const options: unknown[] = []
vi.mock('../src/charts/echarts', () => ({
  echarts: {
    init: () => ({ setOption: (o: unknown) => options.push(o), resize: () => undefined, dispose: () => undefined }),
  },
}))

const NOW = new Date('2026-12-02T02:00:00Z')
const ago = (s: number): string => new Date(NOW.getTime() - s * 1000).toISOString()

const today = (over: Partial<Wallboard['total']> = {}): Wallboard['total'] => ({
  offered: 40,
  answered: 36,
  abandoned: 4,
  short_abandoned: 1,
  service_level: 0.875,
  asa_seconds: 12.4,
  aht_seconds: 185,
  overflowed_in: 2,
  chats: 9,
  chats_answered: 8,
  ...over,
})

function board(over: Partial<Wallboard> = {}): Wallboard {
  return {
    at: NOW.toISOString(),
    day: '2026-12-02',
    rules: { service_level_seconds: 20, short_abandon_seconds: 5 },
    windows: [
      {
        code: 'xingning',
        name: '兴宁市窗口',
        open: true,
        calls_waiting: 2,
        longest_call_wait_seconds: 75,
        chats_waiting: 1,
        longest_chat_wait_seconds: 30,
        agents: { ready: 1, paused: 1, wrapup: 0, on_call: 2, disconnected: 0 },
        today: today(),
      },
    ],
    total: today({ offered: 120 }),
    agents: [
      { user_id: 11, name: '兴宁坐席一', window_code: 'xingning', state: 'on_call', reason: null, since: ago(65), handled: 12, missed: 1, aht_seconds: 170, chats_active: 1, linkedid: '1733100000.42' },
      { user_id: 12, name: '兴宁坐席二', window_code: 'xingning', state: 'paused', reason: 'meal', since: ago(600), handled: 5, missed: 0, aht_seconds: null, chats_active: 0 },
    ],
    sla: {
      warning: 1,
      breached: 1,
      by_county: [{ county_code: '441481', name: '兴宁市', warning: 1, breached: 1 }],
      items: [
        { id: 1, number: 'MZ2026110001', short_ref: '40000001', subject: '贷款贴息', county_code: '441481', state: 'in_progress', sla_state: 'breached', due_at: ago(120), assignee_name: '兴宁坐席一' },
      ],
    },
    trends: { by_hour: Array.from({ length: 24 }, (_, h) => (h === 9 ? 7 : 0)), by_category: { financing: 3 }, by_county: { '441481': 5 } },
    ...over,
  }
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
  vi.setSystemTime(NOW)
  options.length = 0
})
afterEach(() => {
  vi.useRealTimers()
})

function mountBoard(routes: Routes) {
  const { session, calls } = sessionOn({ 'GET /api/wallboard': { status: 200, body: board() }, ...routes })
  session.setUser({ ...AGENT, role: 'supervisor' })
  const socket = new FakeSocket()
  const namespaces: string[] = []
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/', component: WallboardView }] })
  const { provide } = provideSession(session)
  const wrapper = mount(WallboardView, {
    global: {
      provide: {
        ...provide,
        [LIVE_KEY as symbol]: (ns: string) => {
          namespaces.push(ns)
          return socket
        },
      },
      plugins: [router],
    },
  })
  return { wrapper, socket, calls, namespaces }
}

describe('the wallboard', () => {
  it('reads the board once, then shows what is pushed, and never polls', async () => {
    const { wrapper, socket, calls, namespaces } = mountBoard({})
    await flushPromises()
    expect(namespaces).toEqual(['/supervisor'])
    const row = wrapper.find('[data-test="wallboard-window-xingning"]')
    expect(row.text()).toContain('兴宁市窗口')
    expect(row.text()).toContain('2 （01:15）')
    expect(row.text()).toContain('87.5%')
    expect(row.text()).toContain('就绪 1 · 通话 2 · 小休 1')
    expect(wrapper.find('[data-test="wallboard-total"]').text()).toContain('120')
    expect(wrapper.find('[data-test="wallboard-sla-totals"]').text()).toContain('已超时 1 件')
    expect(wrapper.find('[data-test="sla-county-441481"]').text()).toContain('兴宁市')
    expect(wrapper.find('[data-test="wallboard-sla-items"]').text()).toContain('已超时 02:00')

    socket.open()
    socket.push(
      'wallboard.update',
      board({
        at: new Date(NOW.getTime() + 1000).toISOString(),
        windows: [{ ...board().windows[0]!, calls_waiting: 5, name: '兴宁市窗口' }],
        trends: { by_hour: Array.from({ length: 24 }, () => 1), by_category: {}, by_county: {} },
      }),
    )
    await flushPromises()
    expect(wrapper.find('[data-test="wallboard-window-xingning"]').text()).toContain('5 （01:15）')
    // An older push (another process, late) is not a step back.
    socket.push('wallboard.update', board({ at: new Date(NOW.getTime() - 5000).toISOString() }))
    await flushPromises()
    expect(wrapper.find('[data-test="wallboard-window-xingning"]').text()).toContain('5 （01:15）')

    vi.advanceTimersByTime(120_000)
    await flushPromises()
    expect(calls.filter((c) => c.path === '/api/wallboard')).toHaveLength(1)
    // Pushes missed while disconnected are not replayed: one read after the reconnect.
    socket.drop()
    await flushPromises()
    expect(wrapper.find('[data-test="wallboard-connection"]').text()).toBe('连接中断，正在重连…')
    socket.open()
    await flushPromises()
    expect(calls.filter((c) => c.path === '/api/wallboard')).toHaveLength(2)
    wrapper.unmount()
  })

  it('ticks the time in state of every agent', async () => {
    const { wrapper } = mountBoard({})
    await flushPromises()
    const cell = () => wrapper.find('[data-test="wallboard-agent-11"] [data-test="agent-in-state"]').text()
    expect(cell()).toBe('01:05')
    vi.advanceTimersByTime(3000)
    await flushPromises()
    expect(cell()).toBe('01:08')
    expect(wrapper.find('[data-test="wallboard-agent-12"]').text()).toContain('用餐')
    wrapper.unmount()
  })

  it('draws the trends with ECharts from the board', async () => {
    const { wrapper } = mountBoard({})
    await flushPromises()
    await vi.dynamicImportSettled()
    await flushPromises()
    const hour = options[0] as { series: { data: number[] }[] }
    expect(hour.series[0]!.data[9]).toBe(7)
    const county = options[2] as { xAxis: { data: string[] } }
    expect(county.xAxis.data).toEqual(['兴宁市'])
    wrapper.unmount()
  })

  it('asks before forcing a pause, and says plainly why an action failed', async () => {
    const { wrapper, calls } = mountBoard({
      'POST /api/telephony/agents/11/pause': { status: 200, body: { logged_in: true, state: 'paused' } },
      'POST /api/telephony/calls/1733100000.42/spy': { status: 503, body: { error: { id: 'telephony_unavailable', message: 'down' } } },
    })
    await flushPromises()
    await wrapper.find('[data-test="pause-11"]').trigger('click')
    expect(wrapper.find('[data-test="wallboard-confirm"]').text()).toContain('让 兴宁坐席一 强制小休？')
    expect(calls.some((c) => c.method === 'POST')).toBe(false)
    await wrapper.find('[data-test="wallboard-confirm-ok"]').trigger('click')
    await flushPromises()
    expect(calls.find((c) => c.method === 'POST')).toMatchObject({ path: '/api/telephony/agents/11/pause', body: { reason: 'supervisor' } })
    expect(wrapper.find('[data-test="wallboard-action-done"]').text()).toBe('兴宁坐席一 已强制小休')

    // Listening needs a call: the agent without one cannot be listened to.
    expect(wrapper.find('[data-test="listen-12"]').attributes('disabled')).toBeDefined()
    await wrapper.find('[data-test="listen-11"]').trigger('click')
    await wrapper.find('[data-test="wallboard-confirm-ok"]').trigger('click')
    await flushPromises()
    expect(calls.at(-1)).toMatchObject({ path: '/api/telephony/calls/1733100000.42/spy', body: { mode: 'listen' } })
    expect(wrapper.find('[data-test="wallboard-action-error"]').text()).toBe('电话交换机暂时无法连接，请稍后重试')
    wrapper.unmount()
  })
})

describe('listening in', () => {
  it('finds the agent\'s call from the pushed call events when the board does not name it', async () => {
    const { wrapper, socket, calls } = mountBoard({
      'POST /api/telephony/calls/1733100099.7/spy': { status: 202, body: { channel_id: 'spy-1' } },
    })
    await flushPromises()
    socket.open()
    expect(wrapper.find('[data-test="barge-12"]').attributes('disabled')).toBeDefined()
    socket.push('call.answered', { id: 'e9', name: 'call.answered', at: NOW.toISOString(), payload: { linkedid: '1733100099.7', agent_interface: 'PJSIP/agent-12' } })
    await flushPromises()
    expect(wrapper.find('[data-test="barge-12"]').attributes('disabled')).toBeUndefined()
    await wrapper.find('[data-test="barge-12"]').trigger('click')
    expect(wrapper.find('[data-test="wallboard-confirm"]').text()).toContain('强插 兴宁坐席二 的通话？')
    await wrapper.find('[data-test="wallboard-confirm-ok"]').trigger('click')
    await flushPromises()
    expect(calls.at(-1)).toMatchObject({ path: '/api/telephony/calls/1733100099.7/spy', body: { mode: 'barge' } })
    socket.push('call.ended', { id: 'e10', name: 'call.ended', at: NOW.toISOString(), payload: { linkedid: '1733100099.7', agent_interface: 'PJSIP/agent-12' } })
    await flushPromises()
    expect(wrapper.find('[data-test="barge-12"]').attributes('disabled')).toBeDefined()
    wrapper.unmount()
  })
})

describe('the wallboard route', () => {
  it('is only for supervisors, administrators and county administrators', async () => {
    for (const [role, lands] of [
      ['agent', 'console'],
      ['supervisor', 'wallboard'],
      ['county_admin', 'wallboard'],
      ['admin', 'wallboard'],
    ] as const) {
      const { session } = sessionOn({})
      session.setUser({ ...AGENT, role })
      const router = createConsoleRouter(session, createMemoryHistory())
      await router.push('/wallboard')
      expect(router.currentRoute.value.name, role).toBe(lands)
    }
  })
})
