import { flushPromises } from '@vue/test-utils'
import { afterEach, describe, expect, it } from 'vitest'

import { ChatWidget, validateForm } from '../src/widget/widget'
import { FakeSocket, message } from './fakeSocket'
import { fakeServer, type Routes } from './helpers'

const STARTED = { chat_id: 1, token: 'tok-abc', state: 'queued', closed: false, window_name: '兴宁市窗口', queue_position: 3 }

let hosts: HTMLElement[] = []
afterEach(() => {
  for (const host of hosts) host.remove()
  hosts = []
})

function setUp(routes: Routes = {}) {
  const server = fakeServer({ 'POST /api/chat/start': { status: 201, body: STARTED }, ...routes })
  const socket = new FakeSocket()
  const tokens: string[] = []
  const host = document.createElement('div')
  document.body.append(host)
  hosts.push(host)
  const storage = new Map<string, string>()
  const widget = new ChatWidget(host, {
    base: 'https://kefu.example.cn/',
    fetch: server.fetch,
    maxChars: 20,
    storage: {
      getItem: (k: string) => storage.get(k) ?? null,
      setItem: (k: string, v: string) => void storage.set(k, v),
      removeItem: (k: string) => void storage.delete(k),
    } as Storage,
    connect: (token) => {
      tokens.push(token)
      return socket
    },
  })
  const $ = (test: string): HTMLElement | null => widget.root.querySelector(`[data-test="${test}"]`)
  const $$ = (test: string): HTMLElement[] => Array.from(widget.root.querySelectorAll(`[data-test="${test}"]`))
  return { widget, socket, calls: server.calls, tokens, $, $$, storage }
}

function fill(widget: ChatWidget, values: Record<string, string>): void {
  const form = widget.root.querySelector('form') as HTMLFormElement
  for (const [name, value] of Object.entries(values)) {
    ;(form.elements.namedItem(name) as HTMLInputElement).value = value
  }
  form.dispatchEvent(new Event('submit', { cancelable: true }))
}

async function startChat(env: ReturnType<typeof setUp>): Promise<void> {
  env.$('widget-launcher')!.click()
  fill(env.widget, { name: '张女士', company: '兴宁市某某电子厂', phone: '', county: '441481', category: 'financing' })
  await flushPromises()
}

describe('the pre-chat form', () => {
  it('checks name, phone, county and category', () => {
    const ok = { name: '张女士', company: '', phone: '', county: '', category: 'information' }
    expect(validateForm(ok)).toEqual({})
    expect(validateForm({ ...ok, name: '  ' })).toEqual({ name: 'widget.nameRequired' })
    expect(validateForm({ ...ok, name: '名'.repeat(65) })).toEqual({ name: 'widget.nameTooLong' })
    expect(validateForm({ ...ok, phone: '138<script>' })).toEqual({ phone: 'widget.phoneInvalid' })
    expect(validateForm({ ...ok, county: '110000' })).toEqual({ county: 'widget.countyInvalid' })
    expect(validateForm({ ...ok, category: '' })).toEqual({ category: 'widget.categoryRequired' })
    expect(validateForm({ ...ok, company: 'x'.repeat(201) })).toEqual({ company: 'widget.companyTooLong' })
  })

  it('says what is missing and sends nothing until it is right', async () => {
    const env = setUp()
    env.$('widget-launcher')!.click()
    fill(env.widget, { name: '', phone: '12ab' })
    await flushPromises()
    const errors = Array.from(env.widget.root.querySelectorAll('[data-error]')).map((e) => e.textContent)
    expect(errors).toContain('请填写您的称呼')
    expect(errors).toContain('电话号码格式不正确')
    expect(errors).toContain('请选择咨询类别')
    expect(env.calls).toEqual([])

    fill(env.widget, { name: ' 张女士 ', phone: '0753-2223333', category: 'legal' })
    await flushPromises()
    expect(env.calls[0]).toMatchObject({
      method: 'POST',
      path: 'https://kefu.example.cn/api/chat/start',
      body: { name: '张女士', company: '', phone: '0753-2223333', county_code: null, category_code: 'legal' },
    })
    expect(env.tokens).toEqual(['tok-abc'])
    expect(env.$('widget-status')!.textContent).toBe('正在为您安排客服，前面还有 3 位')
  })

  it('shows the server refusal in Chinese and lets the visitor try again', async () => {
    const env = setUp({ 'POST /api/chat/start': { status: 429, body: { error: { id: 'chat_start_throttled', message: 'slow' } } } })
    await startChat(env)
    expect(env.$('widget-form-error')!.textContent).toBe('请求过于频繁，请稍后再试')
    expect((env.$('widget-start') as HTMLButtonElement).disabled).toBe(false)
  })
})

