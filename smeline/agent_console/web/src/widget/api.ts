// The visitor's REST calls (smeline/webchat/http.py): start, leave a message,
// rate, leave. The widget runs on the portal's pages, so every call goes to
// the smeline origin named by the script tag, without cookies: the visitor
// token (X-Chat-Token) is the only credential.
import { ApiError } from '../api'
import { uploadFile } from '../chat/attachments'
import type { ChatMessage, ChatState } from '../chat/types'

export type Fetch = (input: string, init?: RequestInit) => Promise<Response>

export interface ChatStartIn {
  name: string
  company: string
  phone: string | null
  county_code: string | null
  category_code: string
}

export interface ChatStarted {
  chat_id: number
  token: string
  state: ChatState
  closed: boolean
  window_name: string
  queue_position: number | null
}

export interface VisitorChat {
  id: number
  state: ChatState
  end_reason: string | null
  closed: boolean
  window_name: string
  queue_position: number | null
  agent_name: string | null
  satisfaction: string | null
  ticket_ref: string | null
  last_seq: number
}

export type Satisfaction = 'satisfied' | 'neutral' | 'dissatisfied'

export class VisitorApi {
  token: string | null = null
  chatId: number | null = null

  constructor(
    private readonly base: string,
    private readonly fetchImpl: Fetch = (input, init) => globalThis.fetch(input, init),
  ) {}

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (this.token) headers['X-Chat-Token'] = this.token
    let response: Response
    try {
      response = await this.fetchImpl(`${this.base}${path}`, {
        method,
        headers,
        mode: 'cors',
        credentials: 'omit',
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch {
      throw new ApiError(0, 'network')
    }
    let payload: unknown = null
    try {
      payload = await response.json()
    } catch {
      payload = null
    }
    if (response.ok && payload !== null) return payload as T
    const error = (payload as { error?: { id?: unknown; details?: unknown } } | null)?.error
    const id = typeof error?.id === 'string' ? error.id : response.status >= 500 ? 'server' : 'unknown'
    throw new ApiError(response.status, id, error?.details)
  }

  async start(form: ChatStartIn): Promise<ChatStarted> {
    const started = await this.call<ChatStarted>('POST', '/api/chat/start', form)
    this.token = started.token
    this.chatId = started.chat_id
    return started
  }

  view(): Promise<VisitorChat> {
    return this.call('GET', `/api/chat/${this.chatId ?? 0}`)
  }

  leaveMessage(body: string, phone: string | null): Promise<{ ticket_ref: string }> {
    return this.call('POST', `/api/chat/${this.chatId ?? 0}/leave-message`, phone ? { body, phone } : { body })
  }

  rate(satisfaction: Satisfaction, comment: string): Promise<VisitorChat> {
    const trimmed = comment.trim()
    return this.call('POST', `/api/chat/${this.chatId ?? 0}/rating`, trimmed ? { satisfaction, comment: trimmed } : { satisfaction })
  }

  end(): Promise<VisitorChat> {
    return this.call('POST', `/api/chat/${this.chatId ?? 0}/end`)
  }

  /** Send a file (multipart); the stored line, or an ApiError (attachment_too_large …). */
  upload(clientId: string, file: File): Promise<ChatMessage> {
    return uploadFile(`${this.base}/api/chat/${this.chatId ?? 0}/attachments`, clientId, file, file.name, {
      fetch: this.fetchImpl,
      headers: this.token ? { 'X-Chat-Token': this.token } : {},
      credentials: 'omit',
      mode: 'cors',
    })
  }

  /**
   * A file's bytes: the token is a header, which an <img src> or a link
   * cannot send, so the widget shows and saves files through blob URLs.
   */
  async download(attachmentId: number): Promise<Blob> {
    let response: Response
    try {
      response = await this.fetchImpl(`${this.base}/api/chat/${this.chatId ?? 0}/attachments/${attachmentId}`, {
        method: 'GET',
        headers: this.token ? { 'X-Chat-Token': this.token } : {},
        mode: 'cors',
        credentials: 'omit',
      })
    } catch {
      throw new ApiError(0, 'network')
    }
    if (!response.ok) throw new ApiError(response.status, response.status === 404 ? 'attachment_not_found' : 'unknown')
    return response.blob()
  }
}
