// One conversation as one side sees it, with nothing of Vue or the DOM: the
// console's chat panel and the portal widget both use it.
//
// Nothing is lost on a dropped connection: every line carries a client id
// (a uuid) and stays "pending" until the server's ack; a line whose ack did
// not come (socket down, timeout) is sent again, with the same client id,
// after every reconnect — the server answers a repeated client id with the
// stored line — and lines are de-duplicated by seq and by client id, so a
// push, an ack and a re-fetch of the same line show it once.
import type { AckResult } from '../live/request'
import { TRANSIENT } from '../live/request'
import type { ChatMessage, ChatState, FetchResult, SenderKind, StatePush } from './types'

export interface ConversationTransport {
  isConnected(): boolean
  send(clientId: string, body: string): Promise<AckResult<{ message: ChatMessage }>>
  fetch(since: number): Promise<AckResult<FetchResult>>
  typing(typing: boolean): void
}

export type LineStatus = 'pending' | 'failed'

/** A line I wrote that the server has not acknowledged yet. */
export interface OutgoingLine {
  clientId: string
  body: string
  status: LineStatus
  /** The socket error code of a refused line (`rate_limited`, `bad_request`, …). */
  error: string | null
}

export type SendProblem = 'empty' | 'too_long'

export interface ConversationOptions {
  /** The longest line the server takes (`chat_message_max_chars`). */
  maxChars?: number
  newClientId?: () => string
  /** How long a "typing" from the other side lasts without another one. */
  peerTypingMs?: number
  /** How long after the last keystroke "typing: false" is sent. */
  ownTypingMs?: number
  /** The chat's state as a re-fetch found it (queue position, agent). */
  onFetchedState?: (state: StatePush) => void
}

export const DEFAULT_MAX_CHARS = 2000

