// The chat socket contract (docs/widget.md, docs/console.md): message objects
// and the pushes both sides hear.
export type SenderKind = 'visitor' | 'agent' | 'expert' | 'system'
export type ChatState = 'queued' | 'assigned' | 'ended' | 'left_message'

export interface ChatMessage {
  /** The server's "<chat id>:<seq>" (identity is seq within the chat). */
  id: number | string
  /** The server's per-chat sequence number: "since" of a re-fetch. */
  seq: number
  chat_id: number
  sender_kind: SenderKind
  sender_name: string | null
  body: string
  client_id: string | null
  created_at: string
  /** A line that carries a file (its body is the file's name). */
  attachment?: Attachment | null
}

/** A file sent in a chat; its bytes are fetched from the API. */
export interface Attachment {
  id: number
  filename: string
  /** Sniffed by the server from the bytes. */
  content_type: string
  size: number
}

export interface FetchResult {
  messages: ChatMessage[]
  /** ChatStateOut on the server; a bare state is read too. */
  state?: ChatState | StatePush | null
  last_seq?: number
}

export interface TypingPush {
  chat_id: number
  sender_kind: SenderKind
  typing: boolean
}

export interface StatePush {
  chat_id: number
  state: ChatState
  queue_position: number | null
  agent_name: string | null
}

export interface EndedPush {
  chat_id: number
  reason: string
}

export interface AssignedPush {
  chat_id: number
  window_code: string
  visitor_name: string
  company: string
  county_code: string | null
  category_code: string
  routing_reason: string
  created_at: string
}

/** chat.invited: an expert was brought into a chat (their screen pop). */
export interface InvitedPush extends AssignedPush {
  agent_name: string | null
}

export interface QueuePush {
  window_code: string
  waiting: number
  longest_wait_seconds: number
}
