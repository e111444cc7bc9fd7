import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type { TicketSummary } from '../src/api'
import { CallsApi } from '../src/calls/api'
import type { SlaNotice } from '../src/calls/tickets'
import MyCalls from '../src/components/call/MyCalls.vue'
import MyTickets from '../src/components/MyTickets.vue'
import { FakeSocket } from './fakeSocket'
import { AGENT, provideSession, sessionOn, type Routes } from './helpers'

function ticket(id: number, over: Partial<TicketSummary> = {}): TicketSummary {
  return {
    id,
    number: `MZ20261200${id}`,
    short_ref: `R${id}`,
    status: 'in_progress',
    priority: 'normal',
    category_code: 'financing',
    county_code: '441481',
    window_code: 'xingning',
    subject: `回访 ${id}`,
    enterprise_name: '兴宁市某某电子厂',
    contact_phone: '13900000001',
    assignee_id: AGENT.id,
    created_at: '2026-12-01T02:00:00Z',
    sla_state: 'ok',
    first_response_due_at: null,
    resolution_due_at: '2026-12-03T02:00:00Z',
    ...over,
  }
}

const HEALTH = (telephony: string) => ({ status: 200, body: { status: 'ok', version: '0.1.0', database: 'pg', redis: true, telephony } })

function setUp(routes: Routes, socket: FakeSocket | null = null, notify?: (n: SlaNotice) => void) {
  const { session, calls } = sessionOn({
    'GET /api/tickets': { status: 200, body: { items: [ticket(12), ticket(13, { contact_phone: null })], next_cursor: null } },
    ...routes,
  })
  session.setUser({ ...AGENT })
  const wrapper = mount(MyTickets, { props: { socket, notify }, global: provideSession(session), attachTo: document.body })
  return { session, calls, wrapper }
}

function slaPush(name: string, over: Record<string, unknown> = {}) {
  return {
    id: 'e1',
    name,
    at: '2026-12-02T02:00:00Z',
    payload: {
      ticket_id: 12,
      number: 'MZ2026120012',
      status: 'in_progress',
      priority: 'normal',
      category_code: 'financing',
      county_code: '441481',
      window_code: 'xingning',
      assignee_id: AGENT.id,
      sla_state: name === 'ticket.sla_breached' ? 'breached' : 'warning',
      actor_id: null,
      resolution_due_at: '2026-12-02T03:00:00Z',
      clock: 'resolution',
      due_at: '2026-12-02T03:00:00Z',
      handoff_id: null,
      escalated_to: [],
      ...over,
    },
  }
}

describe('click-to-call from 我的工单', () => {
  it('rings my phone for the work order’s contact when I am logged into my queue', async () => {
    const { calls, wrapper } = setUp({
      'GET /api/telephony/agents/me': { status: 200, body: { logged_in: true, state: 'ready' } },
      'POST /api/tickets/12/call': { status: 202, body: { channel_id: 'smeline-abc' } },
    })
    await flushPromises()
    // A work order without a contact phone has nothing to dial.
    expect(wrapper.findAll('[data-test="ticket-dial"]')).toHaveLength(1)
    await wrapper.find('[data-test="ticket-dial"]').trigger('click')
    await flushPromises()
    expect(calls.filter((c) => c.method === 'POST').map((c) => c.path)).toEqual(['/api/tickets/12/call'])
    expect(wrapper.find('[data-test="dial-notice"]').text()).toBe('正在呼叫您的电话，请接听后等待接通企业（工单 MZ2026120012）')
    wrapper.unmount()
  })

  it('says plainly when telephony is not configured (503 telephony_not_configured)', async () => {
    const { calls, wrapper } = setUp({
      'GET /api/telephony/agents/me': { status: 200, body: { logged_in: true } },
      'POST /api/tickets/12/call': { status: 503, body: { error: { id: 'telephony_not_configured', message: 'Telephony is not configured' } } },
    })
    await flushPromises()
    await wrapper.find('[data-test="ticket-dial"]').trigger('click')
    await flushPromises()
    expect(calls.some((c) => c.method === 'POST')).toBe(true)
    const notice = wrapper.find('[data-test="dial-notice"]')
    expect(notice.text()).toBe('电话功能未配置，无法回拨；请用其他电话联系企业')
    expect(notice.attributes('role')).toBe('alert')
    wrapper.unmount()
  })

  it('does not even try when the health check already says telephony is not configured', async () => {
    const { session, calls, wrapper } = setUp({ 'GET /api/health': HEALTH('not_configured') })
    await session.refreshHealth()
    await flushPromises()
    await wrapper.find('[data-test="ticket-dial"]').trigger('click')
    await flushPromises()
    expect(calls.some((c) => c.method === 'POST' || c.path === '/api/telephony/agents/me')).toBe(false)
    expect(wrapper.find('[data-test="dial-notice"]').text()).toBe('电话功能未配置，无法回拨；请用其他电话联系企业')
    wrapper.unmount()
  })

  it('tells an agent whose phone is not logged in to log in first, and dials nothing', async () => {
    const { calls, wrapper } = setUp({ 'GET /api/telephony/agents/me': { status: 200, body: { logged_in: false } } })
    await flushPromises()
    await wrapper.find('[data-test="ticket-dial"]').trigger('click')
    await flushPromises()
    expect(calls.some((c) => c.method === 'POST')).toBe(false)
    expect(wrapper.find('[data-test="dial-notice"]').text()).toBe('您尚未签入电话队列，电话未登录，无法回拨；请先在右侧签入')
    wrapper.unmount()
  })
})

