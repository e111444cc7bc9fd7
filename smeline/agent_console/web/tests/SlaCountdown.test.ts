import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'

import type { TicketSummary } from '../src/api'
import MyTickets from '../src/components/MyTickets.vue'
import SlaCountdown from '../src/components/SlaCountdown.vue'
import { formatDuration, slaCountdown } from '../src/time'
import { AGENT, provideSession, sessionOn } from './helpers'

const NOW = Date.parse('2026-11-23T02:00:00Z')
const at = (secondsFromNow: number): string => new Date(NOW + secondsFromNow * 1000).toISOString()

describe('slaCountdown', () => {
  it('counts down to the resolution due time in the state the server gave', () => {
    expect(slaCountdown({ status: 'in_progress', sla_state: 'ok', resolution_due_at: at(3 * 3600 + 5) }, NOW)).toEqual({
      level: 'ok',
      text: '剩余 3:00:05',
    })
    expect(slaCountdown({ status: 'assigned', sla_state: 'warning', resolution_due_at: at(59) }, NOW)).toEqual({
      level: 'warning',
      text: '剩余 00:59',
    })
  })

  it('is breached the second the due time passes, before the scheduler says so', () => {
    expect(slaCountdown({ status: 'assigned', sla_state: 'warning', resolution_due_at: at(-90) }, NOW)).toEqual({
      level: 'breached',
      text: '已超时 01:30',
    })
  })

  it('counts in days beyond a day', () => {
    expect(slaCountdown({ status: 'new', sla_state: 'ok', resolution_due_at: at(2 * 86400 + 3723) }, NOW).text).toBe(
      '剩余 2天 01:02:03',
    )
  })

  it('says the clock is paused while waiting for the SME', () => {
    expect(slaCountdown({ status: 'waiting_customer', sla_state: 'ok', resolution_due_at: null }, NOW)).toEqual({
      level: 'paused',
      text: '已暂停计时',
    })
  })

  it('never shows a negative duration', () => {
    expect(formatDuration(-5000)).toBe('00:00')
  })
})

describe('SlaCountdown', () => {
  it('colours ok, warning and breach differently', () => {
    const levels = (['ok', 'warning'] as const).map((sla_state) =>
      mount(SlaCountdown, {
        props: { ticket: { status: 'assigned', sla_state, resolution_due_at: at(600) }, now: NOW },
      }).find('span'),
    )
    const breached = mount(SlaCountdown, {
      props: { ticket: { status: 'assigned', sla_state: 'ok', resolution_due_at: at(-1) }, now: NOW },
    }).find('span')
    expect(levels[0]?.classes()).toContain('sla--ok')
    expect(levels[1]?.classes()).toContain('sla--warning')
    expect(breached.classes()).toContain('sla--breached')
    expect(breached.text()).toBe('已超时 00:01')
  })
})

describe('MyTickets', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
    vi.setSystemTime(NOW)
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  const ticket = (id: number, dueIn: number | null, sla_state: TicketSummary['sla_state'] = 'ok'): TicketSummary => ({
    id,
    number: `MZ20261123-000${id}`,
    short_ref: `1000000${id}`,
    status: 'assigned',
    priority: 'normal',
    category_code: 'finance',
    county_code: '441481',
    window_code: 'xingning',
    subject: `工单 ${id}`,
    enterprise_name: null,
    contact_phone: null,
    assignee_id: AGENT.id,
    created_at: at(-3600),
    sla_state,
    first_response_due_at: null,
    resolution_due_at: dueIn === null ? null : at(dueIn),
  })

  it('lists my open work orders, nearest deadline first, with countdowns that tick and turn red', async () => {
    const { session, calls } = sessionOn({
      'GET /api/tickets': {
        status: 200,
        body: { items: [ticket(1, 7200), ticket(2, 2, 'warning'), ticket(3, null)], next_cursor: null },
      },
    })
    session.setUser({ ...AGENT })
    const wrapper = mount(MyTickets, { global: provideSession(session) })
    await flushPromises()
    expect(calls[0]?.path).toContain('assignee_id=7')
    const rows = () => wrapper.findAll('[data-test="ticket-row"]')
    expect(rows().map((r) => r.find('.sla').text())).toEqual(['剩余 00:02', '剩余 2:00:00', '无时限'])
    expect(rows()[0]?.find('.sla').classes()).toContain('sla--warning')
    vi.advanceTimersByTime(3000)
    await flushPromises()
    expect(rows()[0]?.find('.sla').text()).toBe('已超时 00:01')
    expect(rows()[0]?.find('.sla').classes()).toContain('sla--breached')
    expect(rows()[1]?.find('.sla').text()).toBe('剩余 1:59:57')
  })

  it('an empty list says so', async () => {
    const { session } = sessionOn({ 'GET /api/tickets': { status: 200, body: { items: [], next_cursor: null } } })
    session.setUser({ ...AGENT })
    const wrapper = mount(MyTickets, { global: provideSession(session) })
    await flushPromises()
    expect(wrapper.text()).toContain('暂无待办工单')
  })
})
