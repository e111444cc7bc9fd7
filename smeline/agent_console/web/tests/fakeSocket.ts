// A socket.io client stand-in at the LiveSocket boundary: the test plays the
// server — it answers inbound events (acks), pushes events, drops and
// restores the connection.
import type { LiveSocket } from '../src/live/request'

type Listener = (...args: unknown[]) => void
export type ServerReply = unknown
/** Returned by `answer` to keep an ack back (lost with a dropped connection). */
export const HOLD = Symbol('hold')

export class FakeSocket implements LiveSocket {
  connected = false
  readonly emitted: { event: string; payload: unknown }[] = []
  readonly held: { event: string; payload: unknown; ack: (reply: unknown) => void }[] = []
  answer: (event: string, payload: unknown) => ServerReply | typeof HOLD = () => ({ ok: true })
  private readonly listeners = new Map<string, Set<Listener>>()

  on(event: string, listener: (...args: never[]) => void): this {
    const set = this.listeners.get(event) ?? new Set<Listener>()
    set.add(listener as Listener)
    this.listeners.set(event, set)
    return this
  }

  off(event: string, listener?: (...args: never[]) => void): this {
    if (listener) this.listeners.get(event)?.delete(listener as Listener)
    else this.listeners.delete(event)
    return this
  }

  emit(event: string, ...args: unknown[]): this {
    const [payload, ack] = args
    this.emitted.push({ event, payload })
    if (typeof ack === 'function') {
      const reply = this.answer(event, payload)
      if (reply === HOLD) this.held.push({ event, payload, ack: ack as (r: unknown) => void })
      else queueMicrotask(() => (ack as (r: unknown) => void)(reply))
    }
    return this
  }

  disconnect(): this {
    this.connected = false
    return this
  }

  /** The server side: push an event to this client. */
  push(event: string, ...args: unknown[]): void {
    for (const listener of [...(this.listeners.get(event) ?? [])]) listener(...args)
  }

  open(): void {
    this.connected = true
    this.push('connect')
  }

  drop(): void {
    this.connected = false
    this.push('disconnect', 'transport close')
  }

  sent(event: string): unknown[] {
    return this.emitted.filter((e) => e.event === event).map((e) => e.payload)
  }
}

let nextId = 100
export function message(over: Partial<Record<string, unknown>> & { seq: number; chat_id?: number }): {
  id: number
  seq: number
  chat_id: number
  sender_kind: 'visitor' | 'agent' | 'system'
  sender_name: string | null
  body: string
  client_id: string | null
  created_at: string
} {
  nextId += 1
  return {
    id: nextId,
    chat_id: 1,
    sender_kind: 'visitor',
    sender_name: null,
    body: `line ${over.seq}`,
    client_id: null,
    created_at: '2026-12-02T02:00:00Z',
    ...over,
  } as never
}
