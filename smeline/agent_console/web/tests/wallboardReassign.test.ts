import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { createMemoryHistory, createRouter } from 'vue-router'

import type { AgentChat } from '../src/chat/api'
import { LIVE_KEY } from '../src/live/provide'
import WallboardView from '../src/views/WallboardView.vue'
import type { Wallboard } from '../src/wallboard/types'
import { FakeSocket } from './fakeSocket'
import { AGENT, provideSession, sessionOn, type Recorded, type Routes } from './helpers'

vi.mock('../src/charts/echarts', () => ({
  echarts: { init: () => ({ setOption: () => undefined, resize: () => undefined, dispose: () => undefined }) },
}))

const NOW = new Date('2026-12-02T02:00:00Z')
const ago = (s: number): string => new Date(NOW.getTime() - s * 1000).toISOString()
let tick = 0
const later = (): string => new Date(NOW.getTime() + ++tick * 1000).toISOString()

const today: Wallboard['total'] = {
  offered: 0, answered: 0, abandoned: 0, short_abandoned: 0, service_level: null,
  asa_seconds: null, aht_seconds: null, overflowed_in: 0, chats: 2, chats_answered: 1,
}

function board(over: Partial<Wallboard> = {}): Wallboard {
  return {
    at: NOW.toISOString(),
    day: '2026-12-02',
    rules: { service_level_seconds: 20, short_abandon_seconds: 5 },
    windows: [
      { code: 'xingning', name: '兴宁市窗口', open: true, calls_waiting: 0, longest_call_wait_seconds: 0, chats_waiting: 1, longest_chat_wait_seconds: 30, agents: { ready: 2, paused: 0, wrapup: 0, on_call: 0, disconnected: 0 }, today },
      { code: 'city', name: '市中心窗口', open: true, calls_waiting: 0, longest_call_wait_seconds: 0, chats_waiting: 0, longest_chat_wait_seconds: 0, agents: { ready: 0, paused: 0, wrapup: 0, on_call: 0, disconnected: 0 }, today },
    ],
    total: today,
    agents: [
      { user_id: 11, name: '兴宁坐席一', window_code: 'xingning', state: 'ready', reason: null, since: ago(65), handled: 1, missed: 0, aht_seconds: null, chats_active: 1 },
      { user_id: 12, name: '兴宁坐席二', window_code: 'xingning', state: 'ready', reason: null, since: ago(60), handled: 0, missed: 0, aht_seconds: null, chats_active: 0 },
    ],
    sla: {
      warning: 0,
      breached: 1,
      by_county: [{ county_code: '441481', name: '兴宁市', warning: 0, breached: 1 }],
      items: [{ id: 5, number: 'MZ2026120005', short_ref: '40000005', subject: '贷款贴息', county_code: '441481', state: 'assigned', sla_state: 'breached', due_at: ago(120), assignee_name: '兴宁坐席一' }],
    },
    trends: { by_hour: Array.from({ length: 24 }, () => 0), by_category: {}, by_county: {} },
    ...over,
  }
}

function chat(over: Partial<AgentChat>): AgentChat {
  return {
    id: 1, visitor_name: '张先生', company: '梅州某某机械有限公司', phone: null, member_id: null,
    chosen_county_code: null, county_code: '441481', category_code: 'financing', window_code: 'xingning',
    routing_reason: 'ip', ip_area: 'meizhou', state: 'assigned', end_reason: null, agent_id: 11,
    created_at: ago(300), assigned_at: ago(240), ended_at: null, queue_position: null, ticket_id: null,
    ticket_ref: null, last_seq: 3, ...over,
  }
}

/** GET /api/chats answering per `state`, from a list the test changes as "the server". */
function chatsRoute(server: { chats: AgentChat[] }) {
  return (call: Recorded) => {
    const state = new URL(call.path, 'http://x').searchParams.get('state')
    return { status: 200, body: { items: server.chats.filter((c) => c.state === state) } }
  }
}