describe('我的工单 by push', () => {
  beforeEach(() => {
    vi.useFakeTimers()
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('a warning and a breach of one of my work orders notify me and re-read the list; another’s does not notify', async () => {
    const socket = new FakeSocket()
    const notices: SlaNotice[] = []
    const { calls, wrapper } = setUp({}, socket, (n) => notices.push(n))
    await flushPromises()
    const reads = () => calls.filter((c) => c.path.startsWith('/api/tickets?')).length
    expect(reads()).toBe(1)
    socket.open()
    socket.push('ticket.sla_warning', slaPush('ticket.sla_warning'))
    socket.push('ticket.sla_breached', slaPush('ticket.sla_breached', { clock: 'first_response' }))
    expect(notices.map((n) => [n.level, n.title])).toEqual([
      ['warning', '工单即将超时'],
      ['breached', '工单已超时'],
    ])
    expect(notices[0]?.message).toContain('MZ2026120012')
    expect(notices[0]?.message).toContain('办结时限')
    expect(notices[1]?.message).toContain('首次响应时限')
    // Both events are one re-read.
    vi.advanceTimersByTime(1000)
    await flushPromises()
    expect(reads()).toBe(2)
    socket.push('ticket.sla_breached', slaPush('ticket.sla_breached', { assignee_id: 99 }))
    expect(notices).toHaveLength(2)
    socket.push('ticket.transitioned', slaPush('ticket.transitioned'))
    vi.advanceTimersByTime(1000)
    await flushPromises()
    // Any change pushed to my room re-reads the list (once for both).
    expect(reads()).toBe(3)
    wrapper.unmount()
    socket.push('ticket.sla_breached', slaPush('ticket.sla_breached'))
    expect(notices).toHaveLength(2)
  })

  it('with the socket only a slow safety poll is left (every five minutes, not every minute)', async () => {
    const socket = new FakeSocket()
    const { calls, wrapper } = setUp({}, socket, () => undefined)
    await flushPromises()
    const reads = () => calls.filter((c) => c.path.startsWith('/api/tickets?')).length
    vi.advanceTimersByTime(4 * 60_000)
    await flushPromises()
    expect(reads()).toBe(1)
    vi.advanceTimersByTime(60_000)
    await flushPromises()
    expect(reads()).toBe(2)
    wrapper.unmount()
  })

  it('shows an Element Plus notification in Chinese by default', async () => {
    const socket = new FakeSocket()
    const { wrapper } = setUp({}, socket)
    await flushPromises()
    socket.push('ticket.sla_breached', slaPush('ticket.sla_breached'))
    await flushPromises()
    const box = document.body.querySelector('.el-notification')
    expect(box?.textContent).toContain('工单已超时')
    expect(box?.textContent).toContain('MZ2026120012')
    wrapper.unmount()
  })
})

describe('我的通话', () => {
  const PAGE = {
    items: [
      { linkedid: 'c2.1', direction: 'inbound', caller_number: '13900000001', county_code: '441481', category_code: 'legal', window: 'xingning', started_at: '2026-12-02T02:00:00Z', answered_at: '2026-12-02T02:00:20Z', ended_at: '2026-12-02T02:05:00Z', wait_seconds: 20, talk_seconds: 280, outcome: 'answered', joint: true, ticket_ref: 'P3X9', has_recording: true },
      { linkedid: 'c1.1', direction: 'outbound', caller_number: '07532222222', county_code: null, category_code: null, window: null, started_at: '2026-12-01T02:00:00Z', answered_at: null, ended_at: '2026-12-01T02:00:30Z', wait_seconds: 0, talk_seconds: 0, outcome: 'unqueued', joint: false, ticket_ref: null, has_recording: false },
    ],
    next_cursor: '123_4',
  }

  it('lists my calls and plays a recording in an <audio> from the audited endpoint', async () => {
    const { session, calls } = sessionOn({
      'GET /api/telephony/calls/mine': (c) => ({ status: 200, body: c.path.includes('cursor=') ? { items: [], next_cursor: null } : PAGE }),
    })
    const wrapper = mount(MyCalls, { props: { calls: new CallsApi(session.api) }, global: provideSession(session) })
    await flushPromises()
    expect(calls[0]?.path).toBe('/api/telephony/calls/mine?limit=20')
    const first = wrapper.find('[data-test="my-call-c2.1"]')
    expect(first.text()).toContain('呼入 13900000001')
    expect(first.text()).toContain('协同')
    expect(first.text()).toContain('工单 P3X9')
    expect(first.text()).toContain('04:40')
    expect(wrapper.find('[data-test="my-call-c1.1"]').text()).toContain('无录音')
    expect(wrapper.find('[data-test="my-call-audio"]').exists()).toBe(false)
    await first.find('[data-test="my-call-play"]').trigger('click')
    expect(wrapper.find('[data-test="my-call-audio"]').attributes('src')).toBe('/api/telephony/calls/c2.1/recording')
    await wrapper.find('[data-test="my-call-stop"]').trigger('click')
    expect(wrapper.find('[data-test="my-call-audio"]').exists()).toBe(false)
    await wrapper.find('[data-test="my-calls-more"]').trigger('click')
    await flushPromises()
    expect(calls[1]?.path).toBe('/api/telephony/calls/mine?limit=20&cursor=123_4')
    expect(wrapper.find('[data-test="my-calls-more"]').exists()).toBe(false)
  })

  it('an empty list says so', async () => {
    const { session } = sessionOn({ 'GET /api/telephony/calls/mine': { status: 200, body: { items: [], next_cursor: null } } })
    const wrapper = mount(MyCalls, { props: { calls: new CallsApi(session.api) }, global: provideSession(session) })
    await flushPromises()
    expect(wrapper.text()).toContain('暂无通话记录')
  })
})
