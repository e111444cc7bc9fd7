// Reassigning from the wallboard: a chat to another agent or window
// (POST /api/chats/{id}/transfer, docs/webchat.md) and a work order to another
// assignee (the `assign` action of docs/ticketing.md). Nothing here changes
// the board locally: the server's pushes (`wallboard.update`, `chat.queue` on
// /supervisor) bring the result, so every supervisor sees the same thing.
import { reactive } from 'vue'

import { ApiError, messageOf, type ApiClient, type Role, type User } from '../api'
import type { AgentChat, TransferTarget } from '../chat/api'
import { isMessageKey, t } from '../i18n'
import { pushedPayload, type LiveSocket } from '../live/request'
import type { Wallboard } from './types'

/** Who may hold a work order (smeline.ticketing.state_machine.ASSIGNABLE_ROLES). */
export const ASSIGNABLE_ROLES: readonly Role[] = ['agent', 'county_admin', 'supervisor', 'admin']

// GET /api/chats answers at most this many per state; a scope with more
// active chats than this is not an office the wallboard is built for.
const CHAT_LIMIT = 500

export class ReassignApi {
  constructor(private readonly api: ApiClient) {}

  /** The chats of the scope still in play: the queue (first in line first), then those being served. */
  async activeChats(): Promise<AgentChat[]> {
    const [queued, assigned] = await Promise.all([
      this.api.request<{ items: AgentChat[] }>('GET', `/api/chats?state=queued&limit=${CHAT_LIMIT}`),
      this.api.request<{ items: AgentChat[] }>('GET', `/api/chats?state=assigned&limit=${CHAT_LIMIT}`),
    ])
    return [...queued.items, ...assigned.items]
  }

  transferChat(chatId: number, target: TransferTarget): Promise<AgentChat> {
    return this.api.request('POST', `/api/chats/${chatId}/transfer`, target)
  }

  /**
   * Active staff who can hold a work order. For a county administrator, their
   * county's only: the agents of the county's windows (agents carry a window,
   * not a county) and the county's administrators.
   */
  async assignees(county: { code: string; windows: string[] } | null): Promise<User[]> {
    const page = await this.api.request<{ items: User[] }>('GET', '/api/users?active=true')
    return page.items.filter(
      (u) =>
        u.active &&
        ASSIGNABLE_ROLES.includes(u.role) &&
        (county === null || u.county_code === county.code || (u.window_code !== null && county.windows.includes(u.window_code))),
    )
  }

  assignTicket(ticketId: number, assigneeId: number, note: string | null): Promise<unknown> {
    return this.api.request('POST', `/api/tickets/${ticketId}/actions`, {
      action: 'assign',
      assignee_id: assigneeId,
      ...(note ? { note } : {}),
    })
  }
}

/**
 * Why a reassignment was refused, in the supervisor's words: the catalogue's
 * `wallboard.refused.<error id>` when there is one (the generic messages are
 * written for an agent's own actions), else by status, else the API's message.
 */
export function refusalText(error: unknown): string {
  if (!(error instanceof ApiError)) return messageOf(error)
  const key = `wallboard.refused.${error.code}`
  if (isMessageKey(key)) return t(key)
  if (error.status === 403) return t('wallboard.refused.forbidden')
  if (error.status === 409) return t('wallboard.refused.conflict')
  return error.message
}

/**
 * What of a board tells that the chats in play changed: waiting chats per
 * window, chats today, chats held per agent. A push that changes none of it
 * (a call, a work order) does not re-read the chat list.
 */
export function chatSignature(board: Wallboard): string {
  const windows = board.windows.map((w) => `${w.code}:${w.chats_waiting}:${w.today.chats}:${w.today.chats_answered}`)
  const agents = board.agents.map((a) => `${a.user_id}:${a.chats_active}`)
  return [...windows, '|', ...agents].join(',')
}

export interface ChatListState {
  items: AgentChat[]
  loaded: boolean
  error: string | null
  /** How many times the list was read (tests: a refresh came from a push). */
  reads: number
}

export interface ChatList {
  readonly state: ChatListState
  refresh(): Promise<void>
  start(): Promise<void>
  stop(): void
}

/**
 * The active chats of the supervisor's scope, read over REST and read again
 * when a push says they changed: `chat.queue` (a window's queue moved), a
 * `wallboard.update` whose chat figures differ, a reconnect. Reads never
 * overlap: a change heard during one leads to exactly one more.
 */
export function createChatList(api: ReassignApi, socket: LiveSocket): ChatList {
  const state = reactive<ChatListState>({ items: [], loaded: false, error: null, reads: 0 }) as ChatListState
  let running: Promise<void> | null = null
  let again = false
  let signature: string | null = null
  let stopped = false

  async function readOnce(): Promise<void> {
    state.reads += 1
    try {
      state.items = await api.activeChats()
      state.loaded = true
      state.error = null
    } catch (error) {
      state.error = messageOf(error)
    }
  }

  function refresh(): Promise<void> {
    if (running) {
      again = true
      return running
    }
    running = (async () => {
      do {
        again = false
        await readOnce()
      } while (again && !stopped)
      running = null
    })()
    return running
  }

  let everConnected = socket.connected
  const handlers: Record<string, (raw: never) => void> = {
    connect: () => {
      if (everConnected) void refresh()
      everConnected = true
    },
    'chat.queue': () => void refresh(),
    'wallboard.update': (raw: unknown) => {
      const next = chatSignature(pushedPayload<Wallboard>(raw))
      // The first push after the page loaded refreshes too: the list was read
      // before it, and what changed in between is not known otherwise.
      const changed = next !== signature
      signature = next
      if (changed) void refresh()
    },
  }

  return {
    state,
    refresh,
    async start() {
      for (const [event, handler] of Object.entries(handlers)) socket.on(event, handler)
      await refresh()
    },
    stop() {
      stopped = true
      for (const [event, handler] of Object.entries(handlers)) socket.off(event, handler)
    },
  }
}