const USERS = [
  { ...AGENT, id: 11, display_name: '兴宁坐席一', role: 'agent' },
  { ...AGENT, id: 12, display_name: '兴宁坐席二', role: 'agent' },
  { ...AGENT, id: 13, display_name: '专家甲', role: 'expert', window_code: null },
  { ...AGENT, id: 14, display_name: '已停用', role: 'agent', active: false },
]

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
  vi.setSystemTime(NOW)
})
afterEach(() => {
  vi.useRealTimers()
})

function mountBoard(routes: Routes, role: 'supervisor' | 'county_admin' = 'supervisor') {
  const { session, calls } = sessionOn({ 'GET /api/wallboard': { status: 200, body: board() }, ...routes })
  session.setUser({ ...AGENT, role, county_code: role === 'county_admin' ? '441481' : null })
  const socket = new FakeSocket()
  const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/', component: WallboardView }] })
  const wrapper = mount(WallboardView, {
    global: { provide: { ...provideSession(session).provide, [LIVE_KEY as symbol]: () => socket }, plugins: [router] },
  })
  return { wrapper, socket, calls }
}

const reads = (calls: Recorded[]) => calls.filter((c) => c.method === 'GET' && c.path.startsWith('/api/chats?state=assigned')).length

describe('reassigning a chat from the wallboard', () => {
  it('lists the chats in play, moves one to another agent after a confirmation, and shows the result from the push', async () => {
    const server = { chats: [chat({ id: 1 }), chat({ id: 2, visitor_name: '李女士', company: '', state: 'queued', agent_id: null, assigned_at: null, created_at: ago(30) })] }
    const { wrapper, socket, calls } = mountBoard({
      'GET /api/chats': chatsRoute(server),
      'POST /api/chats/1/transfer': { status: 200, body: chat({ id: 1, agent_id: 12 }) },
    })
    await flushPromises()
    socket.open()
    const row = () => wrapper.find('[data-test="wallboard-chat-1"]')
    expect(row().text()).toContain('张先生')
    expect(row().text()).toContain('梅州某某机械有限公司')
    expect(row().text()).toContain('兴宁坐席一')
    expect(row().text()).toContain('已接入 04:00')
    expect(wrapper.find('[data-test="wallboard-chat-2"]').text()).toContain('排队中')
    expect(wrapper.find('[data-test="wallboard-chat-2"]').text()).toContain('已等待 00:30')

    await wrapper.find('[data-test="reassign-chat-1"]').trigger('click')
    const dialog = () => wrapper.find('[data-test="reassign-chat-dialog"]')
    // The chat's own agent is not offered; nothing is sent before a target and a click.
    const options = dialog().findAll('[data-test="reassign-agent"] option').map((o) => o.text())
    expect(options.some((o) => o.startsWith('兴宁坐席二'))).toBe(true)
    expect(options.some((o) => o.startsWith('兴宁坐席一'))).toBe(false)
    expect(dialog().find('[data-test="reassign-ok"]').attributes('disabled')).toBeDefined()
    await dialog().find('[data-test="reassign-agent"]').setValue('12')
    expect(dialog().find('[data-test="reassign-confirm-text"]').text()).toBe('确定把 张先生 的咨询转给 兴宁坐席二？')
    expect(calls.some((c) => c.method === 'POST')).toBe(false)
    await dialog().find('[data-test="reassign-ok"]').trigger('click')
    await flushPromises()
    expect(calls.find((c) => c.method === 'POST')).toMatchObject({ path: '/api/chats/1/transfer', body: { to_user_id: 12 } })
    expect(dialog().exists()).toBe(false)
    expect(wrapper.find('[data-test="wallboard-action-done"]').text()).toBe('张先生 的咨询已转给 兴宁坐席二')
    // Not changed locally: the row still says who had it until the server says otherwise.
    expect(row().text()).toContain('兴宁坐席一')

    // The server moved it; the board's push (chats per agent changed) re-reads the list.
    server.chats[0] = chat({ id: 1, agent_id: 12 })
    const before = reads(calls)
    socket.push('wallboard.update', board({ at: later(), agents: board().agents.map((a) => ({ ...a, chats_active: a.user_id === 12 ? 1 : 0 })) }))
    await flushPromises()
    expect(reads(calls)).toBe(before + 1)
    expect(row().text()).toContain('兴宁坐席二')
    // A push that changes no chat figure (say, a call) does not re-read it.
    socket.push('wallboard.update', board({ at: later(), agents: board().agents.map((a) => ({ ...a, chats_active: a.user_id === 12 ? 1 : 0, handled: 9 })) }))
    await flushPromises()
    expect(reads(calls)).toBe(before + 1)
    wrapper.unmount()
  })

  it('moves a chat to a window\'s queue and re-reads the list when a queue changes', async () => {
    const server = { chats: [chat({ id: 1 })] }
    const { wrapper, socket, calls } = mountBoard({
      'GET /api/chats': chatsRoute(server),
      'POST /api/chats/1/transfer': { status: 200, body: chat({ id: 1, state: 'queued', agent_id: null, window_code: 'city' }) },
    })
    await flushPromises()
    socket.open()
    await wrapper.find('[data-test="reassign-chat-1"]').trigger('click')
    await wrapper.find('[data-test="reassign-kind-window"]').setValue(true)
    await wrapper.find('[data-test="reassign-window"]').setValue('city')
    expect(wrapper.find('[data-test="reassign-confirm-text"]').text()).toBe('确定把 张先生 的咨询转给 市中心窗口？')
    await wrapper.find('[data-test="reassign-ok"]').trigger('click')
    await flushPromises()
    expect(calls.find((c) => c.method === 'POST')).toMatchObject({ path: '/api/chats/1/transfer', body: { window_code: 'city' } })

    server.chats = [chat({ id: 1, state: 'queued', agent_id: null, window_code: 'city' })]
    socket.push('chat.queue', { window_code: 'city', waiting: 1, longest_wait_seconds: 0 })
    await flushPromises()
    expect(wrapper.find('[data-test="wallboard-chat-1"]').text()).toContain('市中心')
    expect(wrapper.find('[data-test="wallboard-chat-1"]').text()).toContain('排队中')
    wrapper.unmount()
  })

  it.each([
    [409, 'chat_capacity_full', '该坐席同时进行的咨询已满，请选其他坐席或转到窗口排队'],
    [403, 'chat_not_yours', '没有权限转派这个咨询'],
    [403, 'something_new', '没有权限执行这次改派'],
    [409, 'chat_ended', '咨询已结束，无需转派'],
  ])('says in Chinese why a transfer was refused (%i %s) and keeps the dialog open', async (status, id, text) => {
    const { wrapper } = mountBoard({
      'GET /api/chats': chatsRoute({ chats: [chat({ id: 1 })] }),
      'POST /api/chats/1/transfer': { status, body: { error: { id, message: 'refused' } } },
    })
    await flushPromises()
    await wrapper.find('[data-test="reassign-chat-1"]').trigger('click')
    await wrapper.find('[data-test="reassign-agent"]').setValue('12')
    await wrapper.find('[data-test="reassign-ok"]').trigger('click')
    await flushPromises()
    expect(wrapper.find('[data-test="reassign-error"]').text()).toBe(text)
    expect(wrapper.find('[data-test="reassign-chat-dialog"]').exists()).toBe(true)
    expect(wrapper.find('[data-test="wallboard-action-done"]').exists()).toBe(false)
    wrapper.unmount()
  })
})