describe('the conversation in the widget', () => {
  it('shows each line once whether it comes by ack, push or re-fetch, and re-fetches after a reconnect', async () => {
    const env = setUp()
    const { socket } = env
    socket.connected = true
    socket.answer = (event, payload) => {
      if (event === 'chat.fetch') return { ok: true, messages: [], state: 'queued' }
      if (event === 'chat.send') {
        const p = payload as { client_id: string; body: string }
        return { ok: true, message: message({ seq: 2, sender_kind: 'visitor', body: p.body, client_id: p.client_id }) }
      }
      return { ok: true }
    }
    await startChat(env)
    expect(socket.sent('chat.fetch')).toEqual([{ since: 0 }])
    socket.push('chat.state', { chat_id: 1, state: 'assigned', queue_position: null, agent_name: '兴宁坐席一' })
    socket.push('chat.message', message({ seq: 1, sender_kind: 'agent', sender_name: '兴宁坐席一', body: '<img src=x onerror=alert(1)>您好' }))
    socket.push('chat.typing', { chat_id: 1, sender_kind: 'agent', typing: true })
    await flushPromises()
    expect(env.$('widget-status')!.textContent).toBe('客服 兴宁坐席一 为您服务')
    expect(env.$('widget-typing')!.hidden).toBe(false)
    expect(env.widget.root.querySelector('img')).toBeNull()
    expect(env.$$('widget-line')[0]!.textContent).toContain('<img src=x onerror=alert(1)>您好')

    const input = env.$('widget-input') as HTMLTextAreaElement
    input.value = '我想问贷款贴息'
    input.dispatchEvent(new Event('input'))
    expect(socket.sent('chat.typing')).toEqual([{ typing: true }])
    env.$('widget-send')!.click()
    await flushPromises()
    const sent = socket.sent('chat.send')[0] as { client_id: string }
    socket.push('chat.message', message({ seq: 2, sender_kind: 'visitor', body: '我想问贷款贴息', client_id: sent.client_id }))
    await flushPromises()
    expect(env.$$('widget-line').map((l) => l.querySelector('.bubble')!.textContent)).toEqual(['<img src=x onerror=alert(1)>您好', '我想问贷款贴息'])

    socket.drop()
    await flushPromises()
    expect(env.$('widget-status')!.textContent).toContain('网络中断')
    input.value = '断线时发的'
    env.$('widget-send')!.click()
    await flushPromises()
    expect(env.$$('widget-line-pending')).toHaveLength(1)
    socket.answer = (event, payload) => {
      if (event === 'chat.fetch') return { ok: true, messages: [message({ seq: 2, sender_kind: 'visitor', body: '我想问贷款贴息', client_id: sent.client_id }), message({ seq: 3, sender_kind: 'agent', body: '请稍等' })], state: { chat_id: 1, state: 'assigned', queue_position: null, agent_name: '兴宁坐席二' }, last_seq: 3 }
      const p = payload as { client_id: string; body: string }
      return { ok: true, message: message({ seq: 4, sender_kind: 'visitor', body: p.body, client_id: p.client_id }) }
    }
    socket.open()
    await flushPromises()
    expect(socket.sent('chat.fetch').at(-1)).toEqual({ since: 2 })
    expect(env.$$('widget-line').map((l) => l.querySelector('.bubble')!.textContent)).toEqual(['<img src=x onerror=alert(1)>您好', '我想问贷款贴息', '请稍等', '断线时发的'])
    expect(env.$$('widget-line-pending')).toHaveLength(0)
    expect(env.$('widget-status')!.textContent).toBe('客服 兴宁坐席二 为您服务')
  })

  it('learns after a reconnect that the chat ended meanwhile, and asks for the rating', async () => {
    const env = setUp()
    env.socket.connected = true
    env.socket.answer = () => ({ ok: true, data: { messages: [], state: { chat_id: 1, state: 'assigned', queue_position: null, agent_name: 'a' } } })
    await startChat(env)
    env.socket.drop()
    env.socket.answer = () => ({ ok: true, data: { messages: [message({ seq: 1, sender_kind: 'system', body: '坐席已结束会话' })], state: { chat_id: 1, state: 'ended', queue_position: null, agent_name: 'a' } } })
    env.socket.open()
    await flushPromises()
    expect(env.widget.phase).toBe('rating')
    expect(env.$('widget-rating')).not.toBeNull()
  })

  it('shows the length limit before sending and refuses a longer line', async () => {
    const env = setUp()
    env.socket.connected = true
    env.socket.answer = () => ({ ok: true, messages: [] })
    await startChat(env)
    const input = env.$('widget-input') as HTMLTextAreaElement
    input.value = '一'.repeat(21)
    input.dispatchEvent(new Event('input'))
    expect(env.$('widget-count')!.textContent).toBe('21/20')
    expect((env.$('widget-send') as HTMLButtonElement).disabled).toBe(true)
    expect(env.$('widget-send-error')!.textContent).toBe('消息不能超过 20 个字')
    expect(env.socket.sent('chat.send')).toEqual([])
  })
})

