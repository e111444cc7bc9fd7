// Files, invited experts and transfer to a named agent in the console's chat
// panel, and files in the portal widget (docs/webchat.md).
import { flushPromises, mount, type VueWrapper } from '@vue/test-utils'
import { afterEach, describe, expect, it } from 'vitest'

import { ApiClient } from '../src/api'
import { formatSize, precheck } from '../src/chat/attachments'
import { createChatDesk } from '../src/chat/desk'
import ChatPanel from '../src/components/chat/ChatPanel.vue'
import { ChatWidget } from '../src/widget/widget'
import { FakeSocket, message } from './fakeSocket'
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
  ...ASSIGNED,
  id: 5,
  phone: null,
  member_id: null,
  chosen_county_code: null,
  state: 'assigned',
  end_reason: null,
  agent_id: 7,
  assigned_at: '2026-12-02T02:00:00Z',
  ended_at: null,
  queue_position: null,
  ticket_id: null,
  ticket_ref: null,
  last_seq: 0,
  ip_area: 'meizhou',
  joint: false,
}

const PNG_LINE = {
  chat_id: 5,
  seq: 3,
  sender_kind: 'agent',
  sender_user_id: 7,
  sender_name: '兴宁坐席一',
  client_id: 'c-file',
  body: '营业执照.png',
  created_at: '2026-12-02T02:01:00Z',
  attachment: { id: 11, filename: '营业执照.png', content_type: 'image/png', size: 2048 },
}

function pngFile(name = '营业执照.png', size = 2048): File {
  return new File([new Uint8Array(size)], name, { type: 'image/png' })
}

let wrappers: VueWrapper[] = []
afterEach(() => {
  for (const w of wrappers) w.unmount()
  wrappers = []
})

function setUp(extra: Routes = {}) {
  const routes: Routes = {
    'GET /api/chats': { status: 200, body: { items: [] } },
    'GET /api/chats/invited': { status: 200, body: { items: [] } },
    'GET /api/webchat/canned-replies': { status: 200, body: { items: [] } },
    'GET /api/contacts/wrapups/pending': { status: 200, body: { items: [] } },
    'GET /api/chats/5': { status: 200, body: DETAIL },
    'GET /api/screen-pop': { status: 200, body: {} },
    ...extra,
  }
  const server = fakeServer(routes)
  const cookies = (): string => 'smeline_csrf=csrf-1'
  const api = new ApiClient({ fetch: server.fetch, cookies })
  const socket = new FakeSocket()
  const desk = createChatDesk(api, socket, { windowCode: 'xingning', fetch: server.fetch, cookies })
  const wrapper = mount(ChatPanel, { props: { desk }, attachTo: document.body })
  wrappers.push(wrapper)
  return { wrapper, socket, desk, calls: server.calls }
}

async function assign(socket: FakeSocket, pop: Record<string, unknown> = ASSIGNED, event = 'chat.assigned'): Promise<void> {
  socket.push(event, pop)
  await flushPromises()
}

/** An Element Plus component's event, as a user's choice in it would emit it. */
function emitOn(wrapper: VueWrapper, test: string, event: string, value: unknown): void {
  ;(wrapper.findComponent(`[data-test="${test}"]`) as VueWrapper).vm.$emit(event, value)
}

function pick(wrapper: VueWrapper, input: string, file: File): void {
  const el = wrapper.find(`[data-test="${input}"]`).element as HTMLInputElement
  Object.defineProperty(el, 'files', { value: [file], configurable: true })
  el.dispatchEvent(new Event('change'))
}