describe('reassigning a work order from the SLA board', () => {
  it('picks an assignee who can hold it, confirms, assigns, and shows the new assignee from the push', async () => {
    const { wrapper, socket, calls } = mountBoard({
      'GET /api/chats': chatsRoute({ chats: [] }),
      'GET /api/users': { status: 200, body: { items: USERS } },
      'POST /api/tickets/5/actions': { status: 200, body: {} },
    })
    await flushPromises()
    socket.open()
    await wrapper.find('[data-test="reassign-ticket-5"]').trigger('click')
    await flushPromises()
    const dialog = () => wrapper.find('[data-test="reassign-ticket-dialog"]')
    expect(calls.find((c) => c.path.startsWith('/api/users'))?.path).toBe('/api/users?active=true')
    const options = dialog().findAll('[data-test="reassign-user"] option').map((o) => o.text())
    expect(options.some((o) => o.startsWith('专家甲') || o.startsWith('已停用'))).toBe(false)
    // Experts and inactive accounts cannot hold a work order: not offered.
    expect(options.filter((o) => o.includes('（'))).toEqual(['兴宁坐席一（坐席，兴宁市）', '兴宁坐席二（坐席，兴宁市）'])
    await dialog().find('[data-test="reassign-user"]').setValue('12')
    expect(dialog().find('[data-test="reassign-confirm-text"]').text()).toBe('确定把工单 MZ2026120005 改派给 兴宁坐席二？')
    expect(calls.some((c) => c.method === 'POST')).toBe(false)
    await dialog().find('[data-test="reassign-ok"]').trigger('click')
    await flushPromises()
    expect(calls.find((c) => c.method === 'POST')).toMatchObject({
      path: '/api/tickets/5/actions',
      body: { action: 'assign', assignee_id: 12, note: '班长在监控大屏改派' },
    })
    expect(wrapper.find('[data-test="wallboard-action-done"]').text()).toBe('工单 MZ2026120005 已改派给 兴宁坐席二')
    const assignee = () => wrapper.find('[data-test="sla-item-5"] [data-test="sla-assignee"]').text()
    expect(assignee()).toBe('兴宁坐席一')
    const moved = board().sla.items.map((i) => ({ ...i, assignee_name: '兴宁坐席二' }))
    socket.push('wallboard.update', board({ at: later(), sla: { ...board().sla, items: moved } }))
    await flushPromises()
    expect(assignee()).toBe('兴宁坐席二')
    wrapper.unmount()
  })

  it.each([
    [403, 'transition_forbidden', '您的角色不能改派这件工单'],
    [409, 'invalid_transition', '工单当前的状态不能改派（可能已办结），请稍后再看'],
    [409, 'conflict', '情况已有变化，未能改派，请稍后再试'],
    [404, 'ticket_not_found', '工单不存在或不在您的管辖范围内'],
  ])('says in Chinese why an assignment was refused (%i %s)', async (status, id, text) => {
    const { wrapper } = mountBoard({
      'GET /api/chats': chatsRoute({ chats: [] }),
      'GET /api/users': { status: 200, body: { items: USERS } },
      'POST /api/tickets/5/actions': { status, body: { error: { id, message: 'refused', details: {} } } },
    })
    await flushPromises()
    await wrapper.find('[data-test="reassign-ticket-5"]').trigger('click')
    await flushPromises()
    await wrapper.find('[data-test="reassign-user"]').setValue('11')
    await wrapper.find('[data-test="reassign-ok"]').trigger('click')
    await flushPromises()
    expect(wrapper.find('[data-test="reassign-error"]').text()).toBe(text)
    expect(wrapper.find('[data-test="reassign-ticket-dialog"]').exists()).toBe(true)
    wrapper.unmount()
  })

  it('offers a county administrator the staff of their own county only', async () => {
    const staff = [
      ...USERS,
      { ...AGENT, id: 21, display_name: '梅江坐席', role: 'agent', window_code: 'meijiang' },
      { ...AGENT, id: 22, display_name: '兴宁管理员', role: 'county_admin', window_code: null, county_code: '441481' },
      { ...AGENT, id: 23, display_name: '梅江管理员', role: 'county_admin', window_code: null, county_code: '441402' },
      { ...AGENT, id: 24, display_name: '班长乙', role: 'supervisor', window_code: null },
    ]
    const { wrapper } = mountBoard(
      { 'GET /api/chats': chatsRoute({ chats: [] }), 'GET /api/users': { status: 200, body: { items: staff } } },
      'county_admin',
    )
    await flushPromises()
    await wrapper.find('[data-test="reassign-ticket-5"]').trigger('click')
    await flushPromises()
    const options = wrapper.findAll('[data-test="reassign-user"] option').map((o) => o.text().split('（')[0])
    // The board of a 兴宁 administrator holds 兴宁's window (and, here, the city's).
    expect(options.slice(1)).toEqual(['兴宁坐席一', '兴宁坐席二', '兴宁管理员'])
    wrapper.unmount()
  })
})
