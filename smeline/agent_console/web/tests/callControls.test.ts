import { flushPromises, mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import { defineComponent, h } from 'vue'
import { createMemoryHistory, createRouter } from 'vue-router'

import { ApiClient } from '../src/api'
import type { EscalationView } from '../src/calls/api'
import { createCallDesk, STORAGE_KEY, type CallDesk } from '../src/calls/store'
import CallControls from '../src/components/call/CallControls.vue'
import CallScreenPop from '../src/components/screenpop/CallScreenPop.vue'
import { ContactsApi } from '../src/contacts/api'
import { LIVE_KEY } from '../src/live/provide'
import { createCallPops } from '../src/screenpop/api'
import ConsoleView from '../src/views/ConsoleView.vue'
import { FakeSocket } from './fakeSocket'
import { AGENT, fakeServer, provideSession, sessionOn, type Routes } from './helpers'

const LINKEDID = '1700000100.7'

const ANSWERED = {
  linkedid: LINKEDID,
  direction: 'inbound',
  caller_number: '13900000001',
  county: '441481',
  category: 'legal',
  window: 'xingning',
  queue: 'xingning',
  agent_interface: 'PJSIP/agent-7',
  wait_seconds: 21,
  outcome: 'in_progress',
  agent_name: '兴宁坐席一',
}

const POP = {
  phone: '13900000001',
  kind: 'mobile',
  is_meizhou: true,
  county_code: '441481',
  county_source: 'member',
  enterprise: null,
  member: { id: 4, name: '王经理', enterprise_id: null, county_code: '441481' },
  calls: [
    { linkedid: LINKEDID, started_at: '2026-12-02T02:00:00Z', outcome: 'in_progress', window: 'xingning', agent_name: '兴宁坐席一', wait_seconds: 21, talk_seconds: 0, joint: false, ticket_ref: null },
  ],
  chats: [],
  tickets: [],
}

const EXPERTS = {
  category: 'legal',
  at: '2026-12-02T02:01:00Z',
  suggested_expert_id: 3,
  experts: [
    { id: 3, name: '李律师', phone_key: '139', specialties: ['legal'], active: true, schedule: null, last_consulted_at: null, available: true, reasons: [] },
    { id: 5, name: '陈律师', phone_key: '138', specialties: ['legal'], active: true, schedule: null, last_consulted_at: null, available: false, reasons: ['on_call'] },
  ],
}

function view(over: Partial<EscalationView>): EscalationView {
  return {
    linkedid: LINKEDID,
    phase: 'consulting',
    consult: true,
    room: `esc-${LINKEDID}`,
    target_kind: 'expert',
    target_ref: '3',
    expert_id: 3,
    expert_name: '李律师',
    consultation_id: 11,
    answered: false,
    ...over,
  }
}

class MemoryStorage {
  readonly items = new Map<string, string>()
  getItem(key: string): string | null {
    return this.items.get(key) ?? null
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value)
  }
  removeItem(key: string): void {
    this.items.delete(key)
  }
}

function setUp(routes: Routes = {}, storage = new MemoryStorage()) {
  const server = fakeServer({ 'GET /api/screen-pop': { status: 200, body: POP }, ...routes })
  const api = new ApiClient({ fetch: server.fetch, cookies: () => '' })
  const socket = new FakeSocket()
  const pops = createCallPops(api, socket)
  pops.start()
  const desk = createCallDesk(api, socket, { pops, storage })
  // The console's arrangement: the pop, then the controls of each of my calls.
  const Host = defineComponent({
    setup() {
      return () =>
        h('div', [
          h(CallScreenPop, { pops, contacts: new ContactsApi(api), tickets: {} }),
          ...desk.state.calls.map((c) => h(CallControls, { key: c.linkedid, desk, call: c, myWindow: 'xingning' })),
        ])
    },
  })
  return { server, socket, pops, desk, storage, Host }
}

