// Inbound events over socket.io with an acknowledgement, typed. The server
// answers `{"ok": true, ...}` (fields beside `ok`, or under `data` — the
// realtime gate's wrapper; both are read) or `{"ok": false, "error": {code,
// message, details}}` (smeline/realtime/events.py SocketError). An event is
// never emitted while the socket is down: socket.io would buffer it and send
// it after the reconnect, behind the caller's own resend.

/** What the chat and wallboard code needs of a socket.io-client Socket (tests fake it). */
export interface LiveSocket {
  readonly connected: boolean
  on(event: string, listener: (...args: never[]) => void): unknown
  off(event: string, listener?: (...args: never[]) => void): unknown
  emit(event: string, ...args: unknown[]): unknown
  disconnect(): unknown
}

export type AckResult<T> = { ok: true; value: T } | { ok: false; code: string; details?: unknown }

/** Codes of a socket error that are worth a resend once connected again. */
export const TRANSIENT = new Set(['disconnected', 'timeout', 'internal_error'])

export const ACK_TIMEOUT_MS = 10_000

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** An ack as the server sent it → a typed result. */
export function readAck<T>(ack: unknown): AckResult<T> {
  if (!isObject(ack)) return { ok: false, code: 'internal_error' }
  if (ack.ok === true) {
    const { ok: _ok, data, ...rest } = ack
    const value = isObject(data) ? { ...data, ...rest } : { ...rest, ...(data === undefined ? {} : { data }) }
    return { ok: true, value: value as T }
  }
  const error = isObject(ack.error) ? ack.error : {}
  const code = typeof error.code === 'string' ? error.code : 'internal_error'
  return { ok: false, code, details: error.details }
}

/** `emit(event, payload)` and wait for the ack, at most `timeoutMs`. */
export function request<T>(socket: LiveSocket, event: string, payload: unknown, timeoutMs = ACK_TIMEOUT_MS): Promise<AckResult<T>> {
  if (!socket.connected) return Promise.resolve({ ok: false, code: 'disconnected' })
  return new Promise((resolve) => {
    let done = false
    const timer = setTimeout(() => {
      if (done) return
      done = true
      resolve({ ok: false, code: 'timeout' })
    }, timeoutMs)
    socket.emit(event, payload, (ack: unknown) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resolve(readAck<T>(ack))
    })
  })
}

/**
 * A pushed event's payload. Bus events arrive wrapped as `{id, name, at,
 * payload}` (docs/realtime.md, PushedEvent); the chat layer's own pushes are
 * the payload itself.
 */
export function pushedPayload<T>(raw: unknown): T {
  if (isObject(raw) && 'payload' in raw && 'name' in raw && isObject(raw.payload)) return raw.payload as T
  return raw as T
}
