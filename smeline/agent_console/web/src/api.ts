// The REST API of smeline (docs/api.md), one typed function per endpoint the
// console uses. The browser authenticates with the HttpOnly session cookie set
// by POST /api/auth/login; every write echoes the CSRF token (the login
// answer's csrf_token, also readable in the smeline_csrf cookie after a page
// reload) in X-CSRF-Token, as docs/accounts.md asks. Errors are the server's
// JSON {"error": {"id", "message", "details"}}: the id picks a Chinese
// message from the catalogue; the server's English message is never shown.
import { t, tDynamic } from './i18n'

export type Role =
  | 'admin'
  | 'supervisor'
  | 'county_admin'
  | 'agent'
  | 'expert'
  | 'agency'
  | 'analyst'
  | 'editor'

export interface User {
  id: number
  username: string
  display_name: string
  role: Role
  county_code: string | null
  window_code: string | null
  phone: string | null
  email: string | null
  active: boolean
  must_change_password: boolean
  created_at: string
}

export interface LoginResult {
  user: User
  token: string
  csrf_token: string
  expires_at: string
}

export interface Health {
  status: string
  version: string
  database: string
  redis: boolean
  telephony: 'configured' | 'not_configured'
}

export interface QueueMember {
  interface: string
  name: string
  status: string
  paused: boolean
  paused_reason: string | null
  in_call: boolean
  ready: boolean
  since: string | null
}

export interface TelephonyStatus {
  configured: boolean
  connected: boolean
  calls_in_progress: number
  windows: { code: string; ready: number; waiting: number; members: QueueMember[] }[]
}

export type AgentState = 'ready' | 'paused' | 'wrapup' | 'disconnected'
export type AgentAction = 'ready' | 'pause' | 'wrapup'

export interface AgentStatus {
  logged_in: boolean
  window_code?: string | null
  interface?: string | null
  state?: AgentState | null
  reason?: string | null
  since?: string | null
  wrapup_until?: string | null
  applied?: boolean | null
}

export type TicketStatus =
  | 'new'
  | 'assigned'
  | 'in_progress'
  | 'waiting_customer'
  | 'resolved'
  | 'closed'
  | 'archived'
  | 'reopened'

export type SlaState = 'ok' | 'warning' | 'breached'

export interface TicketSummary {
  id: number
  number: string
  short_ref: string
  status: TicketStatus
  priority: string
  category_code: string
  county_code: string
  window_code: string
  subject: string
  enterprise_name: string | null
  contact_phone: string | null
  assignee_id: number | null
  created_at: string
  sla_state: SlaState
  first_response_due_at: string | null
  resolution_due_at: string | null
}

export interface TicketPage {
  items: TicketSummary[]
  next_cursor: string | null
}

/** Work orders still to be worked on (smeline.ticketing.models.OPEN_STATUSES). */
export const OPEN_TICKET_STATUSES: readonly TicketStatus[] = [
  'new',
  'assigned',
  'in_progress',
  'waiting_customer',
  'reopened',
]

export const CSRF_COOKIE = 'smeline_csrf'
export const CSRF_HEADER = 'X-CSRF-Token'

export class ApiError extends Error {
  readonly status: number
  /** The server's stable error id, or `network` / `server` / `unknown`. */
  readonly code: string
  readonly details: unknown

  constructor(status: number, code: string, details?: unknown) {
    super(errorText(code))
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.details = details
  }
}

/** The catalogue's message for an API error id. */
export function errorText(code: string): string {
  return tDynamic(`error.${code}`, 'error.unknown')
}

/** The message to show for anything a call to the API threw. */
export function messageOf(error: unknown): string {
  return error instanceof ApiError ? error.message : t('error.unknown')
}

export function readCookie(cookieHeader: string, name: string): string | null {
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=')
    if (eq < 0) continue
    if (part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim())
      } catch {
        return null
      }
    }
  }
  return null
}

type Fetch = (input: string, init?: RequestInit) => Promise<Response>