async function started(desk: CallDesk, socket: FakeSocket): Promise<void> {
  await desk.start()
  socket.open()
}

function push(socket: FakeSocket, name: string, payload: unknown): void {
  socket.push(name, { id: `e-${Math.random()}`, name, at: '2026-12-02T02:00:00Z', payload })
}

function member(role: string, conference: string, channel: string) {
  return { ...ANSWERED, conference, channel, role }
}

describe('the call controls', () => {
  it('escalate to an expert picked by specialty (availability shown), consult privately, merge, then leave — the live three-way state follows the socket', async () => {
    const steps: string[] = []
    const { server, socket, desk, Host } = setUp({
      'GET /api/experts/available': { status: 200, body: EXPERTS },
      [`POST /api/telephony/calls/${LINKEDID}/escalations`]: { status: 202, body: view({}) },
      [`POST /api/telephony/calls/${LINKEDID}/escalations/merge`]: () => {
        steps.push('merge')
        return { status: 200, body: view({ phase: 'merged', answered: true }) }
      },
      [`POST /api/telephony/calls/${LINKEDID}/escalations/leave`]: () => {
        steps.push('leave')
        return { status: 200, body: view({ phase: 'merged', answered: true }) }
      },
    })
    await started(desk, socket)
    const wrapper = mount(Host, { attachTo: document.body })
    expect(wrapper.find(`[data-test="call-controls-${LINKEDID}"]`).exists()).toBe(false)
    push(socket, 'call.answered', ANSWERED)
    await flushPromises()
    const controls = () => wrapper.find(`[data-test="call-controls-${LINKEDID}"]`)
    expect(controls().exists()).toBe(true)
    expect(wrapper.find('[data-test="call-members-none"]').exists()).toBe(true)

    // Expert: the call's category is the default specialty; availability is asked at once.
    await wrapper.find('[data-test="call-target-expert"]').setValue(true)
    await flushPromises()
    expect(server.calls.some((c) => c.path === '/api/experts/available?category=legal')).toBe(true)
    expect(wrapper.find('[data-test="call-expert-3"]').text()).toContain('推荐')
    expect(wrapper.find('[data-test="call-expert-3"]').text()).toContain('可呼叫')
    expect(wrapper.find('[data-test="call-expert-5"]').text()).toContain('通话中')
    expect((wrapper.find('[data-test="call-expert-5"] input').element as HTMLInputElement).disabled).toBe(true)
    await wrapper.find('[data-test="call-expert-3"] input').setValue(true)
    expect((wrapper.find('[data-test="call-consult"]').element as HTMLInputElement).checked).toBe(true)
    await wrapper.find('[data-test="call-escalate"]').trigger('submit')
    await flushPromises()
    const post = server.calls.find((c) => c.method === 'POST')
    expect(post?.path).toBe(`/api/telephony/calls/${LINKEDID}/escalations`)
    expect(post?.body).toEqual({ target_kind: 'expert', expert_id: 3, consult: true })
    expect(wrapper.find('[data-test="call-phase"]').text()).toBe('私下沟通中：来电者在等待')
    expect(wrapper.find('[data-test="call-far"]').text()).toContain('李律师')
    expect(wrapper.find('[data-test="call-far"]').text()).toContain('振铃中')
    expect(wrapper.find('[data-test="call-escalate"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="call-drop"]').exists()).toBe(false)
    // No transfer while a far party is involved.
    expect((wrapper.find('[data-test="call-transfer-window"]').element as HTMLSelectElement).disabled).toBe(true)

    // Asterisk: the caller to the hold room, I and the expert in the room.
    push(socket, 'conference.member_joined', member('caller', `esc-${LINKEDID}-hold`, 'PJSIP/trunk-00000001'))
    push(socket, 'conference.member_joined', member('agent', `esc-${LINKEDID}`, 'PJSIP/agent-7-00000002'))
    push(socket, 'conference.member_joined', member('target', `esc-${LINKEDID}`, 'Local/e-13900000003@smeline-dial-target-00000003;2'))
    // Another call's member is not shown on this one.
    push(socket, 'conference.member_joined', { ...member('target', 'esc-other', 'Local/x;2'), linkedid: 'other.1' })
    await flushPromises()
    expect(wrapper.find('[data-test="call-leg-caller"]').text()).toBe('来电者 · 等待中（听等待音乐）')
    expect(wrapper.find('[data-test="call-leg-agent"]').text()).toBe('我 · 在通话中')
    expect(wrapper.find('[data-test="call-leg-target"]').text()).toBe('第三方：李律师 · 在通话中')

    await wrapper.find('[data-test="call-merge"]').trigger('click')
    await flushPromises()
    expect(steps).toEqual(['merge'])
    // The caller moves from the hold room into the room: the same channel, one leg.
    push(socket, 'conference.member_joined', member('caller', `esc-${LINKEDID}`, 'PJSIP/trunk-00000001'))
    push(socket, 'conference.member_left', member('caller', `esc-${LINKEDID}-hold`, 'PJSIP/trunk-00000001'))
    await flushPromises()
    expect(wrapper.find('[data-test="call-phase"]').text()).toBe('三方通话中')
    expect(wrapper.find('[data-test="call-far"]').text()).toContain('已接通')
    expect(wrapper.findAll('[data-test="call-leg-caller"]').map((w) => w.text())).toEqual(['来电者 · 在通话中'])
    expect(wrapper.find('[data-test="call-merge"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="call-cancel"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="call-drop"]').exists()).toBe(true)

    await wrapper.find('[data-test="call-leave"]').trigger('click')
    await flushPromises()
    expect(steps).toEqual(['merge', 'leave'])
    // Handed off: no longer my call to control; the pop stays until the call ends.
    expect(controls().exists()).toBe(false)
    expect(desk.state.notice).toEqual({ kind: 'handedOff', linkedid: LINKEDID })
    expect(wrapper.find(`[data-test="call-pop-${LINKEDID}"]`).exists()).toBe(true)
    wrapper.unmount()
  })

  it('calls the city centre at once, cancels while ringing, and after a drop the escalation form is back', async () => {
    const { server, socket, desk, Host } = setUp({
      [`POST /api/telephony/calls/${LINKEDID}/escalations`]: { status: 202, body: view({ phase: 'ringing', consult: false, target_kind: 'city', target_ref: 'city', expert_id: null, expert_name: null }) },
      [`POST /api/telephony/calls/${LINKEDID}/escalations/cancel`]: { status: 200, body: view({ phase: 'idle', target_kind: null, target_ref: null }) },
    })
    await started(desk, socket)
    const wrapper = mount(Host, { attachTo: document.body })
    push(socket, 'call.answered', ANSWERED)
    await flushPromises()
    await wrapper.find('[data-test="call-consult"]').setValue(false)
    await wrapper.find('[data-test="call-escalate"]').trigger('submit')
    await flushPromises()
    expect(server.calls.find((c) => c.method === 'POST')?.body).toEqual({ target_kind: 'city', consult: false })
    expect(wrapper.find('[data-test="call-phase"]').text()).toBe('正在呼叫第三方，来电者与您仍在通话')
    expect(wrapper.find('[data-test="call-far"]').text()).toContain('市中心窗口')
    expect(wrapper.find('[data-test="call-merge"]').exists()).toBe(false)
    await wrapper.find('[data-test="call-cancel"]').trigger('click')
    await flushPromises()
    expect(server.calls.at(-1)?.path).toBe(`/api/telephony/calls/${LINKEDID}/escalations/cancel`)
    expect(wrapper.find('[data-test="call-live"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="call-escalate"]').exists()).toBe(true)
    wrapper.unmount()
  })

  it('another county window is offered without my own, and a refusal is shown in Chinese', async () => {
    const { server, socket, desk, Host } = setUp({
      [`POST /api/telephony/calls/${LINKEDID}/escalations`]: { status: 409, body: { error: { id: 'escalation_in_progress', message: 'An escalation is in progress' } } },
    })
    await started(desk, socket)
    const wrapper = mount(Host, { attachTo: document.body })
    push(socket, 'call.answered', ANSWERED)
    await flushPromises()
    await wrapper.find('[data-test="call-target-window"]').setValue(true)
    const options = wrapper.findAll('[data-test="call-window"] option').map((o) => o.attributes('value'))
    expect(options).not.toContain('xingning')
    expect(options).not.toContain('city')
    expect(options).toContain('meijiang')
    expect((wrapper.find('[data-test="call-escalate-start"]').element as HTMLButtonElement).disabled).toBe(true)
    await wrapper.find('[data-test="call-window"]').setValue('meijiang')
    await wrapper.find('[data-test="call-escalate"]').trigger('submit')
    await flushPromises()
    expect(server.calls.find((c) => c.method === 'POST')?.body).toEqual({ target_kind: 'window', window_code: 'meijiang', consult: true })
    expect(wrapper.find('[data-test="call-error"]').text()).toBe('已有一个三方通话在进行中')
    expect(wrapper.find('[data-test="call-escalate"]').exists()).toBe(true)
    wrapper.unmount()
  })

  it('transfers the caller to another window’s queue and lets go of the call', async () => {
    const { server, socket, desk, Host } = setUp({
      [`POST /api/telephony/calls/${LINKEDID}/transfer`]: { status: 204 },
    })
    await started(desk, socket)
    const wrapper = mount(Host, { attachTo: document.body })
    push(socket, 'call.answered', ANSWERED)
    await flushPromises()
    const choices = wrapper.findAll('[data-test="call-transfer-window"] option').map((o) => o.attributes('value'))
    expect(choices).toContain('city')
    expect(choices).not.toContain('xingning')
    await wrapper.find('[data-test="call-transfer-window"]').setValue('city')
    await wrapper.find('[data-test="call-transfer"]').trigger('click')
    await flushPromises()
    const post = server.calls.find((c) => c.method === 'POST')
    expect(post?.path).toBe(`/api/telephony/calls/${LINKEDID}/transfer`)
    expect(post?.body).toEqual({ window_code: 'city' })
    expect(wrapper.find(`[data-test="call-controls-${LINKEDID}"]`).exists()).toBe(false)
    expect(desk.state.notice).toEqual({ kind: 'transferred', linkedid: LINKEDID, window: 'city' })
    wrapper.unmount()
  })

  it('a transfer refused because telephony is not configured says so and keeps the call', async () => {
    const { socket, desk, Host } = setUp({
      [`POST /api/telephony/calls/${LINKEDID}/transfer`]: { status: 503, body: { error: { id: 'telephony_not_configured', message: 'x' } } },
    })
    await started(desk, socket)
    const wrapper = mount(Host, { attachTo: document.body })
    push(socket, 'call.answered', ANSWERED)
    await flushPromises()
    await wrapper.find('[data-test="call-transfer-window"]').setValue('city')
    await wrapper.find('[data-test="call-transfer"]').trigger('click')
    await flushPromises()
    expect(wrapper.find('[data-test="call-error"]').text()).toBe('电话功能未配置')
    expect(desk.state.calls.map((c) => c.linkedid)).toEqual([LINKEDID])
    wrapper.unmount()
  })
})

