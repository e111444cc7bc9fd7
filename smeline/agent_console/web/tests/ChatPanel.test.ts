import { flushPromises, mount } from '@vue/test-utils'
import { describe, expect, it } from 'vitest'

import { ApiClient } from '../src/api'
import { createChatDesk } from '../src/chat/desk'
import ChatPanel from '../src/components/chat/ChatPanel.vue'
import { FakeSocket, HOLD, message } from './fakeSocket'
import { fakeServer, type Recorded, type Routes } from './helpers'

const ASSIGNED = {
  chat_id: 5,
  window_code: 'xingning',
  visitor_name: '张女士',
  company: '兴宁市某某电子厂',
  county_code: '441481',
  category_code: 'financing',
  routing_reason: 'ip',
  created_at: '2026-12-02T01:59:00Z',
}

const DETAIL = {
  id: 5,
  visitor_id: 'v5',
  visitor_name: '张女士',
  company: '兴宁市某某电子厂',
  phone: '13800000000',
  member_id: null,
  chosen_county_code: null,
  county_code: '441481',
  category_code: 'financing',
  wanted_window_code: 'xingning',
  window_code: 'xingning',
  routing_reason: 'ip',
  ip_area: 'meizhou',
  visitor_ip: '198.51.100.70',
  state: 'assigned',
  end_reason: null,
  agent_id: 7,
  created_at: '2026-12-02T01:59:00Z',
  assigned_at: '2026-12-02T02:00:00Z',
  first_agent_reply_at: null,
  ended_at: null,
  requeued: 0,
  queue_position: null,
  satisfaction: null,
  satisfaction_comment: null,
  ticket_id: null,
  ticket_ref: null,
  last_seq: 0,
}

const SCREEN_POP = {
  phone: '13800000000',
  kind: 'mobile',
  is_meizhou: true,
  county_code: '441481',
  county_source: 'profile',
  enterprise: null,
  member: null,
  calls: [
    { linkedid: '1700000000.9', started_at: '2026-11-30T02:00:00Z', outcome: 'answered', window: 'xingning', agent_name: '兴宁坐席二', wait_seconds: 12, talk_seconds: 95, joint: false, ticket_ref: 'K7Q2' },
  ],
  chats: [
    // The chat on screen itself is not its own history.
    { id: 5, created_at: '2026-12-02T01:59:00Z', state: 'assigned', window_code: 'xingning', category_code: 'financing' },
    { id: 2, created_at: '2026-11-28T03:00:00Z', state: 'ended', window_code: 'xingning', category_code: 'legal' },
  ],
  tickets: [
    { id: 4, number: 'MZ2026100009', subject: '商标咨询', status: 'closed' },
    { id: 3, number: 'MZ2026110001', subject: '贷款贴息咨询', status: 'in_progress' },
  ],
}

const QUEUED = { ...DETAIL, id: 6, visitor_name: '李先生', state: 'queued', agent_id: null }

function chats(queued: unknown[] = []) {
  return (call: Recorded) => ({ status: 200, body: { items: call.path.includes('state=queued') ? queued : [] } })
}

function setUp(extra: Routes = {}, pending: unknown[] = []) {
  let owed = [...pending]
  const routes: Routes = {
    'GET /api/chats': chats([QUEUED]),
    'GET /api/webchat/canned-replies': { status: 200, body: { items: [{ id: 1, window_code: null, title: '问候', body: '您好，请问有什么可以帮您？' }] } },
    'GET /api/contacts/wrapups/pending': () => ({ status: 200, body: { items: owed } }),
    'GET /api/chats/5': { status: 200, body: DETAIL },
    'GET /api/screen-pop': { status: 200, body: SCREEN_POP },
    ...extra,
  }
  const server = fakeServer(routes)
  const api = new ApiClient({ fetch: server.fetch, cookies: () => '' })
  const socket = new FakeSocket()
  const desk = createChatDesk(api, socket, { windowCode: 'xingning' })
  const wrapper = mount(ChatPanel, { props: { desk }, attachTo: document.body })
  return { wrapper, socket, desk, calls: server.calls, setOwed: (items: unknown[]) => (owed = items) }
}