describe('moving to another portal page', () => {
  it('picks the chat up again from the tab\'s storage, and forgets an ended one', async () => {
    const env = setUp({
      'GET /api/chat/1': (call) =>
        call.headers['X-Chat-Token'] === 'tok-abc'
          ? { status: 200, body: { id: 1, state: 'queued', queue_position: 2, agent_name: null, end_reason: null, closed: false } }
          : { status: 401, body: { error: { id: 'chat_token_invalid' } } },
    })
    env.storage.set('smeline.chat', JSON.stringify({ chat_id: 1, token: 'tok-abc' }))
    env.socket.connected = true
    env.socket.answer = () => ({ ok: true, messages: [] })
    expect(await env.widget.resume()).toBe(true)
    await flushPromises()
    expect(env.tokens).toEqual(['tok-abc'])
    expect(env.$('widget-status')!.textContent).toBe('正在为您安排客服，前面还有 2 位')

    const other = setUp({ 'GET /api/chat/1': { status: 200, body: { id: 1, state: 'ended', queue_position: null } } })
    other.storage.set('smeline.chat', JSON.stringify({ chat_id: 1, token: 'tok-old' }))
    expect(await other.widget.resume()).toBe(false)
    expect(other.storage.size).toBe(0)
    expect(other.tokens).toEqual([])
  })
})

describe('the end of a chat in the widget', () => {
  it('asks for 满意 / 一般 / 不满意 with an optional comment, with the visitor token', async () => {
    const env = setUp({ 'POST /api/chat/1/rating': { status: 200, body: { id: 1, state: 'ended', satisfaction: 'satisfied' } } })
    env.socket.connected = true
    env.socket.answer = () => ({ ok: true, messages: [] })
    await startChat(env)
    env.socket.push('chat.ended', { chat_id: 1, reason: 'agent_closed' })
    await flushPromises()
    expect(env.$('widget-rating')!.textContent).toContain('请对本次服务进行评价')
    env.$('widget-rate-submit')!.click()
    expect(env.$('widget-rate-error')!.textContent).toBe('请选择满意、一般或不满意')
    env.$('widget-rate-satisfied')!.click()
    ;(env.$('widget-comment') as HTMLTextAreaElement).value = '  很及时  '
    env.$('widget-rate-submit')!.click()
    await flushPromises()
    const rating = env.calls.find((c) => c.path.endsWith('/rating'))
    expect(rating).toMatchObject({ method: 'POST', body: { satisfaction: 'satisfied', comment: '很及时' } })
    expect(rating?.headers['X-Chat-Token']).toBe('tok-abc')
    expect(env.$('widget-thanks')!.textContent).toBe('感谢您的评价！')
    expect(env.storage.size).toBe(0)
  })

  it('closing without rating sends nothing: the server counts it as no answer', async () => {
    const env = setUp()
    env.socket.connected = true
    env.socket.answer = () => ({ ok: true, messages: [] })
    await startChat(env)
    env.socket.push('chat.ended', { chat_id: 1, reason: 'agent_closed' })
    await flushPromises()
    const before = env.calls.length
    env.$('widget-minimize')!.click()
    await flushPromises()
    expect(env.calls.length).toBe(before)
    expect(env.widget.phase).toBe('idle')
  })

  it('when nobody can answer, takes a message and shows the work order short reference', async () => {
    const env = setUp({
      'POST /api/chat/start': { status: 201, body: { ...STARTED, state: 'ended', closed: true, queue_position: null } },
      'POST /api/chat/1/leave-message': { status: 201, body: { chat_id: 1, state: 'left_message', ticket_ref: '40912345' } },
    })
    await startChat(env)
    expect(env.tokens).toEqual([])
    expect(env.$('widget-offline')!.textContent).toContain('非服务时间')
    env.$('widget-leave-submit')!.click()
    expect(env.$('widget-leave-error')!.textContent).toBe('请填写留言内容')
    ;(env.$('widget-leave-text') as HTMLTextAreaElement).value = '想咨询技改补贴，请回电'
    ;(env.$('widget-leave-phone') as HTMLInputElement).value = '13800000000'
    env.$('widget-leave-submit')!.click()
    await flushPromises()
    expect(env.calls.at(-1)).toMatchObject({ path: 'https://kefu.example.cn/api/chat/1/leave-message', body: { body: '想咨询技改补贴，请回电', phone: '13800000000' } })
    expect(env.$('widget-ticket-ref')!.textContent).toBe('40912345')
  })
})
