// Test helpers: a fake of the HTTP server at the fetch boundary (the API
// client itself is real) and a session store built on it.
import { ApiClient } from '../src/api'
import { createSession, SESSION_KEY, type SessionStore } from '../src/session'

export interface Recorded {
  method: string
  path: string
  headers: Record<string, string>
  body: unknown
}

export type Reply = { status: number; body?: unknown } | (() => never)
export type Routes = Record<string, Reply | ((call: Recorded) => Reply)>

/** `routes` keyed "METHOD /path" (the path without its query or origin); unknown routes answer 404. */
export function fakeServer(routes: Routes): {
  fetch: (input: string, init?: RequestInit) => Promise<Response>
  calls: Recorded[]
} {
  const calls: Recorded[] = []
  const fetch = async (input: string, init: RequestInit = {}): Promise<Response> => {
    const method = init.method ?? 'GET'
    const headers = { ...(init.headers as Record<string, string> | undefined) }
    const body = typeof init.body === 'string' ? (JSON.parse(init.body) as unknown) : undefined
    const call: Recorded = { method, path: input, headers, body }
    calls.push(call)
    // Keyed by path: a call to another origin (the portal widget's) drops it.
    const path = input.replace(/^https?:\/\/[^/]+/, '').split('?')[0] ?? input
    const route = routes[`${method} ${path}`]
    const reply = typeof route === 'function' ? (route as (c: Recorded) => Reply)(call) : route
    if (reply === undefined) return json(404, { error: { id: 'not_found', message: 'Not Found' } })
    if (typeof reply === 'function') return reply()
    if (reply.status === 204) return new Response(null, { status: 204 })
    return json(reply.status, reply.body ?? {})
  }
  return { fetch, calls }
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
}

export function sessionOn(routes: Routes): { session: SessionStore; calls: Recorded[] } {
  const server = fakeServer(routes)
  const api = new ApiClient({ fetch: server.fetch, cookies: () => '' })
  return { session: createSession(api), calls: server.calls }
}

export function provideSession(session: SessionStore): { provide: Record<symbol, unknown> } {
  return { provide: { [SESSION_KEY as symbol]: session } }
}

export const AGENT = {
  id: 7,
  username: 'xn_agent',
  display_name: '兴宁坐席一',
  role: 'agent',
  county_code: null,
  window_code: 'xingning',
  phone: null,
  email: null,
  active: true,
  must_change_password: false,
  created_at: '2026-11-20T01:00:00Z',
} as const

/** Resolves once every pending promise callback has run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise<void>((resolve) => queueMicrotask(resolve))
}
