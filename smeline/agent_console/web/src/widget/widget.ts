// The portal's chat widget (docs/widget.md): a button, the pre-chat form, the
// queue position, the conversation over /visitor, leave a message when nobody
// can answer, and the rating at the end. Plain DOM in a shadow root (the
// portal's styles do not reach in, ours do not leak out); no Vue, no Element
// Plus. Closing the panel without rating is "no answer": nothing is sent.
import { ApiError } from '../api'
import { ACCEPT, DEFAULT_MAX_BYTES, formatSize, isImage, precheck } from '../chat/attachments'
import { Conversation, lineLength, newClientId } from '../chat/conversation'
import type { Attachment, ChatMessage, ChatState, EndedPush, FetchResult, StatePush, TypingPush } from '../chat/types'
import { t, tDynamic } from '../i18n'
import type { MessageKey } from '../i18n'
import { pushedPayload, request, type LiveSocket } from '../live/request'
import { VisitorApi, type Fetch, type Satisfaction } from './api'
import { clear, h } from './dom'

export const COUNTIES = ['441402', '441403', '441481', '441426', '441427', '441422', '441423', '441424']
export const CATEGORIES = ['information', 'training', 'technology', 'startup', 'market', 'management', 'financing', 'legal', 'other']
const PHONE = /^[+0-9０-９\-() ]{3,32}$/
const LEAVE_MAX = 2000
const COMMENT_MAX = 500
const STORAGE_KEY = 'smeline.chat'

export type Phase = 'idle' | 'form' | 'chat' | 'offline' | 'left' | 'rating' | 'thanks'

export interface WidgetOptions {
  /** The smeline origin, e.g. https://kefu.example.gov.cn (data-smeline of the script tag). */
  base: string
  fetch?: Fetch
  /** Opens /visitor with the token (socket.io by default; the tests fake it). */
  connect: (token: string) => LiveSocket
  storage?: Storage | null
  maxChars?: number
  css?: string
}

export interface PreChatForm {
  name: string
  company: string
  phone: string
  county: string
  category: string
}

/** Problems of the pre-chat form, as catalogue keys by field. */
export function validateForm(form: PreChatForm): Partial<Record<keyof PreChatForm, MessageKey>> {
  const problems: Partial<Record<keyof PreChatForm, MessageKey>> = {}
  const name = form.name.trim()
  if (!name) problems.name = 'widget.nameRequired'
  else if (lineLength(name) > 64) problems.name = 'widget.nameTooLong'
  if (lineLength(form.company.trim()) > 200) problems.company = 'widget.companyTooLong'
  const phone = form.phone.trim()
  if (phone && !PHONE.test(phone)) problems.phone = 'widget.phoneInvalid'
  if (form.county && !COUNTIES.includes(form.county)) problems.county = 'widget.countyInvalid'
  if (!CATEGORIES.includes(form.category)) problems.category = 'widget.categoryRequired'
  return problems
}

export class ChatWidget {
  phase: Phase = 'idle'
  readonly root: ShadowRoot
  readonly api: VisitorApi
  conversation: Conversation | null = null
  socket: LiveSocket | null = null
  state: ChatState | null = null
  queuePosition: number | null = null
  agentName: string | null = null
  ticketRef: string | null = null
  private phone: string | null = null
  private readonly options: WidgetOptions
  private readonly panel: HTMLElement
  private readonly body: HTMLElement
  private readonly launcher: HTMLButtonElement
  private lines: HTMLElement | null = null
  private status: HTMLElement | null = null
  private typing: HTMLElement | null = null
  /** The socket was up once: down now means reconnecting, not connecting. */
  private wasConnected = false
  /** Blob URLs of the chat's files, fetched once each (the lines are redrawn often). */
  private readonly files = new Map<number, Promise<string>>()
  private uploading: string | null = null

