// The agent's chat desk: the chats in my hands (several at once), the screen
// pop, my window's queue, and the wrap-ups still owed. One store per console;
// the /agent socket's chat events map to its actions here and nowhere else.
import { reactive } from 'vue'

import { ApiError, type ApiClient } from '../api'
import { ContactsApi, contactKey, type OpenedTicket, type PendingContact } from '../contacts/api'
import { pushedPayload, request, type LiveSocket } from '../live/request'
import { lookUpPhone, type PopLookup } from '../screenpop/api'
import { ChatApi, type AgentChat, type CannedReply, type ExpertUser, type TransferTarget, type WindowAgent } from './api'
import { Conversation, newClientId, type ConversationOptions } from './conversation'
import type { AssignedPush, ChatMessage, EndedPush, FetchResult, InvitedPush, QueuePush, TypingPush } from './types'

export interface DeskChat {
  id: number
  pop: AssignedPush
  detail: AgentChat | null
  conversation: Conversation
  ended: boolean
  endReason: string | null
  unread: number
  /** The screen pop's history (/api/screen-pop?phone=…): previous calls, chats, work orders. */
  history: PopLookup
  /** 'expert': I was invited into this chat (I write as an expert, I may leave). */
  as: 'agent' | 'expert'
  /** A file of mine being uploaded (its name), or null. */
  uploading: string | null
}

export interface DeskState {
  connected: boolean
  chats: DeskChat[]
  activeId: number | null
  queued: AgentChat[]
  queues: Record<string, QueuePush>
  canned: CannedReply[]
  pending: PendingContact[]
  /** The error of the last REST action, already in Chinese. */
  error: string | null
  /** The last action refused because a wrap-up is owed. */
  wrapupBlocked: boolean
  /** Work orders opened from a contact, by contactKey(). */
  tickets: Record<string, OpenedTicket>
}

export interface ChatDesk {
  readonly state: DeskState
  start(): Promise<void>
  stop(): void
  active(): DeskChat | null
  select(chatId: number): void
  accept(chatId: number): Promise<boolean>
  transfer(chatId: number, target: TransferTarget): Promise<boolean>
  close(chatId: number): Promise<boolean>
  /** Forget an ended chat's tab. */
  dismiss(chatId: number): void
  refreshPending(): Promise<void>
  refreshQueued(): Promise<void>
  /** Send a file into the chat (REST multipart); false with state.error on a refusal. */
  upload(chatId: number, file: File): Promise<boolean>
  inviteExpert(chatId: number, userId: number): Promise<boolean>
  /** An invited expert leaves the chat. */
  leave(chatId: number): Promise<boolean>
  /** Transfer targets: the window's agents with their free capacity. */
  windowAgents(windowCode: string): Promise<WindowAgent[]>
  experts(): Promise<ExpertUser[]>
  attachmentUrl(chatId: number, attachmentId: number): string
  /** True while a wrap-up is owed: no next contact before it. */
  wrapupOwed(): boolean
  readonly contacts: ContactsApi
}

export interface DeskOptions {
  conversation?: ConversationOptions
  /**
   * My window: its room (`window.join`, joined again after every connect —
   * rooms do not survive a reconnect) brings the queue counts (`chat.queue`).
   */
  windowCode?: string | null
  /** For the file uploads (tests): the fetch and the cookies (the CSRF token) they use. */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>
  cookies?: () => string
}

function fromDetail(c: AgentChat): AssignedPush {
  return {
    chat_id: c.id,
    window_code: c.window_code,
    visitor_name: c.visitor_name,
    company: c.company,
    county_code: c.county_code,
    category_code: c.category_code,
    routing_reason: c.routing_reason,
    created_at: c.created_at,
  }
}