describe('files in the console', () => {
  it('sends a picked file as multipart with the CSRF token and shows name, size, link and thumbnail', async () => {
    const { wrapper, socket, desk, calls } = setUp({
      'POST /api/chats/5/attachments': { status: 201, body: PNG_LINE },
    })
    await desk.start()
    socket.open()
    await assign(socket)
    pick(wrapper, 'chat-file-input', pngFile())
    await flushPromises()
    const upload = calls.find((c) => c.method === 'POST' && c.path === '/api/chats/5/attachments') as Recorded
    expect(upload.headers['X-CSRF-Token']).toBe('csrf-1')
    expect(upload.headers['Content-Type']).toBeUndefined() // the browser writes the boundary
    const file = wrapper.find('[data-test="chat-file"]')
    expect(file.find('[data-test="chat-file-link"]').text()).toBe('营业执照.png')
    expect(file.find('[data-test="chat-file-link"]').attributes('href')).toBe('/api/chats/5/attachments/11')
    expect(file.find('[data-test="chat-file-size"]').text()).toBe('2.0 KB')
    expect(file.find('[data-test="chat-thumb"]').attributes('src')).toBe('/api/chats/5/attachments/11')
    // The push of the same line does not show it twice.
    socket.push('chat.message', { ...PNG_LINE, id: '5:3' })
    await flushPromises()
    expect(wrapper.findAll('[data-test="chat-file"]')).toHaveLength(1)
  })

  it('says in Chinese why a file is refused, before uploading or from the server', async () => {
    const { wrapper, socket, desk, calls } = setUp({
      'POST /api/chats/5/attachments': { status: 415, body: { error: { id: 'attachment_type', message: 'x' } } },
    })
    await desk.start()
    socket.open()
    await assign(socket)
    pick(wrapper, 'chat-file-input', pngFile('大文件.png', 11 * 1024 * 1024))
    await flushPromises()
    expect(wrapper.find('[data-test="chat-problem"]').text()).toContain('文件太大')
    expect(calls.some((c) => c.path.endsWith('/attachments'))).toBe(false)
    pick(wrapper, 'chat-file-input', pngFile('伪装.png'))
    await flushPromises()
    expect(wrapper.find('[data-test="chat-error"]').text()).toContain('不支持该文件类型')
  })

  it('shows a file a visitor sent, and never renders a name as HTML', async () => {
    const { wrapper, socket, desk } = setUp()
    await desk.start()
    socket.open()
    await assign(socket)
    const name = '<img src=x onerror=alert(1)>.pdf'
    socket.push('chat.message', message({ seq: 4, chat_id: 5, body: name, attachment: { id: 12, filename: name, content_type: 'application/pdf', size: 10 } }))
    await flushPromises()
    const file = wrapper.find('[data-test="chat-file"]')
    expect(file.find('[data-test="chat-file-link"]').text()).toBe(name)
    expect(file.find('[data-test="chat-thumb"]').exists()).toBe(false)
    expect(file.element.querySelectorAll('img')).toHaveLength(0)
  })
})