describe('the call screen pop over the life of the call', () => {
  it('clears when that call ends (call.ended), not when another one does', async () => {
    const { socket, desk, storage, Host } = setUp()
    await started(desk, socket)
    const wrapper = mount(Host, { attachTo: document.body })
    push(socket, 'call.answered', ANSWERED)
    await flushPromises()
    expect(wrapper.find(`[data-test="call-pop-${LINKEDID}"]`).exists()).toBe(true)
    expect(JSON.parse(storage.getItem(STORAGE_KEY) ?? '[]')).toEqual([{ linkedid: LINKEDID, window: 'xingning', category: 'legal' }])
    // The caller's number is not written to the browser's storage.
    expect(storage.getItem(STORAGE_KEY)).not.toContain('13900000001')
    push(socket, 'call.ended', { ...ANSWERED, linkedid: 'someone-else.1', talk_seconds: 60, ended_at: '2026-12-02T02:05:00Z', survey: null, joint: false })
    await flushPromises()
    expect(wrapper.find(`[data-test="call-pop-${LINKEDID}"]`).exists()).toBe(true)
    push(socket, 'call.ended', { ...ANSWERED, talk_seconds: 60, ended_at: '2026-12-02T02:05:00Z', survey: null, joint: false })
    await flushPromises()
    expect(wrapper.find('[data-test="call-pops"]').exists()).toBe(false)
    expect(wrapper.find(`[data-test="call-controls-${LINKEDID}"]`).exists()).toBe(false)
    expect(storage.getItem(STORAGE_KEY)).toBeNull()
    wrapper.unmount()
  })

  it('comes back after a page reload while the call is still up', async () => {
    const storage = new MemoryStorage()
    storage.setItem(STORAGE_KEY, JSON.stringify([{ linkedid: LINKEDID, window: 'xingning', category: 'legal' }]))
    const { server, socket, desk, pops, Host } = setUp({}, storage)
    await started(desk, socket)
    const wrapper = mount(Host, { attachTo: document.body })
    await flushPromises()
    expect(server.calls.map((c) => c.path)).toEqual([`/api/screen-pop?linkedid=${LINKEDID}`])
    expect(wrapper.find(`[data-test="call-pop-${LINKEDID}"] [data-test="call-pop-caller"]`).text()).toBe('13900000001')
    expect(wrapper.find('[data-test="pop-member"]').text()).toBe('王经理')
    expect(wrapper.find(`[data-test="call-controls-${LINKEDID}"]`).exists()).toBe(true)
    expect(pops.state.calls).toHaveLength(1)
    // The same call pushed again after the reconnect is not a second pop.
    push(socket, 'call.answered', ANSWERED)
    await flushPromises()
    expect(pops.state.calls).toHaveLength(1)
    expect(desk.state.calls).toHaveLength(1)
    wrapper.unmount()
  })

  it('is not brought back after a reload when the call ended meanwhile (or is unknown)', async () => {
    for (const reply of [
      { status: 200, body: { ...POP, calls: [{ ...POP.calls[0], outcome: 'answered' }] } },
      { status: 404, body: { error: { id: 'call_not_found', message: 'x' } } },
    ]) {
      const storage = new MemoryStorage()
      storage.setItem(STORAGE_KEY, JSON.stringify([{ linkedid: LINKEDID, window: 'xingning', category: null }, { bogus: 1 }]))
      const { socket, desk, pops } = setUp({ 'GET /api/screen-pop': reply }, storage)
      await started(desk, socket)
      await flushPromises()
      expect(pops.state.calls).toEqual([])
      expect(desk.state.calls).toEqual([])
      expect(storage.getItem(STORAGE_KEY)).toBeNull()
    }
  })

  it('keeps the work-order dialog open when the caller hangs up while the agent types', async () => {
    const { socket, desk, Host } = setUp()
    await started(desk, socket)
    const wrapper = mount(Host, { attachTo: document.body })
    push(socket, 'call.answered', ANSWERED)
    await flushPromises()
    await wrapper.find('[data-test="call-pop-ticket"]').trigger('click')
    push(socket, 'call.ended', { ...ANSWERED, talk_seconds: 60, ended_at: '2026-12-02T02:05:00Z', survey: null, joint: false })
    await flushPromises()
    expect(wrapper.find(`[data-test="call-pop-${LINKEDID}"]`).exists()).toBe(false)
    expect(wrapper.find('[data-test="ticket-dialog"]').exists()).toBe(true)
    wrapper.unmount()
  })
})