export function createChatDesk(api: ApiClient, socket: LiveSocket, options: DeskOptions = {}): ChatDesk {
  const chats = new ChatApi(api, { fetch: options.fetch, cookies: options.cookies })
  const contacts = new ContactsApi(api)
  const state = reactive<DeskState>({
    connected: socket.connected,
    chats: [],
    activeId: null,
    queued: [],
    queues: {},
    canned: [],
    pending: [],
    error: null,
    wrapupBlocked: false,
    tickets: {},
  }) as DeskState

  const find = (chatId: number): DeskChat | undefined => state.chats.find((c) => c.id === chatId)

  function fail(error: unknown): false {
    state.wrapupBlocked = error instanceof ApiError && error.code === 'wrapup_required'
    state.error = error instanceof ApiError ? error.message : String(error)
    if (state.wrapupBlocked) void desk.refreshPending()
    return false
  }

  function open(pop: AssignedPush, detail: AgentChat | null, as: 'agent' | 'expert' = 'agent'): DeskChat {
    const existing = find(pop.chat_id)
    if (existing) {
      if (detail) existing.detail = detail
      return existing
    }
    const chatId = pop.chat_id
    const conversation = new Conversation(
      {
        isConnected: () => socket.connected,
        send: (clientId, body) => request<{ message: ChatMessage }>(socket, 'chat.reply', { chat_id: chatId, client_id: clientId, body }),
        fetch: (since) => request<FetchResult>(socket, 'chat.fetch', { chat_id: chatId, since }),
        typing: (typing) => {
          socket.emit('chat.typing', { chat_id: chatId, typing })
        },
      },
      as,
      options.conversation,
    )
    state.chats.push({
      id: chatId,
      pop,
      detail,
      conversation,
      ended: detail !== null && (detail.state === 'ended' || detail.state === 'left_message'),
      endReason: detail?.end_reason ?? null,
      unread: 0,
      history: { status: 'loading' },
      as,
      uploading: null,
    })
    if (state.activeId === null) state.activeId = chatId
    // Through the reactive array, so that Vue sees what the conversation changes.
    const chat = find(chatId) as DeskChat
    void chat.conversation.resync()
    void lookUpHistory(chat)
    return chat
  }

  async function lookUpHistory(chat: DeskChat): Promise<void> {
    try {
      if (!chat.detail) chat.detail = await chats.get(chat.id)
      // No phone, or a masked one (roles without phone_numbers): nothing to ask.
      chat.history = await lookUpPhone(api, chat.detail.phone)
    } catch (error) {
      chat.history = { status: 'error', message: error instanceof ApiError ? error.message : String(error) }
    }
  }

  const handlers: Record<string, (raw: never) => void> = {
    connect: () => {
      state.connected = true
      if (options.windowCode) void request(socket, 'window.join', { window_code: options.windowCode })
      for (const chat of state.chats) void chat.conversation.resync()
      void desk.refreshQueued()
    },
    disconnect: () => {
      state.connected = false
    },
    'chat.assigned': (raw: unknown) => {
      const pop = pushedPayload<AssignedPush>(raw)
      const chat = open(pop, null)
      chat.ended = false
      state.activeId = chat.id
      state.queued = state.queued.filter((c) => c.id !== chat.id)
    },
    'chat.message': (raw: unknown) => {
      const message = pushedPayload<ChatMessage>(raw)
      const chat = find(message.chat_id)
      if (!chat) return
      chat.conversation.receive(message)
      if (state.activeId !== chat.id && message.sender_kind !== 'system' && message.sender_kind !== chat.as) chat.unread += 1
    },
    'chat.invited': (raw: unknown) => {
      const pop = pushedPayload<InvitedPush>(raw)
      const chat = open(pop, null, 'expert')
      chat.ended = false
      state.activeId = chat.id
    },
    'chat.typing': (raw: unknown) => {
      const push = pushedPayload<TypingPush>(raw)
      if (push.sender_kind !== 'visitor') return
      find(push.chat_id)?.conversation.setPeerTyping(push.typing)
    },
    'chat.ended': (raw: unknown) => {
      const push = pushedPayload<EndedPush>(raw)
      const chat = find(push.chat_id)
      if (chat) {
        chat.ended = true
        chat.endReason = push.reason
        chat.conversation.setState('ended')
        chat.conversation.setPeerTyping(false)
      }
      void desk.refreshPending()
    },
    'chat.queue': (raw: unknown) => {
      const push = pushedPayload<QueuePush>(raw)
      state.queues[push.window_code] = push
      void desk.refreshQueued()
    },
  }

  const desk: ChatDesk = {
    state,
    contacts,
    async start() {
      for (const [event, handler] of Object.entries(handlers)) socket.on(event, handler)
      if (socket.connected) handlers.connect?.(undefined as never)
      const [mine, canned] = await Promise.allSettled([chats.mine(), chats.cannedReplies()])
      if (mine.status === 'fulfilled') for (const c of mine.value.items) open(fromDetail(c), c)
      else if (mine.reason instanceof ApiError && mine.reason.status === 403) {
        // An expert has no desk of their own: their chats are those they were invited to.
        try {
          for (const c of (await chats.invited()).items) open(fromDetail(c), c, 'expert')
        } catch {
          // Nothing to show then; the invitations still arrive by push.
        }
      }
      if (canned.status === 'fulfilled') state.canned = canned.value.items
      await Promise.allSettled([desk.refreshPending(), desk.refreshQueued()])
    },
    stop() {
      for (const [event, handler] of Object.entries(handlers)) socket.off(event, handler)
      for (const chat of state.chats) chat.conversation.dispose()
    },
    active() {
      return state.chats.find((c) => c.id === state.activeId) ?? null
    },
    select(chatId) {
      const chat = find(chatId)
      if (!chat) return
      state.activeId = chatId
      chat.unread = 0
    },
    async accept(chatId) {
      state.error = null
      state.wrapupBlocked = false
      if (desk.wrapupOwed()) return fail(new ApiError(409, 'wrapup_required'))
      try {
        const detail = await chats.accept(chatId)
        const chat = open(fromDetail(detail), detail)
        state.activeId = chat.id
        state.queued = state.queued.filter((c) => c.id !== chatId)
        return true
      } catch (error) {
        return fail(error)
      }
    },
    async transfer(chatId, target) {
      state.error = null
      try {
        await chats.transfer(chatId, target)
        desk.dismiss(chatId)
        return true
      } catch (error) {
        return fail(error)
      }
    },
    async close(chatId) {
      state.error = null
      try {
        const detail = await chats.close(chatId)
        const chat = find(chatId)
        if (chat) {
          chat.detail = detail
          chat.ended = true
          chat.endReason = detail.end_reason
          chat.conversation.setState('ended')
        }
        await desk.refreshPending()
        return true
      } catch (error) {
        return fail(error)
      }
    },
    dismiss(chatId) {
      const chat = find(chatId)
      chat?.conversation.dispose()
      state.chats = state.chats.filter((c) => c.id !== chatId)
      if (state.activeId === chatId) state.activeId = state.chats[0]?.id ?? null
    },
    async refreshPending() {
      try {
        state.pending = await contacts.pending()
      } catch {
        // The endpoint may be missing on an older server: nothing is owed then.
      }
    },
    async refreshQueued() {
      try {
        state.queued = (await chats.queued()).items
      } catch {
        state.queued = []
      }
    },
    wrapupOwed() {
      return state.pending.some((p) => p.required !== false)
    },
    async upload(chatId, file) {
      state.error = null
      const chat = find(chatId)
      if (!chat) return false
      chat.uploading = file.name
      try {
        chat.conversation.receive(await chats.upload(chatId, newClientId(), file))
        return true
      } catch (error) {
        return fail(error)
      } finally {
        chat.uploading = null
      }
    },
    async inviteExpert(chatId, userId) {
      state.error = null
      try {
        const detail = await chats.inviteExpert(chatId, userId)
        const chat = find(chatId)
        if (chat) chat.detail = detail
        return true
      } catch (error) {
        return fail(error)
      }
    },
    async leave(chatId) {
      state.error = null
      try {
        const me = await api.me()
        await chats.leave(chatId, me.id)
        desk.dismiss(chatId)
        return true
      } catch (error) {
        return fail(error)
      }
    },
    async windowAgents(windowCode) {
      try {
        return (await chats.windowAgents(windowCode)).items
      } catch (error) {
        fail(error)
        return []
      }
    },
    async experts() {
      try {
        return (await chats.experts()).items
      } catch (error) {
        fail(error)
        return []
      }
    },
    attachmentUrl(chatId, attachmentId) {
      return chats.attachmentUrl(chatId, attachmentId)
    },
  }
  return desk
}

export { contactKey }