describe('transfer to a named agent and inviting an expert', () => {
  it('lists the window\'s agents with their free capacity and transfers to the one picked', async () => {
    const { wrapper, socket, desk, calls } = setUp({
      'GET /api/chats/agents': {
        status: 200,
        body: {
          items: [
            { user_id: 21, display_name: '梅江坐席甲', window_code: 'meijiang', online: true, capacity: 3, active_chats: 1, free: 2 },
            { user_id: 22, display_name: '梅江坐席乙', window_code: 'meijiang', online: true, capacity: 3, active_chats: 3, free: 0 },
            { user_id: 23, display_name: '梅江坐席丙', window_code: 'meijiang', online: false, capacity: 3, active_chats: 0, free: 3 },
          ],
        },
      },
      'POST /api/chats/5/transfer': { status: 200, body: { ...DETAIL, agent_id: 21, window_code: 'meijiang' } },
    })
    await desk.start()
    socket.open()
    await assign(socket)
    emitOn(wrapper, 'chat-transfer-to', 'update:modelValue', 'meijiang')
    await flushPromises()
    expect(calls.some((c) => c.path === '/api/chats/agents?window_code=meijiang')).toBe(true)
    const options = wrapper.findAll('[data-test^="chat-transfer-agent-"]').map((o) => [
      o.attributes('data-test'),
      o.text(),
      (o.element as HTMLOptionElement).disabled,
    ])
    expect(options).toEqual([
      ['chat-transfer-agent-21', '梅江坐席甲（在线，空闲 2）', false],
      ['chat-transfer-agent-22', '梅江坐席乙（在线，已满）', true],
      ['chat-transfer-agent-23', '梅江坐席丙（离线）', true],
    ])
    await wrapper.find('[data-test="chat-transfer-agent"]').setValue('21')
    await flushPromises()
    await wrapper.find('[data-test="chat-transfer"]').trigger('click')
    await flushPromises()
    const transfer = calls.find((c) => c.path === '/api/chats/5/transfer') as Recorded
    expect(transfer.body).toEqual({ to_user_id: 21 })
    expect(desk.state.chats).toHaveLength(0)
  })

  it('transfers to the window\'s queue when no agent is picked', async () => {
    const { wrapper, socket, desk, calls } = setUp({
      'GET /api/chats/agents': { status: 200, body: { items: [] } },
      'POST /api/chats/5/transfer': { status: 200, body: { ...DETAIL, state: 'queued' } },
    })
    await desk.start()
    socket.open()
    await assign(socket)
    emitOn(wrapper, 'chat-transfer-to', 'update:modelValue', 'city')
    await flushPromises()
    await wrapper.find('[data-test="chat-transfer"]').trigger('click')
    await flushPromises()
    expect((calls.find((c) => c.path === '/api/chats/5/transfer') as Recorded).body).toEqual({ window_code: 'city' })
  })

  it('invites an expert picked from the experts, and the chat shows as joint', async () => {
    const { wrapper, socket, desk, calls } = setUp({
      'GET /api/users': { status: 200, body: { items: [{ id: 31, display_name: '陈律师' }] } },
      'POST /api/chats/5/experts': { status: 201, body: { ...DETAIL, joint: true } },
    })
    await desk.start()
    socket.open()
    await assign(socket)
    await wrapper.find('[data-test="chat-expert-pick"]').trigger('focus')
    await flushPromises()
    expect(calls.some((c) => c.path === '/api/users?role=expert&active=true')).toBe(true)
    await wrapper.find('[data-test="chat-expert-pick"]').setValue('31')
    await flushPromises()
    await wrapper.find('[data-test="chat-invite"]').trigger('click')
    await flushPromises()
    expect((calls.find((c) => c.path === '/api/chats/5/experts') as Recorded).body).toEqual({ user_id: 31 })
    expect(wrapper.find('[data-test="chat-joint"]').exists()).toBe(true)
  })

  it('an expert, who has no desk list, finds the chats they are invited to', async () => {
    const { desk, socket } = setUp({
      'GET /api/chats': { status: 403, body: { error: { id: 'permission_denied', message: 'x' } } },
      'GET /api/chats/invited': { status: 200, body: { items: [DETAIL] } },
    })
    await desk.start()
    socket.open()
    await flushPromises()
    expect(desk.state.chats.map((c) => [c.id, c.as])).toEqual([[5, 'expert']])
  })

  it('an invited expert gets the chat, writes as an expert and can leave it', async () => {
    const { wrapper, socket, desk, calls } = setUp({
      'GET /api/auth/me': { status: 200, body: { id: 31 } },
      'DELETE /api/chats/5/experts/31': { status: 204 },
    })
    await desk.start()
    socket.open()
    await assign(socket, { ...ASSIGNED, agent_name: '兴宁坐席一' }, 'chat.invited')
    expect(desk.state.chats.map((c) => [c.id, c.as])).toEqual([[5, 'expert']])
    expect(wrapper.find('[data-test="chat-transfer"]').exists()).toBe(false)
    expect(wrapper.find('[data-test="chat-close"]').exists()).toBe(false)
    socket.push('chat.message', message({ seq: 2, chat_id: 5, sender_kind: 'agent', sender_name: '兴宁坐席一', body: '请专家看看' }))
    await flushPromises()
    expect(wrapper.text()).toContain('请专家看看')
    await wrapper.find('[data-test="chat-leave"]').trigger('click')
    await flushPromises()
    expect(calls.some((c) => c.method === 'DELETE' && c.path === '/api/chats/5/experts/31')).toBe(true)
    expect(desk.state.chats).toHaveLength(0)
  })
})