export function newClientId(): string {
  const c = globalThis.crypto
  if (c && typeof c.randomUUID === 'function') return c.randomUUID()
  // randomUUID needs a secure context; the portal page may be plain http.
  const bytes = new Uint8Array(16)
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes)
  else for (let i = 0; i < 16; i += 1) bytes[i] = Math.floor(Math.random() * 256)
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`
}

/** Length as the server counts it (Python: code points, not UTF-16 units). */
export function lineLength(body: string): number {
  return Array.from(body.replace(/\r\n/g, '\n')).length
}

export class Conversation {
  messages: ChatMessage[] = []
  outgoing: OutgoingLine[] = []
  lastSeq = 0
  state: ChatState | null = null
  peerTyping = false
  readonly maxChars: number

  private readonly transport: ConversationTransport
  private readonly ownKind: SenderKind
  private readonly makeId: () => string
  private readonly peerTypingMs: number
  private readonly ownTypingMs: number
  private readonly onFetchedState: ((state: StatePush) => void) | undefined
  private peerTimer: ReturnType<typeof setTimeout> | undefined
  private ownTimer: ReturnType<typeof setTimeout> | undefined
  private ownTyping = false
  private readonly listeners = new Set<() => void>()

  constructor(transport: ConversationTransport, ownKind: SenderKind, options: ConversationOptions = {}) {
    this.transport = transport
    this.ownKind = ownKind
    this.maxChars = options.maxChars ?? DEFAULT_MAX_CHARS
    this.makeId = options.newClientId ?? newClientId
    this.peerTypingMs = options.peerTypingMs ?? 6000
    this.ownTypingMs = options.ownTypingMs ?? 3000
    this.onFetchedState = options.onFetchedState
  }

  /** Called after every change (the widget re-renders; Vue watches the fields). */
  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private changed(): void {
    for (const listener of this.listeners) listener()
  }

  /** Why `body` cannot be sent, or null. */
  check(body: string): SendProblem | null {
    if (!body.trim()) return 'empty'
    if (lineLength(body) > this.maxChars) return 'too_long'
    return null
  }

  /** Queue a line and send it; it shows as pending until the ack. */
  send(body: string): SendProblem | null {
    const problem = this.check(body)
    if (problem) return problem
    const line: OutgoingLine = { clientId: this.makeId(), body, status: 'pending', error: null }
    this.outgoing.push(line)
    this.stopTyping()
    this.changed()
    void this.transmit(line.clientId)
    return null
  }

  /** Send a refused line again (same client id). */
  retry(clientId: string): void {
    const line = this.outgoing.find((l) => l.clientId === clientId)
    if (!line) return
    line.status = 'pending'
    line.error = null
    this.changed()
    void this.transmit(clientId)
  }

  /** Give up a refused line. */
  discard(clientId: string): void {
    this.outgoing = this.outgoing.filter((l) => l.clientId !== clientId)
    this.changed()
  }

  private async transmit(clientId: string): Promise<void> {
    const line = this.outgoing.find((l) => l.clientId === clientId)
    if (!line || !this.transport.isConnected()) return // resent by resync()
    const result = await this.transport.send(line.clientId, line.body)
    if (result.ok) {
      this.receive(result.value.message)
      return
    }
    // Look it up again: a push of the same line may have settled it meanwhile.
    const still = this.outgoing.find((l) => l.clientId === clientId)
    if (!still || TRANSIENT.has(result.code)) return
    still.status = 'failed'
    still.error = result.code
    this.changed()
  }

  /** A line from the server (push, ack or re-fetch), shown once. */
  receive(message: ChatMessage): void {
    if (message.client_id !== null && message.sender_kind === this.ownKind) {
      this.outgoing = this.outgoing.filter((l) => l.clientId !== message.client_id)
    }
    if (message.sender_kind !== this.ownKind && message.sender_kind !== 'system') this.setPeerTyping(false, false)
    const known = this.messages.some(
      (m) =>
        m.seq === message.seq ||
        (message.client_id !== null && m.client_id === message.client_id && m.sender_kind === message.sender_kind),
    )
    if (!known) {
      const at = this.messages.findIndex((m) => m.seq > message.seq)
      if (at < 0) this.messages.push(message)
      else this.messages.splice(at, 0, message)
      this.lastSeq = Math.max(this.lastSeq, message.seq)
    }
    this.changed()
  }

  setState(state: ChatState | null | undefined): void {
    if (!state || state === this.state) return
    this.state = state
    this.changed()
  }

  /**
   * After every (re)connect: fetch what was missed since the last line seen,
   * then resend what was never acknowledged.
   */
  async resync(): Promise<boolean> {
    if (!this.transport.isConnected()) return false
    const result = await this.transport.fetch(this.lastSeq)
    if (result.ok) {
      for (const message of result.value.messages ?? []) this.receive(message)
      const state = result.value.state
      if (typeof state === 'object' && state !== null) {
        this.setState(state.state)
        this.onFetchedState?.(state)
      } else this.setState(state)
    }
    for (const line of [...this.outgoing]) if (line.status === 'pending') void this.transmit(line.clientId)
    return result.ok
  }

  // --- typing, both ways -----------------------------------------------------

  /** The other side is typing (or stopped); it lapses by itself. */
  setPeerTyping(typing: boolean, notify = true): void {
    if (this.peerTimer !== undefined) clearTimeout(this.peerTimer)
    this.peerTimer = undefined
    if (typing) {
      this.peerTimer = setTimeout(() => this.setPeerTyping(false), this.peerTypingMs)
    }
    if (this.peerTyping === typing) return
    this.peerTyping = typing
    if (notify) this.changed()
  }

  /** A keystroke in my input: "typing" once, "stopped" after a pause. */
  noteTyping(): void {
    if (!this.ownTyping && this.transport.isConnected()) {
      this.ownTyping = true
      this.transport.typing(true)
    }
    if (this.ownTimer !== undefined) clearTimeout(this.ownTimer)
    this.ownTimer = setTimeout(() => this.stopTyping(), this.ownTypingMs)
  }

  stopTyping(): void {
    if (this.ownTimer !== undefined) clearTimeout(this.ownTimer)
    this.ownTimer = undefined
    if (!this.ownTyping) return
    this.ownTyping = false
    if (this.transport.isConnected()) this.transport.typing(false)
  }

  dispose(): void {
    this.stopTyping()
    if (this.peerTimer !== undefined) clearTimeout(this.peerTimer)
    this.listeners.clear()
  }
}