describe('the console', () => {
  it('places the call controls for my answered call, clears them on call.ended, and notifies an SLA breach of mine', async () => {
    sessionStorage.clear()
    const { session } = sessionOn({
      'GET /api/health': { status: 200, body: { status: 'ok', version: '0.1.0', database: 'pg', redis: true, telephony: 'not_configured' } },
      'GET /api/tickets': { status: 200, body: { items: [], next_cursor: null } },
      'GET /api/chats': { status: 200, body: { items: [] } },
      'GET /api/screen-pop': { status: 200, body: POP },
    })
    session.setUser({ ...AGENT })
    const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/', name: 'console', component: ConsoleView }] })
    const socket = new FakeSocket()
    const { provide } = provideSession(session)
    const wrapper = mount(ConsoleView, { global: { provide: { ...provide, [LIVE_KEY as symbol]: () => socket }, plugins: [router] }, attachTo: document.body })
    await flushPromises()
    socket.open()
    push(socket, 'call.answered', ANSWERED)
    await flushPromises()
    expect(wrapper.find(`[data-test="call-controls-${LINKEDID}"]`).exists()).toBe(true)
    push(socket, 'call.ended', { ...ANSWERED, talk_seconds: 60, ended_at: '2026-12-02T02:05:00Z', survey: null, joint: false })
    await flushPromises()
    expect(wrapper.find(`[data-test="call-controls-${LINKEDID}"]`).exists()).toBe(false)
    expect(wrapper.find('[data-test="call-pops"]').exists()).toBe(false)
    socket.push('ticket.sla_warning', {
      id: 'e5',
      name: 'ticket.sla_warning',
      at: '2026-12-02T02:00:00Z',
      payload: { ticket_id: 12, number: 'MZ2026120077', assignee_id: AGENT.id, clock: 'resolution', due_at: '2026-12-02T03:00:00Z' },
    })
    await flushPromises()
    expect([...document.body.querySelectorAll('.el-notification')].map((n) => n.textContent).join()).toContain('MZ2026120077')
    wrapper.unmount()
  })
})