describe('files in the widget', () => {
  const STARTED = { chat_id: 1, token: 'tok-abc', state: 'assigned', closed: false, window_name: '兴宁市窗口', queue_position: null }
  let hosts: HTMLElement[] = []
  afterEach(() => {
    for (const host of hosts) host.remove()
    hosts = []
  })

  async function widgetWith(routes: Routes) {
    const server = fakeServer({ 'POST /api/chat/start': { status: 201, body: STARTED }, ...routes })
    const socket = new FakeSocket()
    const host = document.createElement('div')
    document.body.append(host)
    hosts.push(host)
    const widget = new ChatWidget(host, { base: 'https://kefu.example.cn', fetch: server.fetch, storage: null, connect: () => socket })
    const $ = (test: string): HTMLElement | null => widget.root.querySelector(`[data-test="${test}"]`)
    $('widget-launcher')!.click()
    const form = widget.root.querySelector('form') as HTMLFormElement
    for (const [name, value] of Object.entries({ name: '张女士', company: '', phone: '', county: '441481', category: 'financing' })) {
      ;(form.elements.namedItem(name) as HTMLInputElement).value = value
    }
    form.dispatchEvent(new Event('submit', { cancelable: true }))
    await flushPromises()
    socket.open()
    await flushPromises()
    return { widget, socket, calls: server.calls, $ }
  }

  function widgetPick(input: HTMLElement, file: File): void {
    Object.defineProperty(input, 'files', { value: [file], configurable: true })
    input.dispatchEvent(new Event('change'))
  }

  it('uploads with the visitor token only and shows the line with name, size and a link', async () => {
    const line = { ...PNG_LINE, chat_id: 1, sender_kind: 'visitor', sender_name: null, sender_user_id: null, attachment: { ...PNG_LINE.attachment, content_type: 'application/pdf', filename: '合同.pdf' }, body: '合同.pdf' }
    const env = await widgetWith({ 'POST /api/chat/1/attachments': { status: 201, body: line } })
    widgetPick(env.$('widget-file-input')!, new File([new Uint8Array(10)], '合同.pdf'))
    await flushPromises()
    const upload = env.calls.find((c) => c.path === 'https://kefu.example.cn/api/chat/1/attachments') as Recorded
    expect(upload.method).toBe('POST')
    expect(upload.headers['X-Chat-Token']).toBe('tok-abc')
    const file = env.$('widget-file')!
    expect(file.querySelector('[data-test="widget-file-link"]')!.textContent).toBe('合同.pdf')
    expect(file.querySelector('[data-test="widget-file-size"]')!.textContent).toBe('2.0 KB')
  })

  it('says plainly when a file is too large or of a kind it cannot send', async () => {
    const env = await widgetWith({
      'POST /api/chat/1/attachments': { status: 415, body: { error: { id: 'attachment_type', message: 'x' } } },
    })
    widgetPick(env.$('widget-file-input')!, new File([new Uint8Array(11 * 1024 * 1024)], '照片.png'))
    await flushPromises()
    expect(env.$('widget-send-error')!.textContent).toContain('文件太大')
    expect(env.calls.some((c) => c.path.endsWith('/attachments'))).toBe(false)
    widgetPick(env.$('widget-file-input')!, new File([new Uint8Array(4)], '安装包.exe'))
    await flushPromises()
    expect(env.$('widget-send-error')!.textContent).toContain('不支持该文件类型')
    widgetPick(env.$('widget-file-input')!, new File([new Uint8Array(4)], '照片.png'))
    await flushPromises()
    expect(env.calls.some((c) => c.path.endsWith('/attachments'))).toBe(true)
    expect(env.$('widget-send-error')!.textContent).toContain('不支持该文件类型')
  })
})

describe('file helpers', () => {
  it('prechecks size and extension and writes sizes as offices read them', () => {
    expect(precheck({ name: 'a.PNG', size: 10 })).toBeNull()
    expect(precheck({ name: 'a.exe', size: 10 })).toBe('attachment_type')
    expect(precheck({ name: 'a.pdf', size: 0 })).toBe('attachment_empty')
    expect(precheck({ name: 'a.pdf', size: 11 * 1024 * 1024 })).toBe('attachment_too_large')
    expect(formatSize(512)).toBe('512 B')
    expect(formatSize(1536)).toBe('1.5 KB')
    expect(formatSize(3 * 1024 * 1024)).toBe('3.0 MB')
  })
})