  constructor(host: HTMLElement, options: WidgetOptions) {
    this.options = options
    this.api = new VisitorApi(options.base.replace(/\/+$/, ''), options.fetch)
    this.root = host.attachShadow({ mode: 'open' })
    if (options.css) this.root.append(h('style', {}, [options.css]))
    this.launcher = h('button', { type: 'button', class: 'launcher', 'data-test': 'widget-launcher' }, [t('widget.launcher')])
    this.launcher.addEventListener('click', () => this.open())
    this.body = h('div', { class: 'body' })
    const close = h('button', { type: 'button', class: 'x', 'aria-label': t('widget.minimize'), 'data-test': 'widget-minimize' }, ['×'])
    close.addEventListener('click', () => this.minimize())
    this.panel = h('section', { class: 'panel', hidden: true, role: 'dialog', 'aria-label': t('widget.title') }, [
      h('header', { class: 'head' }, [h('strong', {}, [t('widget.title')]), close]),
      this.body,
    ])
    this.root.append(this.launcher, this.panel)
  }

  /** Pick up a chat of this browser tab after a page change on the portal. */
  async resume(): Promise<boolean> {
    const saved = this.options.storage?.getItem(STORAGE_KEY)
    if (!saved) return false
    try {
      const { chat_id: chatId, token } = JSON.parse(saved) as { chat_id: number; token: string }
      this.api.chatId = chatId
      this.api.token = token
      const view = await this.api.view()
      if (view.state === 'ended' || view.state === 'left_message') {
        this.forget()
        return false
      }
      this.queuePosition = view.queue_position
      this.agentName = view.agent_name
      this.state = view.state
      this.openChat()
      return true
    } catch {
      this.forget()
      return false
    }
  }

  open(): void {
    this.panel.hidden = false
    this.launcher.hidden = true
    if (this.phase === 'idle') this.show('form')
  }

  minimize(): void {
    this.panel.hidden = true
    this.launcher.hidden = false
    // After the end, closing without rating is "no answer" (the server's rule).
    if (this.phase === 'rating' || this.phase === 'thanks' || this.phase === 'left') this.reset()
  }

  private reset(): void {
    this.stopChat()
    this.forget()
    this.phase = 'idle'
    this.ticketRef = null
    clear(this.body)
  }

  private forget(): void {
    this.options.storage?.removeItem(STORAGE_KEY)
  }

  private show(phase: Phase): void {
    this.phase = phase
    clear(this.body)
    this.lines = this.status = this.typing = null
    if (phase === 'form') this.body.append(this.renderForm())
    else if (phase === 'chat') this.body.append(...this.renderChat())
    else if (phase === 'offline') this.body.append(this.renderLeaveMessage())
    else if (phase === 'left') this.body.append(this.renderLeft())
    else if (phase === 'rating') this.body.append(...this.renderRating())
    else if (phase === 'thanks') this.body.append(h('p', { class: 'note', 'data-test': 'widget-thanks' }, [t('widget.thanks')]))
  }

  // --- the pre-chat form -------------------------------------------------------