describe('the console of an invited expert', () => {
  it('starts the chat panel with the chats I was invited into and nothing of calls', async () => {
    sessionStorage.clear()
    const { session, calls } = sessionOn({
      'GET /api/health': { status: 200, body: { status: 'ok', version: '0.1.0', database: 'pg', redis: true, telephony: 'not_configured' } },
      'GET /api/tickets': { status: 200, body: { items: [], next_cursor: null } },
      'GET /api/chats': { status: 403, body: { error: { id: 'permission_denied', message: 'no' } } },
      'GET /api/chats/invited': { status: 200, body: { items: [] } },
    })
    session.setUser({ ...AGENT, id: 21, username: 'expert1', role: 'expert', window_code: null })
    const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/', name: 'console', component: ConsoleView }] })
    const socket = new FakeSocket()
    const { provide } = provideSession(session)
    const wrapper = mount(ConsoleView, { global: { provide: { ...provide, [LIVE_KEY as symbol]: () => socket }, plugins: [router] }, attachTo: document.body })
    await flushPromises()
    socket.open()
    await flushPromises()
    const paths = calls.map((c) => `${c.method} ${c.path.split('?')[0]}`)
    expect(paths).toContain('GET /api/chats/invited')
    expect(paths.filter((p) => p.includes('/api/telephony/calls') || p.includes('/api/screen-pop'))).toEqual([])
    expect(wrapper.find('[data-test="chat-panel"]').exists()).toBe(true)
    wrapper.unmount()
  })
})
