// The web-chat REST endpoints the console uses (smeline/webchat/http.py,
// docs/webchat.md). Everything but the conversation itself is REST: accept,
// transfer, close, canned replies.
import { CSRF_COOKIE, CSRF_HEADER, readCookie, type ApiClient } from '../api'
import { uploadFile } from './attachments'
import type { ChatMessage, ChatState } from './types'

export interface AgentChat {
  id: number
  visitor_name: string
  company: string
  phone: string | null
  member_id: number | null
  chosen_county_code: string | null
  county_code: string | null
  category_code: string
  window_code: string
  routing_reason: string
  ip_area: string
  state: ChatState
  end_reason: string | null
  agent_id: number | null
  created_at: string
  assigned_at: string | null
  ended_at: string | null
  queue_position: number | null
  ticket_id: number | null
  ticket_ref: string | null
  last_seq: number
  /** An expert was invited: the wrap-up is joint (协同). */
  joint?: boolean
}

/** An agent of a window as a transfer target (GET /api/chats/agents). */
export interface WindowAgent {
  user_id: number
  display_name: string
  window_code: string
  online: boolean
  capacity: number
  active_chats: number
  free: number
}

/** A user with the expert role (GET /api/users?role=expert). */
export interface ExpertUser {
  id: number
  display_name: string
}

export interface CannedReply {
  id: number
  window_code: string | null
  title: string
  body: string
}

export type TransferTarget = { to_user_id: number } | { window_code: string }

export interface ChatApiOptions {
  /** For the multipart upload, which ApiClient (JSON only) does not make. */
  fetch?: (input: string, init?: RequestInit) => Promise<Response>
  cookies?: () => string
}

export class ChatApi {
  constructor(
    private readonly api: ApiClient,
    private readonly options: ChatApiOptions = {},
  ) {}

  /** Chats I was invited to as an expert. */
  invited(): Promise<{ items: AgentChat[] }> {
    return this.api.request('GET', '/api/chats/invited')
  }

  windowAgents(windowCode: string): Promise<{ items: WindowAgent[] }> {
    return this.api.request('GET', `/api/chats/agents?window_code=${encodeURIComponent(windowCode)}`)
  }

  experts(): Promise<{ items: ExpertUser[] }> {
    return this.api.request('GET', '/api/users?role=expert&active=true')
  }

  inviteExpert(chatId: number, userId: number): Promise<AgentChat> {
    return this.api.request('POST', `/api/chats/${chatId}/experts`, { user_id: userId })
  }

  leave(chatId: number, userId: number): Promise<void> {
    return this.api.request('DELETE', `/api/chats/${chatId}/experts/${userId}`)
  }

  /** The download URL of a file (the session cookie authenticates it). */
  attachmentUrl(chatId: number, attachmentId: number): string {
    return `/api/chats/${chatId}/attachments/${attachmentId}`
  }

  upload(chatId: number, clientId: string, file: File): Promise<ChatMessage> {
    const cookies = this.options.cookies ?? (() => (typeof document === 'undefined' ? '' : document.cookie))
    const csrf = readCookie(cookies(), CSRF_COOKIE)
    return uploadFile(`/api/chats/${chatId}/attachments`, clientId, file, file.name, {
      fetch: this.options.fetch,
      headers: csrf !== null ? { [CSRF_HEADER]: csrf } : {},
      credentials: 'same-origin',
    })
  }

  mine(): Promise<{ items: AgentChat[] }> {
    return this.api.request('GET', '/api/chats?mine=true&state=assigned')
  }

  queued(): Promise<{ items: AgentChat[] }> {
    return this.api.request('GET', '/api/chats?state=queued')
  }

  get(chatId: number): Promise<AgentChat> {
    return this.api.request('GET', `/api/chats/${chatId}`)
  }

  accept(chatId: number): Promise<AgentChat> {
    return this.api.request('POST', `/api/chats/${chatId}/accept`)
  }

  transfer(chatId: number, target: TransferTarget): Promise<AgentChat> {
    return this.api.request('POST', `/api/chats/${chatId}/transfer`, target)
  }

  close(chatId: number): Promise<AgentChat> {
    return this.api.request('POST', `/api/chats/${chatId}/close`)
  }

  cannedReplies(): Promise<{ items: CannedReply[] }> {
    return this.api.request('GET', '/api/webchat/canned-replies')
  }
}
