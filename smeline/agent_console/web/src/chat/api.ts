// The web-chat REST endpoints the console uses (smeline/webchat/http.py,
// docs/webchat.md). Everything but the conversation itself is REST: accept,
// transfer, close, canned replies.
import type { ApiClient } from '../api'
import type { ChatState } from './types'

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
}

export interface CannedReply {
  id: number
  window_code: string | null
  title: string
  body: string
}

export type TransferTarget = { to_user_id: number } | { window_code: string }

export class ChatApi {
  constructor(private readonly api: ApiClient) {}

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