  private renderForm(): HTMLElement {
    const field = (name: keyof PreChatForm, label: MessageKey, control: HTMLElement): HTMLElement =>
      h('label', { class: 'field' }, [h('span', {}, [t(label)]), control, h('small', { class: 'error', 'data-error': name })])
    const input = (name: string, max: number): HTMLInputElement =>
      h('input', { name, maxlength: String(max), autocomplete: name === 'phone' ? 'tel' : 'off' })
    const county = h('select', { name: 'county' }, [
      h('option', { value: '' }, [t('widget.countyAny')]),
      ...COUNTIES.map((c) => h('option', { value: c }, [tDynamic(`county.${c}`, 'county.unknown')])),
    ])
    const category = h('select', { name: 'category' }, [
      h('option', { value: '' }, [t('widget.choose')]),
      ...CATEGORIES.map((c) => h('option', { value: c }, [tDynamic(`category.${c}`, 'category.other')])),
    ])
    const submit = h('button', { type: 'submit', class: 'primary', 'data-test': 'widget-start' }, [t('widget.start')])
    const problem = h('p', { class: 'error', 'data-test': 'widget-form-error' })
    const form = h('form', { class: 'form', novalidate: true, 'data-test': 'widget-form' }, [
      h('p', { class: 'note' }, [t('widget.intro')]),
      field('name', 'widget.name', input('name', 64)),
      field('company', 'widget.company', input('company', 200)),
      field('phone', 'widget.phone', input('phone', 32)),
      field('county', 'widget.county', county),
      field('category', 'widget.category', category),
      problem,
      submit,
    ])
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      const value = (name: string): string => (form.elements.namedItem(name) as HTMLInputElement | HTMLSelectElement).value
      const data: PreChatForm = {
        name: value('name'),
        company: value('company'),
        phone: value('phone'),
        county: value('county'),
        category: value('category'),
      }
      const problems = validateForm(data)
      for (const el of Array.from(form.querySelectorAll<HTMLElement>('[data-error]'))) {
        const key = problems[el.dataset.error as keyof PreChatForm]
        el.textContent = key ? t(key) : ''
      }
      if (Object.keys(problems).length) return
      submit.disabled = true
      problem.textContent = ''
      void this.start(data).catch((error: unknown) => {
        submit.disabled = false
        problem.textContent = error instanceof ApiError ? error.message : t('error.unknown')
      })
    })
    return form
  }

  async start(form: PreChatForm): Promise<void> {
    this.phone = form.phone.trim() || null
    const started = await this.api.start({
      name: form.name.trim(),
      company: form.company.trim(),
      phone: this.phone,
      county_code: form.county || null,
      category_code: form.category,
    })
    this.options.storage?.setItem(STORAGE_KEY, JSON.stringify({ chat_id: started.chat_id, token: started.token }))
    this.queuePosition = started.queue_position
    this.state = started.state
    if (started.closed) {
      this.show('offline')
      return
    }
    this.openChat()
  }

  // --- the conversation --------------------------------------------------------

  private openChat(): void {
    const token = this.api.token ?? ''
    const socket = this.options.connect(token)
    this.socket = socket
    const conversation = new Conversation(
      {
        isConnected: () => socket.connected,
        send: (clientId, body) => request<{ message: ChatMessage }>(socket, 'chat.send', { client_id: clientId, body }),
        fetch: (since) => request<FetchResult>(socket, 'chat.fetch', { since }),
        typing: (typing) => {
          socket.emit('chat.typing', { typing })
        },
      },
      'visitor',
      {
        maxChars: this.options.maxChars,
        onFetchedState: (state) => {
          this.queuePosition = state.queue_position
          this.agentName = state.agent_name ?? this.agentName
        },
      },
    )
    this.conversation = conversation
    conversation.subscribe(() => this.renderLines())
    this.wasConnected = socket.connected
    socket.on('connect', () => {
      this.wasConnected = true
      this.renderStatus()
      void conversation.resync().then(() => {
        if (conversation.state) this.applyState(conversation.state)
      })
    })
    socket.on('disconnect', () => this.renderStatus())
    socket.on('chat.message', (raw: unknown) => conversation.receive(pushedPayload<ChatMessage>(raw)))
    socket.on('chat.typing', (raw: unknown) => {
      const push = pushedPayload<TypingPush>(raw)
      if (push.sender_kind === 'agent') conversation.setPeerTyping(push.typing)
    })
    socket.on('chat.state', (raw: unknown) => {
      const push = pushedPayload<StatePush>(raw)
      this.queuePosition = push.queue_position
      this.agentName = push.agent_name ?? this.agentName
      this.applyState(push.state)
    })
    socket.on('chat.ended', (raw: unknown) => {
      pushedPayload<EndedPush>(raw)
      this.applyState('ended')
    })
    this.show('chat')
    if (socket.connected) void conversation.resync()
  }

  private applyState(state: ChatState): void {
    this.state = state
    if (state === 'ended' && this.phase === 'chat') {
      this.stopChat(false)
      this.show('rating')
      return
    }
    if (state === 'left_message' && this.phase === 'chat') {
      this.show('left')
      return
    }
    this.renderStatus()
  }

  private stopChat(all = true): void {
    this.conversation?.stopTyping()
    this.socket?.disconnect()
    this.socket = null
    if (all) {
      this.conversation?.dispose()
      this.conversation = null
      for (const url of this.files.values()) void url.then((u) => URL.revokeObjectURL(u), () => undefined)
      this.files.clear()
    }
  }

  private renderChat(): HTMLElement[] {
    this.status = h('p', { class: 'status', 'data-test': 'widget-status' })
    this.lines = h('div', { class: 'lines', 'data-test': 'widget-lines', 'aria-live': 'polite' })
    this.typing = h('p', { class: 'typing', 'data-test': 'widget-typing', hidden: true }, [t('widget.agentTyping')])
    const max = this.conversation?.maxChars ?? 2000
    const text = h('textarea', { rows: '3', placeholder: t('widget.placeholder'), 'data-test': 'widget-input' })
    const count = h('small', { class: 'count', 'data-test': 'widget-count' }, [t('chat.count', { count: 0, max })])
    const problem = h('small', { class: 'error', 'data-test': 'widget-send-error' })
    const send = h('button', { type: 'button', class: 'primary', 'data-test': 'widget-send' }, [t('chat.send')])
    const picker = h('input', { type: 'file', accept: ACCEPT, hidden: true, 'data-test': 'widget-file-input' })
    const attach = h('button', { type: 'button', title: t('chat.attachHint', { max: formatSize(DEFAULT_MAX_BYTES) }), 'data-test': 'widget-attach' }, [
      t('widget.attach'),
    ])
    attach.addEventListener('click', () => picker.click())
    picker.addEventListener('change', () => {
      const file = picker.files?.[0]
      picker.value = ''
      if (file) void this.sendFile(file, problem)
    })
    const leave = h('button', { type: 'button', 'data-test': 'widget-leave' }, [t('widget.leaveInstead')])
    const end = h('button', { type: 'button', 'data-test': 'widget-end' }, [t('widget.end')])
    const updateCount = (): void => {
      const n = lineLength(text.value)
      count.textContent = t('chat.count', { count: n, max })
      count.classList.toggle('over', n > max)
      send.disabled = n > max
      if (n > max) problem.textContent = t('chat.tooLong', { max })
      else problem.textContent = ''
    }
    const doSend = (): void => {
      const refused = this.conversation?.send(text.value)
      if (refused === 'empty') problem.textContent = t('chat.empty')
      else if (refused === 'too_long') problem.textContent = t('chat.tooLong', { max })
      else if (refused === null) {
        text.value = ''
        updateCount()
      }
    }
    text.addEventListener('input', () => {
      updateCount()
      this.conversation?.noteTyping()
    })
    text.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault()
        doSend()
      }
    })
    send.addEventListener('click', doSend)
    leave.addEventListener('click', () => {
      this.stopChat()
      this.show('offline')
    })
    end.addEventListener('click', () => {
      void this.api.end().catch(() => undefined)
      this.stopChat(false)
      this.show('rating')
    })
    const compose = h('div', { class: 'compose' }, [
      text,
      h('div', { class: 'row' }, [count, problem]),
      h('div', { class: 'row' }, [picker, attach, leave, end, send]),
    ])
    queueMicrotask(() => {
      this.renderStatus()
      this.renderLines()
    })
    return [this.status, this.lines, this.typing, compose]
  }

  /** A file into the chat; a refusal is said in Chinese under the input. */
  async sendFile(file: File, problem: HTMLElement): Promise<void> {
    const refused = precheck(file)
    if (refused) {
      problem.textContent = tDynamic(`error.${refused}`, 'error.unknown')
      return
    }
    problem.textContent = ''
    this.uploading = file.name
    this.renderLines()
    try {
      const line = await this.api.upload(newClientId(), file)
      this.conversation?.receive(line)
    } catch (error) {
      problem.textContent = error instanceof ApiError ? error.message : t('error.unknown')
    } finally {
      this.uploading = null
      this.renderLines()
    }
  }

  private fileUrl(attachmentId: number): Promise<string> {
    let url = this.files.get(attachmentId)
    if (!url) {
      url = this.api.download(attachmentId).then((blob) => URL.createObjectURL(blob))
      url.catch(() => this.files.delete(attachmentId))
      this.files.set(attachmentId, url)
    }
    return url
  }

  private renderFile(file: Attachment): HTMLElement {
    const link = h('a', { href: '#', download: file.filename, rel: 'noopener', 'data-test': 'widget-file-link' }, [file.filename])
    const box = h('div', { class: 'bubble file', 'data-test': 'widget-file' }, [link, h('small', { 'data-test': 'widget-file-size' }, [formatSize(file.size)])])
    const useUrl = (url: string): void => {
      link.setAttribute('href', url)
    }
    if (isImage(file.content_type)) {
      const img = h('img', { alt: file.filename, class: 'thumb', 'data-test': 'widget-thumb' })
      box.prepend(img)
      void this.fileUrl(file.id).then((url) => {
        img.setAttribute('src', url)
        useUrl(url)
      }, () => undefined)
    }
    link.addEventListener('click', (event) => {
      if (link.getAttribute('href') !== '#') return
      event.preventDefault()
      void this.fileUrl(file.id).then((url) => {
        useUrl(url)
        link.click()
      }, () => undefined)
    })
    return box
  }

  private renderStatus(): void {
    if (!this.status) return
    const connected = this.socket?.connected ?? false
    let text: string
    if (!connected && this.socket && this.wasConnected) text = t('widget.reconnecting')
    else if (this.state === 'queued')
      text = this.queuePosition ? t('widget.queued', { position: this.queuePosition }) : t('widget.queuedNoPosition')
    else if (this.state === 'assigned') text = this.agentName ? t('widget.withAgent', { name: this.agentName }) : t('widget.assigned')
    else text = t('widget.connecting')
    this.status.textContent = text
    const leave = this.body.querySelector<HTMLButtonElement>('[data-test="widget-leave"]')
    if (leave) leave.hidden = this.state !== 'queued'
  }

  private renderLines(): void {
    const conversation = this.conversation
    if (!this.lines || !conversation) return
    clear(this.lines)
    for (const m of conversation.messages) {
      const who =
        m.sender_kind === 'visitor'
          ? t('chat.me')
          : m.sender_kind === 'system'
            ? t('chat.system')
            : m.sender_kind === 'expert'
              ? `${t('widget.expert')} ${m.sender_name ?? ''}`.trim()
              : (m.sender_name ?? t('widget.agent'))
      this.lines.append(
        h('div', { class: `line line--${m.sender_kind}`, 'data-test': 'widget-line' }, [
          h('small', {}, [who]),
          m.attachment ? this.renderFile(m.attachment) : h('div', { class: 'bubble' }, [m.body]),
        ]),
      )
    }
    if (this.uploading) {
      this.lines.append(
        h('div', { class: 'line line--visitor pending', 'data-test': 'widget-uploading' }, [h('small', {}, [t('widget.uploading', { name: this.uploading })])]),
      )
    }
    for (const o of conversation.outgoing) {
      const mark = o.status === 'failed' ? tDynamic(`chat.refused.${o.error ?? ''}`, 'chat.refused.other') : t('chat.pending')
      const line = h('div', { class: 'line line--visitor pending', 'data-test': o.status === 'failed' ? 'widget-line-failed' : 'widget-line-pending' }, [
        h('small', {}, [mark]),
        h('div', { class: 'bubble' }, [o.body]),
      ])
      if (o.status === 'failed') {
        const retry = h('button', { type: 'button', class: 'link' }, [t('chat.retry')])
        retry.addEventListener('click', () => conversation.retry(o.clientId))
        line.append(retry)
      }
      this.lines.append(line)
    }
    this.lines.scrollTop = this.lines.scrollHeight
    if (this.typing) this.typing.hidden = !conversation.peerTyping
  }

  // --- leave a message ---------------------------------------------------------

  private renderLeaveMessage(): HTMLElement {
    const text = h('textarea', { rows: '5', maxlength: String(LEAVE_MAX), 'data-test': 'widget-leave-text' })
    const phone = h('input', { name: 'phone', maxlength: '32', value: this.phone ?? '', 'data-test': 'widget-leave-phone' })
    const problem = h('p', { class: 'error', 'data-test': 'widget-leave-error' })
    const submit = h('button', { type: 'button', class: 'primary', 'data-test': 'widget-leave-submit' }, [t('widget.leaveSubmit')])
    submit.addEventListener('click', () => {
      const body = text.value.trim()
      const tel = phone.value.trim()
      if (!body) problem.textContent = t('widget.leaveRequired')
      else if (lineLength(body) > LEAVE_MAX) problem.textContent = t('chat.tooLong', { max: LEAVE_MAX })
      else if (tel && !PHONE.test(tel)) problem.textContent = t('widget.phoneInvalid')
      else {
        problem.textContent = ''
        submit.disabled = true
        this.api
          .leaveMessage(body, tel || null)
          .then((left) => {
            this.ticketRef = left.ticket_ref
            this.forget()
            this.show('left')
          })
          .catch((error: unknown) => {
            submit.disabled = false
            problem.textContent = error instanceof ApiError ? error.message : t('error.unknown')
          })
      }
    })
    return h('div', { class: 'form' }, [
      h('p', { class: 'note', 'data-test': 'widget-offline' }, [this.state === 'queued' ? t('widget.leaveWhileWaiting') : t('widget.offline')]),
      h('label', { class: 'field' }, [h('span', {}, [t('widget.leaveText', { max: LEAVE_MAX })]), text]),
      h('label', { class: 'field' }, [h('span', {}, [t('widget.phone')]), phone]),
      problem,
      submit,
    ])
  }

  private renderLeft(): HTMLElement {
    return h('div', { class: 'form' }, [
      h('p', { class: 'note' }, [t('widget.leftThanks')]),
      h('p', { class: 'ref', 'data-test': 'widget-ticket-ref' }, [this.ticketRef ?? '']),
      h('p', { class: 'note' }, [t('widget.leftHint')]),
    ])
  }

  // --- rating ------------------------------------------------------------------

  private renderRating(): HTMLElement[] {
    const choices: Satisfaction[] = ['satisfied', 'neutral', 'dissatisfied']
    let chosen: Satisfaction | null = null
    const buttons = choices.map((c) => {
      const b = h('button', { type: 'button', class: 'choice', 'aria-pressed': 'false', 'data-test': `widget-rate-${c}` }, [t(`widget.rate.${c}`)])
      b.addEventListener('click', () => {
        chosen = c
        for (const other of buttons) other.setAttribute('aria-pressed', String(other === b))
      })
      return b
    })
    const comment = h('textarea', { rows: '3', maxlength: String(COMMENT_MAX), placeholder: t('widget.comment', { max: COMMENT_MAX }), 'data-test': 'widget-comment' })
    const problem = h('p', { class: 'error', 'data-test': 'widget-rate-error' })
    const submit = h('button', { type: 'button', class: 'primary', 'data-test': 'widget-rate-submit' }, [t('widget.rateSubmit')])
    submit.addEventListener('click', () => {
      if (!chosen) {
        problem.textContent = t('widget.rateRequired')
        return
      }
      if (lineLength(comment.value) > COMMENT_MAX) {
        problem.textContent = t('chat.tooLong', { max: COMMENT_MAX })
        return
      }
      submit.disabled = true
      this.api
        .rate(chosen, comment.value)
        .then(() => {
          this.forget()
          this.stopChat()
          this.show('thanks')
        })
        .catch((error: unknown) => {
          submit.disabled = false
          problem.textContent = error instanceof ApiError ? error.message : t('error.unknown')
        })
    })
    const transcript = this.lines
    const out: HTMLElement[] = []
    if (transcript === null && this.conversation) {
      this.lines = h('div', { class: 'lines', 'data-test': 'widget-lines' })
      out.push(this.lines)
      queueMicrotask(() => this.renderLines())
    }
    out.push(
      h('div', { class: 'form', 'data-test': 'widget-rating' }, [
        h('p', { class: 'note' }, [t('widget.ended')]),
        h('p', {}, [t('widget.rateAsk')]),
        h('div', { class: 'row' }, buttons),
        comment,
        problem,
        h('div', { class: 'row' }, [h('small', { class: 'note' }, [t('widget.rateOptional')]), submit]),
      ]),
    )
    return out
  }
}