async function assign(socket: FakeSocket): Promise<void> {
  socket.push('chat.assigned', { id: 'e1', name: 'chat.assigned', at: '2026-12-02T02:00:00Z', payload: ASSIGNED })
  await flushPromises()
}

describe('the chat panel', () => {
  it('pops who is writing to the agent it was assigned to, with their calls, chats and work orders (open first)', async () => {
    const { wrapper, socket, desk, calls } = setUp()
    await desk.start()
    socket.open()
    await assign(socket)
    const pop = wrapper.find('[data-test="screen-pop"]')
    expect(pop.find('[data-test="pop-visitor"]').text()).toBe('张女士')
    expect(pop.find('[data-test="pop-company"]').text()).toBe('兴宁市某某电子厂')
    expect(pop.find('[data-test="pop-county"]').text()).toBe('兴宁市')
    expect(pop.find('[data-test="pop-category"]').text()).toBe('融资担保')
    expect(pop.find('[data-test="pop-reason"]').text()).toBe('按 IP 地址识别')
    expect(pop.findAll('[data-test="pop-ticket"]').map((w) => w.text().split(' · ')[0])).toEqual(['MZ2026110001', 'MZ2026100009'])
    expect(pop.find('[data-test="pop-ticket"]').classes()).toContain('hist__item--open')
    const pastCall = pop.find('[data-test="pop-call"]').text()
    expect(pastCall).toContain('兴宁市')
    expect(pastCall).toContain('已接听')
    expect(pastCall).toContain('兴宁坐席二')
    expect(pastCall).toContain('工单 K7Q2')
    expect(pop.findAll('[data-test="pop-chat"]')).toHaveLength(1)
    expect(pop.find('[data-test="pop-chat"]').text()).toContain('法律维权')
    expect(pop.find('[data-test="pop-chat"]').text()).toContain('已结束')
    expect(calls.filter((c) => c.path.startsWith('/api/screen-pop?')).map((c) => c.path)).toEqual(['/api/screen-pop?phone=13800000000'])
    expect(calls.some((c) => c.path.startsWith('/api/tickets'))).toBe(false)
    expect(socket.sent('chat.fetch')).toContainEqual({ chat_id: 5, since: 0 })
    // The window's room, for its queue counts (rooms do not survive a reconnect).
    expect(socket.sent('window.join')).toEqual([{ window_code: 'xingning' }])
    socket.push('chat.queue', { window_code: 'xingning', waiting: 4, longest_wait_seconds: 80 })
    await flushPromises()
    expect(wrapper.find('[data-test="chat-queue"]').text()).toBe('本窗口排队：4 人')
    socket.drop()
    socket.open()
    expect(socket.sent('window.join')).toHaveLength(2)
    wrapper.unmount()
  })

  it('says plainly when the chat has no phone, or a masked one, and asks nothing then', async () => {
    for (const [phone, shown] of [
      [null, 'pop-no-phone'],
      ['', 'pop-no-phone'],
      ['138****0000', 'pop-masked'],
    ] as const) {
      const { wrapper, socket, desk, calls } = setUp({ 'GET /api/chats/5': { status: 200, body: { ...DETAIL, phone } } })
      await desk.start()
      socket.open()
      await assign(socket)
      const history = wrapper.find('[data-test="pop-history"]')
      expect(history.find(`[data-test="${shown}"]`).exists()).toBe(true)
      expect(history.find('[data-test="pop-ticket"]').exists()).toBe(false)
      expect(history.find('[data-test="pop-tickets-empty"]').exists()).toBe(false)
      expect(calls.some((c) => c.path.startsWith('/api/screen-pop'))).toBe(false)
      wrapper.unmount()
    }
  })

  it('shows why the history could not be read instead of an empty one', async () => {
    const { wrapper, socket, desk } = setUp({ 'GET /api/screen-pop': { status: 403, body: { error: { id: 'forbidden', message: 'Forbidden' } } } })
    await desk.start()
    socket.open()
    await assign(socket)
    const history = wrapper.find('[data-test="pop-history"]')
    expect(history.find('[data-test="pop-error"]').text()).toContain('历史查询失败')
    expect(history.find('[data-test="pop-error"]').text()).not.toContain('Forbidden')
    expect(history.find('[data-test="pop-tickets-empty"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('shows a reply as pending until the ack, shows the visitor typing and says it is typing', async () => {
    const { wrapper, socket, desk } = setUp()
    await desk.start()
    socket.open()
    socket.answer = (event) => (event === 'chat.fetch' ? { ok: true, messages: [], state: 'assigned' } : { ok: true })
    await assign(socket)
    socket.push('chat.message', message({ chat_id: 5, seq: 1, body: '<b>你好</b>' }))
    // The server takes the reply but its ack is lost on the way back.
    socket.answer = (event) => (event === 'chat.reply' ? HOLD : { ok: true })
    await flushPromises()
    // Text, never HTML.
    expect(wrapper.find('[data-test="chat-line"] .line__body').text()).toBe('<b>你好</b>')
    expect(wrapper.find('[data-test="chat-line"] b').exists()).toBe(false)

    socket.push('chat.typing', { chat_id: 5, sender_kind: 'visitor', typing: true })
    await flushPromises()
    expect(wrapper.find('[data-test="chat-typing"]').text()).toBe('对方正在输入…')

    const input = wrapper.find('textarea')
    await input.setValue('请提供营业执照')
    expect(socket.sent('chat.typing')).toEqual([{ chat_id: 5, typing: true }])
    await wrapper.find('[data-test="chat-send"]').trigger('click')
    await flushPromises()
    const reply = socket.sent('chat.reply')[0] as { chat_id: number; client_id: string; body: string }
    expect(reply).toMatchObject({ chat_id: 5, body: '请提供营业执照' })
    expect(reply.client_id).toMatch(/^[0-9a-f-]{36}$/)
    expect(socket.sent('chat.typing').at(-1)).toEqual({ chat_id: 5, typing: false })
    expect(wrapper.find('[data-test="chat-line-pending"]').text()).toContain('发送中…')

    // The ack never came; the server pushes the stored line: it replaces the pending one.
    socket.push('chat.message', message({ chat_id: 5, seq: 2, sender_kind: 'agent', body: reply.body, client_id: reply.client_id }))
    socket.push('chat.message', message({ chat_id: 5, seq: 2, sender_kind: 'agent', body: reply.body, client_id: reply.client_id }))
    await flushPromises()
    expect(wrapper.find('[data-test="chat-line-pending"]').exists()).toBe(false)
    expect(wrapper.findAll('[data-test="chat-line"]').map((l) => l.find('.line__body').text())).toEqual(['<b>你好</b>', '请提供营业执照'])
    wrapper.unmount()
  })

  it('after a reconnect re-fetches since the last line and resends what was not acknowledged', async () => {
    const { wrapper, socket, desk } = setUp()
    await desk.start()
    socket.open()
    socket.answer = (event) => (event === 'chat.fetch' ? { ok: true, messages: [message({ chat_id: 5, seq: 1 })], state: 'assigned' } : { ok: true })
    await assign(socket)
    socket.drop()
    await flushPromises()
    expect(wrapper.find('[data-test="chat-connection"]').text()).toBe('连接中断，正在重连…')
    await wrapper.find('textarea').setValue('断线时写的')
    await wrapper.find('[data-test="chat-send"]').trigger('click')
    await flushPromises()
    expect(socket.sent('chat.reply')).toEqual([])
    expect(wrapper.find('[data-test="chat-offline"]').exists()).toBe(true)
    expect(wrapper.find('[data-test="chat-line-pending"]').exists()).toBe(true)

    let clientId = ''
    socket.answer = (event, payload) => {
      if (event === 'chat.fetch') return { ok: true, messages: [message({ chat_id: 5, seq: 2, body: '在吗' })], state: 'assigned' }
      const p = payload as { client_id: string; body: string }
      clientId = p.client_id
      return { ok: true, message: message({ chat_id: 5, seq: 3, sender_kind: 'agent', body: p.body, client_id: p.client_id }) }
    }
    socket.open()
    await flushPromises()
    expect(socket.sent('chat.fetch').at(-1)).toEqual({ chat_id: 5, since: 1 })
    expect(socket.sent('chat.reply')).toEqual([{ chat_id: 5, client_id: clientId, body: '断线时写的' }])
    expect(wrapper.findAll('[data-test="chat-line"]').map((l) => l.find('.line__body').text())).toEqual(['line 1', '在吗', '断线时写的'])
    expect(wrapper.find('[data-test="chat-line-pending"]').exists()).toBe(false)
    wrapper.unmount()
  })

  it('requires the wrap-up before the next contact, and says so plainly when the server refuses', async () => {
    const pendingChat = { contact_kind: 'chat', chat_id: 4, visitor_name: '王总', category_code: 'legal', enterprise_name: '', required: true }
    const { wrapper, socket, desk, calls, setOwed } = setUp(
      {
        'POST /api/chats/6/accept': { status: 409, body: { error: { id: 'wrapup_required', message: 'Wrap up first' } } },
        'POST /api/contacts/wrapups': () => {
          setOwed([])
          return { status: 201, body: { id: 1 } }
        },
      },
      [pendingChat],
    )
    await desk.start()
    socket.open()
    await flushPromises()
    expect(wrapper.find('[data-test="wrapup-owed"]').text()).toContain('还有 1 项服务登记未完成')
    expect(wrapper.find('[data-test="chat-accept-6"]').attributes('disabled')).toBeDefined()
    // No chat going on: the dialog is up at once, and cannot be put aside.
    const dialog = wrapper.find('[data-test="wrapup-dialog"]')
    expect(dialog.exists()).toBe(true)
    expect(dialog.find('[data-test="modal-close"]').exists()).toBe(false)

    // Even if a click got through, the desk refuses before asking the server.
    expect(await desk.accept(6)).toBe(false)
    expect(calls.some((c) => c.path === '/api/chats/6/accept')).toBe(false)
    await flushPromises()
    expect(wrapper.find('[data-test="chat-error"]').text()).toBe('请先完成上一次服务的登记，再接入新的咨询或来电')

    await dialog.find('[data-test="wrapup-submit"]').trigger('click')
    await flushPromises()
    expect(wrapper.find('[data-test="wrapup-errors"]').text()).toContain('请填写企业名称')
    expect(wrapper.find('[data-test="wrapup-errors"]').text()).toContain('请选择办理结果')
    expect(calls.some((c) => c.method === 'POST' && c.path === '/api/contacts/wrapups')).toBe(false)

    await wrapper.find('[data-test="wrapup-enterprise"] input, input[data-test="wrapup-enterprise"]').setValue('梅州某某律所')
    await wrapper.find('[data-test="wrapup-result-resolved"]').setValue(true)
    await wrapper.find('[data-test="wrapup-submit"]').trigger('click')
    await flushPromises()
    const posted = calls.find((c) => c.method === 'POST' && c.path === '/api/contacts/wrapups')
    expect(posted?.body).toEqual({
      contact_kind: 'chat',
      chat_id: 4,
      enterprise_name: '梅州某某律所',
      category_code: 'legal',
      service_mode: 'online',
      result: 'resolved',
    })
    expect(wrapper.find('[data-test="wrapup-dialog"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="wrapup-owed"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="chat-accept-6"]').attributes('disabled')).toBeUndefined()

    // The server still says no (another contact of mine elsewhere): shown as it is.
    await wrapper.find('[data-test="chat-accept-6"]').trigger('click')
    await flushPromises()
    expect(wrapper.find('[data-test="chat-error"]').text()).toBe('请先完成上一次服务的登记，再接入新的咨询或来电')
    wrapper.unmount()
  })

  it('an escalated call is wrapped up as joint and nothing else', async () => {
    const call = { contact_kind: 'call', linkedid: '1733100000.42', joint: true, caller: '0753-2223333', category_code: 'technology', enterprise_name: '梅州某某机电' }
    const { wrapper, desk } = setUp({}, [call])
    await desk.start()
    await flushPromises()
    expect((wrapper.find('[data-test="wrapup-mode-joint"]').element as HTMLInputElement).checked).toBe(true)
    expect(wrapper.find('[data-test="wrapup-mode-online"]').attributes('disabled')).toBeDefined()
    expect(wrapper.find('[data-test="wrapup-mode-offline"]').attributes('disabled')).toBeDefined()
    wrapper.unmount()
  })

  it('opens a work order from the chat in two clicks: the prefilled dialog, then the confirmation', async () => {
    const { wrapper, socket, desk, calls } = setUp({
      'POST /api/contacts/ticket': { status: 201, body: { id: 9, number: 'MZ2026120009', short_ref: '40912345', subject: '融资担保咨询' } },
    })
    await desk.start()
    socket.open()
    await assign(socket)
    await wrapper.find('[data-test="chat-ticket"]').trigger('click')
    const dialog = wrapper.find('[data-test="ticket-dialog"]')
    expect((dialog.find('[data-test="ticket-enterprise"] input, input[data-test="ticket-enterprise"]').element as HTMLInputElement).value).toBe('兴宁市某某电子厂')
    expect(dialog.find('[data-test="ticket-category"]').text()).toContain('融资担保')
    expect(dialog.text()).toContain('兴宁市')
    expect(calls.some((c) => c.path === '/api/contacts/ticket')).toBe(false)
    await dialog.find('[data-test="ticket-confirm"]').trigger('click')
    await flushPromises()
    expect(calls.find((c) => c.path === '/api/contacts/ticket')?.body).toEqual({ contact_kind: 'chat', chat_id: 5 })
    expect(wrapper.find('[data-test="ticket-opened"]').text()).toBe('已开工单：MZ2026120009（查询码 40912345）')
    expect(desk.state.tickets['chat:5']?.id).toBe(9)
    wrapper.unmount()
  })

  it('sends what the agent corrected in the dialog, and nothing the server already knows', async () => {
    const { wrapper, socket, desk, calls } = setUp({
      'POST /api/contacts/ticket': { status: 201, body: { id: 9, number: 'MZ2026120009', short_ref: '40912345', subject: 'x' } },
    })
    await desk.start()
    socket.open()
    await assign(socket)
    await wrapper.find('[data-test="chat-ticket"]').trigger('click')
    const dialog = wrapper.find('[data-test="ticket-dialog"]')
    await dialog.find('[data-test="ticket-enterprise"] input, input[data-test="ticket-enterprise"]').setValue('兴宁市某某电子有限公司')
    await dialog.find('[data-test="ticket-subject"] input, input[data-test="ticket-subject"]').setValue('  贴息申请材料  ')
    await dialog.find('[data-test="ticket-confirm"]').trigger('click')
    await flushPromises()
    expect(calls.find((c) => c.path === '/api/contacts/ticket')?.body).toEqual({
      contact_kind: 'chat',
      chat_id: 5,
      enterprise_name: '兴宁市某某电子有限公司',
      subject: '贴息申请材料',
    })
    wrapper.unmount()
  })

  it('keeps several chats as tabs and counts unread lines of the others', async () => {
    const { wrapper, socket, desk } = setUp({ 'GET /api/chats/8': { status: 200, body: { ...DETAIL, id: 8, phone: null } } })
    await desk.start()
    socket.open()
    await assign(socket)
    socket.push('chat.assigned', { ...ASSIGNED, chat_id: 8, visitor_name: '陈经理' })
    await flushPromises()
    expect(wrapper.findAll('[role="tab"]').map((t) => t.text())).toEqual(['张女士', '陈经理'])
    expect(desk.state.activeId).toBe(8)
    socket.push('chat.message', message({ chat_id: 5, seq: 1, body: '还在吗' }))
    await flushPromises()
    expect(wrapper.find('[data-test="chat-tab-5"] [data-test="chat-unread"]').text()).toBe('1')
    await wrapper.find('[data-test="chat-tab-5"]').trigger('click')
    expect(wrapper.find('[data-test="chat-tab-5"] [data-test="chat-unread"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="pop-visitor"]').text()).toBe('张女士')
    socket.push('chat.ended', { chat_id: 5, reason: 'visitor_left' })
    await flushPromises()
    expect(wrapper.find('[data-test="chat-ended"]').text()).toContain('访客已离开')
    wrapper.unmount()
  })
})
