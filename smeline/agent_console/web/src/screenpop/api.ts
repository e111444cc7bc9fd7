// The screen pop (smeline/screenpop/http.py, docs/screenpop.md): who is
// calling or chatting — member, enterprise, the county routing knows and how —
// and their previous calls, chats and work orders (open ones first).
import { reactive } from 'vue'

import { messageOf, OPEN_TICKET_STATUSES, type ApiClient, type TicketSummary } from '../api'
import { pushedPayload, type LiveSocket } from '../live/request'

export interface PopEnterprise {
  id: number
  name: string
  credit_code: string | null
  county_code: string | null
}

export interface PopMember {
  id: number
  name: string
  enterprise_id: number | null
  county_code: string | null
}

export interface PastCall {
  linkedid: string
  started_at: string
  outcome: string
  window: string | null
  agent_name: string | null
  wait_seconds: number
  talk_seconds: number
  joint: boolean
  ticket_ref: string | null
}

export interface PastChat {
  id: number
  created_at: string
  state: string
  window_code: string | null
  category_code: string | null
}

export interface ScreenPop {
  phone: string | null
  kind: string
  is_meizhou: boolean
  county_code: string | null
  county_source: string
  enterprise: PopEnterprise | null
  member: PopMember | null
  calls: PastCall[]
  chats: PastChat[]
  tickets: TicketSummary[]
}

/**
 * Where a pop stands: looked up, being looked up, nothing to look up with
 * (no phone, or a masked one), or failed (the error already in Chinese).
 */
export type PopLookup =
  | { status: 'loading' }
  | { status: 'no_phone' }
  | { status: 'masked' }
  | { status: 'ok'; pop: ScreenPop }
  | { status: 'error'; message: string }

export type PopQuery = { phone: string } | { linkedid: string }

export function fetchScreenPop(api: ApiClient, query: PopQuery): Promise<ScreenPop> {
  const params = new URLSearchParams(query)
  return api.request<ScreenPop>('GET', `/api/screen-pop?${params.toString()}`)
}

/** The pop for a phone typed in a chat form; nothing asked without a usable phone. */
export async function lookUpPhone(api: ApiClient, phone: string | null | undefined): Promise<PopLookup> {
  if (!phone || !phone.trim()) return { status: 'no_phone' }
  if (phone.includes('*')) return { status: 'masked' }
  return lookUp(api, { phone })
}

export async function lookUp(api: ApiClient, query: PopQuery): Promise<PopLookup> {
  try {
    return { status: 'ok', pop: await fetchScreenPop(api, query) }
  } catch (error) {
    return { status: 'error', message: messageOf(error) }
  }
}

const OPEN: ReadonlySet<string> = new Set(OPEN_TICKET_STATUSES)

export function isOpen(ticket: TicketSummary): boolean {
  return OPEN.has(ticket.status)
}

/** Open work orders first, the server's order kept within each group. */
export function openFirst(tickets: readonly TicketSummary[]): TicketSummary[] {
  return [...tickets.filter(isOpen), ...tickets.filter((x) => !isOpen(x))]
}

/** The `call.answered` push (smeline/telephony/events.py CallAnswered). */
export interface CallAnsweredPush {
  linkedid: string
  direction: string
  caller_number: string
  county: string | null
  category: string | null
  window: string | null
  queue: string | null
  agent_interface: string | null
  wait_seconds: number
  outcome: string
  agent_name: string | null
}

export interface CallPop {
  linkedid: string
  call: CallAnsweredPush
  lookup: PopLookup
}

export interface CallPops {
  readonly state: { calls: CallPop[] }
  start(): void
  stop(): void
  dismiss(linkedid: string): void
}

/** Most recent first; an older answered call stays until dismissed, at most this many. */
export const MAX_CALL_POPS = 5

/**
 * The call screen pop: `call.answered` reaches only the agent who answered
 * (docs/realtime.md); each one asks `/api/screen-pop?linkedid=…`.
 */
export function createCallPops(api: ApiClient, socket: LiveSocket): CallPops {
  const state = reactive<{ calls: CallPop[] }>({ calls: [] })

  async function answered(raw: unknown): Promise<void> {
    const call = pushedPayload<CallAnsweredPush>(raw)
    if (!call || typeof call.linkedid !== 'string' || !call.linkedid) return
    if (state.calls.some((c) => c.linkedid === call.linkedid)) return
    state.calls.unshift({ linkedid: call.linkedid, call, lookup: { status: 'loading' } })
    state.calls.splice(MAX_CALL_POPS)
    const lookup = await lookUp(api, { linkedid: call.linkedid })
    const entry = state.calls.find((c) => c.linkedid === call.linkedid)
    if (entry) entry.lookup = lookup
  }

  const handler = (raw: unknown): void => {
    void answered(raw)
  }

  return {
    state,
    start() {
      socket.on('call.answered', handler as (raw: never) => void)
    },
    stop() {
      socket.off('call.answered', handler as (raw: never) => void)
    },
    dismiss(linkedid) {
      state.calls = state.calls.filter((c) => c.linkedid !== linkedid)
    },
  }
}