export interface ApiClientOptions {
  fetch?: Fetch
  /** document.cookie, read again at every write (the CSRF cookie survives reloads). */
  cookies?: () => string
  /** Called when the server says the session is gone (401), e.g. to show the login page. */
  onUnauthenticated?: () => void
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

export class ApiClient {
  private readonly fetchImpl: Fetch
  private readonly cookies: () => string
  private readonly onUnauthenticated: () => void
  private csrfToken: string | null = null

  constructor(options: ApiClientOptions = {}) {
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
    this.cookies = options.cookies ?? (() => (typeof document === 'undefined' ? '' : document.cookie))
    this.onUnauthenticated = options.onUnauthenticated ?? (() => undefined)
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' }
    if (body !== undefined) headers['Content-Type'] = 'application/json'
    if (!SAFE_METHODS.has(method)) {
      const csrf = this.csrfToken ?? readCookie(this.cookies(), CSRF_COOKIE)
      if (csrf !== null) headers[CSRF_HEADER] = csrf
    }
    let response: Response
    try {
      response = await this.fetchImpl(path, {
        method,
        headers,
        credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      })
    } catch {
      throw new ApiError(0, 'network')
    }
    if (response.status === 204) return undefined as T
    let payload: unknown = null
    try {
      payload = await response.json()
    } catch {
      payload = null
    }
    if (response.ok) {
      if (payload === null) throw new ApiError(response.status, 'server')
      return payload as T
    }
    const error = readError(response.status, payload)
    if (response.status === 401 && path !== '/api/auth/login') this.onUnauthenticated()
    throw error
  }

  async login(username: string, password: string): Promise<LoginResult> {
    const result = await this.request<LoginResult>('POST', '/api/auth/login', { username, password })
    this.csrfToken = result.csrf_token
    return result
  }

  async logout(): Promise<void> {
    try {
      await this.request<void>('POST', '/api/auth/logout')
    } finally {
      this.csrfToken = null
    }
  }

  /** Required after a one-time password; the session stays valid. */
  changePassword(currentPassword: string, newPassword: string): Promise<void> {
    return this.request('POST', '/api/auth/password', {
      current_password: currentPassword,
      new_password: newPassword,
    })
  }

  me(): Promise<User> {
    return this.request('GET', '/api/auth/me')
  }

  health(): Promise<Health> {
    return this.request('GET', '/api/health')
  }

  telephonyStatus(): Promise<TelephonyStatus> {
    return this.request('GET', '/api/telephony/status')
  }

  myAgentStatus(): Promise<AgentStatus> {
    return this.request('GET', '/api/telephony/agents/me')
  }

  /** Join my window's queue; `windowCode` only for roles not bound to one window. */
  agentLogin(windowCode?: string): Promise<AgentStatus> {
    return this.request('POST', '/api/telephony/agents/me/login', windowCode ? { window_code: windowCode } : {})
  }

  agentAct(action: AgentAction, reason?: string): Promise<AgentStatus> {
    return this.request('POST', '/api/telephony/agents/me/state', reason ? { action, reason } : { action })
  }

  agentLogout(): Promise<void> {
    return this.request('POST', '/api/telephony/agents/me/logout')
  }

  /** Open work orders assigned to `userId`, newest first, one page. */
  myTickets(userId: number, cursor?: string | null): Promise<TicketPage> {
    const query = new URLSearchParams({ assignee_id: String(userId), limit: '50' })
    for (const status of OPEN_TICKET_STATUSES) query.append('status', status)
    if (cursor) query.set('cursor', cursor)
    return this.request('GET', `/api/tickets?${query.toString()}`)
  }
}

function readError(status: number, payload: unknown): ApiError {
  if (typeof payload === 'object' && payload !== null && 'error' in payload) {
    const error = (payload as { error: unknown }).error
    if (typeof error === 'object' && error !== null && 'id' in error) {
      const id = (error as { id: unknown }).id
      if (typeof id === 'string') {
        return new ApiError(status, id, (error as { details?: unknown }).details)
      }
    }
  }
  return new ApiError(status, status >= 500 ? 'server' : 'unknown')
}
