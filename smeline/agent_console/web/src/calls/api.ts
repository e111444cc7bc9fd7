// The call controls' endpoints (docs/telephony.md, docs/escalation.md):
// three-way escalation, transfer to another window's queue, click-to-call from
// a work order, the expert pool's availability and 我的通话 with recordings.
import type { ApiClient } from '../api'

export type EscalationTargetKind = 'city' | 'window' | 'province' | 'expert'
export type EscalationStep = 'merge' | 'leave' | 'drop' | 'cancel'
/** smeline/telephony/escalation.py Phase. */
export type EscalationPhase = 'idle' | 'consulting' | 'ringing' | 'merged'

export interface EscalateIn {
  target_kind: EscalationTargetKind
  window_code?: string
  expert_id?: number
  category_code?: string
  /** Private consultation first (the caller hears hold music), then merge. */
  consult: boolean
}

/** smeline/telephony/escalation_http.py EscalationOut. */
export interface EscalationView {
  linkedid: string
  phase: EscalationPhase
  consult: boolean
  room: string
  target_kind: EscalationTargetKind | null
  target_ref: string | null
  expert_id: number | null
  expert_name: string | null
  consultation_id: number | null
  answered: boolean
}

export type ExpertUnavailableReason = 'inactive' | 'no_specialty' | 'off_schedule' | 'on_call'

export interface ExpertAvailability {
  id: number
  name: string
  specialties: string[]
  active: boolean
  available: boolean
  reasons: ExpertUnavailableReason[]
}

export interface ExpertAvailabilityPage {
  category: string
  at: string
  suggested_expert_id: number | null
  experts: ExpertAvailability[]
}

/** GET /api/telephony/calls/mine (smeline/telephony/http.py MyCallOut). */
export interface MyCall {
  linkedid: string
  direction: string
  caller_number: string
  county_code: string | null
  category_code: string | null
  window: string | null
  started_at: string
  answered_at: string | null
  ended_at: string | null
  wait_seconds: number
  talk_seconds: number
  outcome: string
  joint: boolean
  ticket_ref: string | null
  has_recording: boolean
}

export interface MyCallsPage {
  items: MyCall[]
  next_cursor: string | null
}

function callPath(linkedid: string): string {
  return `/api/telephony/calls/${encodeURIComponent(linkedid)}`
}

/** Played by the browser's <audio> with the session cookie; every play is audited server-side. */
export function recordingUrl(linkedid: string): string {
  return `${callPath(linkedid)}/recording`
}

export class CallsApi {
  constructor(private readonly api: ApiClient) {}

  escalate(linkedid: string, body: EscalateIn): Promise<EscalationView> {
    return this.api.request('POST', `${callPath(linkedid)}/escalations`, body)
  }

  step(linkedid: string, step: EscalationStep): Promise<EscalationView> {
    return this.api.request('POST', `${callPath(linkedid)}/escalations/${step}`)
  }

  transfer(linkedid: string, windowCode: string): Promise<void> {
    return this.api.request('POST', `${callPath(linkedid)}/transfer`, { window_code: windowCode })
  }

  /** My phone rings first, then the work order's contact. */
  callTicketContact(ticketId: number): Promise<{ channel_id: string }> {
    return this.api.request('POST', `/api/tickets/${ticketId}/call`)
  }

  availableExperts(category: string): Promise<ExpertAvailabilityPage> {
    return this.api.request('GET', `/api/experts/available?${new URLSearchParams({ category }).toString()}`)
  }

  myCalls(cursor?: string | null, limit = 20): Promise<MyCallsPage> {
    const query = new URLSearchParams({ limit: String(limit) })
    if (cursor) query.set('cursor', cursor)
    return this.api.request('GET', `/api/telephony/calls/mine?${query.toString()}`)
  }
}
