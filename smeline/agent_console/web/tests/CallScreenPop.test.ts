import { flushPromises, mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'
import { reactive } from 'vue'
import { createMemoryHistory, createRouter } from 'vue-router'

import { ApiClient } from '../src/api'
import CallScreenPop from '../src/components/screenpop/CallScreenPop.vue'
import { ContactsApi, type OpenedTicket } from '../src/contacts/api'
import { LIVE_KEY } from '../src/live/provide'
import { createCallPops } from '../src/screenpop/api'
import ConsoleView from '../src/views/ConsoleView.vue'
import { FakeSocket } from './fakeSocket'
import { AGENT, fakeServer, provideSession, sessionOn, type Routes } from './helpers'

const ANSWERED = {
  linkedid: '1700000100.7',
  direction: 'inbound',
  caller_number: '13900000001',
  county: '441481',
  category: 'financing',
  window: 'xingning',
  queue: 'q-xingning',
  agent_interface: 'PJSIP/agent-7',
  wait_seconds: 21,
  outcome: 'answered',
  agent_name: '兴宁坐席一',
}

const POP = {
  phone: '13900000001',
  kind: 'mobile',
  is_meizhou: true,
  county_code: '441481',
  county_source: 'member',
  enterprise: { id: 9, name: '兴宁市某某电子厂', credit_code: '91441481MA00000000', county_code: '441481' },
  member: { id: 4, name: '王经理', enterprise_id: 9, county_code: '441481' },
  calls: [
    // The call being answered is not its own history.
    { linkedid: '1700000100.7', started_at: '2026-12-02T02:00:00Z', outcome: 'in_progress', window: 'xingning', agent_name: '兴宁坐席一', wait_seconds: 21, talk_seconds: 0, joint: false, ticket_ref: null },
    { linkedid: '1690000000.1', started_at: '2026-11-20T02:00:00Z', outcome: 'abandoned', window: 'city', agent_name: null, wait_seconds: 60, talk_seconds: 0, joint: false, ticket_ref: null },
  ],
  chats: [{ id: 31, created_at: '2026-11-25T03:00:00Z', state: 'left_message', window_code: 'xingning', category_code: 'legal' }],
  tickets: [
    { id: 8, number: 'MZ2026090002', subject: '旧工单', status: 'archived' },
    { id: 12, number: 'MZ2026110020', subject: '贴息申请', status: 'waiting_customer' },
  ],
}

function setUp(extra: Routes = {}) {
  const server = fakeServer({ 'GET /api/screen-pop': { status: 200, body: POP }, ...extra })
  const api = new ApiClient({ fetch: server.fetch, cookies: () => '' })
  const socket = new FakeSocket()
  const pops = createCallPops(api, socket)
  pops.start()
  const tickets = reactive<Record<string, OpenedTicket>>({})
  const wrapper = mount(CallScreenPop, {
    props: { pops, contacts: new ContactsApi(api), tickets, onOpened: (key: string, ticket: OpenedTicket) => (tickets[key] = ticket) },
    attachTo: document.body,
  })
  return { wrapper, socket, pops, calls: server.calls, tickets }
}

async function answer(socket: FakeSocket, payload: unknown = ANSWERED): Promise<void> {
  socket.open()
  socket.push('call.answered', { id: 'e9', name: 'call.answered', at: '2026-12-02T02:00:21Z', payload })
  await flushPromises()
}

describe('the call screen pop', () => {
  it('shows nothing before a call is answered', () => {
    const { wrapper, calls } = setUp()
    expect(wrapper.find('[data-test="call-pops"]').exists()).toBe(false)
    expect(calls).toEqual([])
    wrapper.unmount()
  })

  it('on call.answered asks the screen pop by linkedid and shows who it is and their history, open work orders first', async () => {
    const { wrapper, socket, calls } = setUp()
    await answer(socket)
    expect(calls.map((c) => c.path)).toEqual(['/api/screen-pop?linkedid=1700000100.7'])
    const pop = wrapper.find('[data-test="call-pop-1700000100.7"]')
    expect(pop.find('[data-test="call-pop-caller"]').text()).toBe('13900000001')
    expect(pop.find('[data-test="pop-member"]').text()).toBe('王经理')
    expect(pop.find('[data-test="pop-enterprise"]').text()).toContain('兴宁市某某电子厂')
    expect(pop.find('[data-test="pop-county"]').text()).toBe('兴宁市')
    expect(pop.find('[data-test="pop-county-source"]').text()).toBe('按会员/企业登记识别县区')
    expect(pop.find('[data-test="pop-kind"]').text()).toContain('梅州号码')
    expect(pop.findAll('[data-test="pop-ticket"]').map((w) => w.text().split(' · ')[0])).toEqual(['MZ2026110020', 'MZ2026090002'])
    const past = pop.findAll('[data-test="pop-call"]')
    expect(past).toHaveLength(1)
    expect(past[0]?.text()).toContain('放弃')
    expect(past[0]?.text()).toContain('市中心')
    expect(pop.find('[data-test="pop-chat"]').text()).toContain('留言')
    wrapper.unmount()
  })

  it('says who is unknown and that there is no history rather than nothing', async () => {
    const { wrapper, socket } = setUp({
      'GET /api/screen-pop': {
        status: 200,
        body: { ...POP, kind: 'landline', is_meizhou: false, county_code: null, county_source: 'default', member: null, enterprise: null, calls: [], chats: [], tickets: [] },
      },
    })
    await answer(socket)
    expect(wrapper.find('[data-test="pop-member"]').text()).toBe('非注册会员')
    expect(wrapper.find('[data-test="pop-enterprise"]').text()).toBe('未关联企业')
    expect(wrapper.find('[data-test="pop-county"]').text()).toBe('县区未知')
    expect(wrapper.find('[data-test="pop-kind"]').text()).toContain('非梅州号码')
    for (const empty of ['pop-tickets-empty', 'pop-calls-empty', 'pop-chats-empty']) expect(wrapper.find(`[data-test="${empty}"]`).text()).toBe('无')
    wrapper.unmount()
  })

  it('shows the error in Chinese when the call is unknown, and still offers 开工单', async () => {
    const { wrapper, socket } = setUp({ 'GET /api/screen-pop': { status: 404, body: { error: { id: 'call_not_found', message: 'No such call' } } } })
    await answer(socket)
    const error = wrapper.find('[data-test="pop-error"]')
    expect(error.text()).toContain('历史查询失败')
    expect(error.text()).not.toContain('No such call')
    expect(wrapper.find('[data-test="pop-identity"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="call-pop-ticket"]').exists()).toBe(true)
    wrapper.unmount()
  })

  it('ignores a push without a linkedid and the same call pushed twice', async () => {
    const { wrapper, socket, calls } = setUp()
    await answer(socket, { ...ANSWERED, linkedid: '' })
    await answer(socket, null)
    expect(calls).toEqual([])
    await answer(socket)
    await answer(socket)
    expect(calls).toHaveLength(1)
    expect(wrapper.findAll('[data-test^="call-pop-1"]')).toHaveLength(1)
    wrapper.unmount()
  })

  it('opens a work order for the call through the contact dialog, with the linkedid', async () => {
    const opened = { id: 50, number: 'MZ2026120003', short_ref: 'P3X9', subject: '贴息申请' }
    const { wrapper, socket, calls, tickets } = setUp({ 'POST /api/contacts/ticket': { status: 201, body: opened } })
    await answer(socket)
    await wrapper.find('[data-test="call-pop-ticket"]').trigger('click')
    const dialog = wrapper.find('[data-test="ticket-dialog"]')
    expect(dialog.text()).toContain('电话 1700000100.7')
    expect(dialog.text()).toContain('王经理')
    await wrapper.find('[data-test="ticket-confirm"]').trigger('click')
    await flushPromises()
    expect(calls.find((c) => c.method === 'POST')?.body).toEqual({ contact_kind: 'call', linkedid: '1700000100.7' })
    expect(tickets['call:1700000100.7']).toEqual(opened)
    await wrapper.find('[data-test="ticket-done"]').trigger('click')
    expect(wrapper.find('[data-test="ticket-dialog"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="call-pop-ticket-opened"]').text()).toBe('工单 P3X9')
    wrapper.unmount()
  })

  it('is put away with 收起 and stops listening when stopped', async () => {
    const { wrapper, socket, pops, calls } = setUp()
    await answer(socket)
    await wrapper.find('[data-test="call-pop-dismiss"]').trigger('click')
    expect(wrapper.find('[data-test="call-pops"]').exists()).toBe(false)
    pops.stop()
    await answer(socket, { ...ANSWERED, linkedid: '1700000200.1' })
    expect(calls).toHaveLength(1)
    expect(pops.state.calls).toEqual([])
    wrapper.unmount()
  })
})

describe('the console', () => {
  it('pops an answered call from its /agent socket, and a work order opened there is the one the wrap-up links', async () => {
    const opened = { id: 51, number: 'MZ2026120004', short_ref: 'Q8M1', subject: '贴息申请' }
    const { session, calls } = sessionOn({
      'GET /api/health': { status: 200, body: { status: 'ok', version: '0.1.0', database: 'sqlite', redis: false, telephony: 'not_configured' } },
      'GET /api/tickets': { status: 200, body: { items: [], next_cursor: null } },
      'GET /api/chats': { status: 200, body: { items: [] } },
      'GET /api/screen-pop': { status: 200, body: POP },
      'POST /api/contacts/ticket': { status: 201, body: opened },
    })
    session.setUser({ ...AGENT })
    const router = createRouter({ history: createMemoryHistory(), routes: [{ path: '/', name: 'console', component: ConsoleView }] })
    const socket = new FakeSocket()
    const { provide } = provideSession(session)
    const wrapper = mount(ConsoleView, { global: { provide: { ...provide, [LIVE_KEY as symbol]: () => socket }, plugins: [router] } })
    await flushPromises()
    expect(wrapper.find('[data-test="call-pops"]').exists()).toBe(false)
    await answer(socket)
    expect(calls.some((c) => c.path === '/api/screen-pop?linkedid=1700000100.7')).toBe(true)
    expect(wrapper.find('[data-test="pop-member"]').text()).toBe('王经理')
    await wrapper.find('[data-test="call-pop-ticket"]').trigger('click')
    await wrapper.find('[data-test="ticket-confirm"]').trigger('click')
    await flushPromises()
    expect(wrapper.find('[data-test="call-pop-ticket-opened"]').text()).toBe('工单 Q8M1')
    wrapper.unmount()
    // Unmounted: the /agent socket is let go.
    expect(socket.connected).toBe(false)
  })
})
