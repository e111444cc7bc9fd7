// My calls in progress and what I do with them: escalate (city centre,
// province, another county window, an expert), merge / cancel / drop / leave,
// transfer to another window's queue. The live three-way picture comes from
// `conference.member_joined/left` (pushed to my agent room only, like the
// screen pop) and from each escalation endpoint's answer.
//
// The linkedids of my calls still up are kept in sessionStorage (not the
// caller's number: the screen pop is re-read by linkedid), so a page reload
// during a call brings back its pop and its controls; a call that ended in
// the meantime is dropped (its record is no longer in progress).
import { reactive } from 'vue'

import { ApiError, messageOf, type ApiClient } from '../api'
import { pushedPayload, type LiveSocket } from '../live/request'
import { lookUp, MAX_CALL_POPS, type CallAnsweredPush, type CallPops } from '../screenpop/api'
import { CallsApi, type EscalateIn, type EscalationStep, type EscalationView } from './api'

export type MemberRole = 'caller' | 'agent' | 'target'

/** One leg in the call's ConfBridge rooms (smeline/telephony/events.py ConferenceMember). */
export interface ConferenceLeg {
  channel: string
  role: MemberRole
  conference: string
  /** The caller alone in `esc-<linkedid>-hold` hears music while I brief the far party. */
  onHold: boolean
}

export interface LiveCall {
  linkedid: string
  window: string | null
  category: string | null
  escalation: EscalationView | null
  legs: ConferenceLeg[]
  busy: boolean
  error: string | null
}

/** A confirmation that outlives the call it was about (the call leaves my list). */
export interface CallNotice {
  kind: 'transferred' | 'handedOff'
  linkedid: string
  window?: string
}

interface Stored {
  linkedid: string
  window: string | null
  category: string | null
}

export const STORAGE_KEY = 'smeline.calls.live'

export interface CallDesk {
  readonly state: { calls: LiveCall[]; notice: CallNotice | null }
  readonly api: CallsApi
  start(): Promise<void>
  stop(): void
  escalate(linkedid: string, body: EscalateIn): Promise<boolean>
  step(linkedid: string, step: EscalationStep): Promise<boolean>
  transfer(linkedid: string, windowCode: string): Promise<boolean>
}

export interface CallDeskOptions {
  /** The screen pops to restore after a reload and to clear when a call ends. */
  pops?: CallPops | null
  storage?: Pick<Storage, 'getItem' | 'setItem' | 'removeItem'> | null
}

function defaultStorage(): CallDeskOptions['storage'] {
  try {
    return typeof sessionStorage === 'undefined' ? null : sessionStorage
  } catch {
    return null
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function readStored(storage: CallDeskOptions['storage']): Stored[] {
  try {
    const parsed: unknown = JSON.parse(storage?.getItem(STORAGE_KEY) ?? '[]')
    if (!Array.isArray(parsed)) return []
    return parsed
      .filter((x): x is Record<string, unknown> => isRecord(x) && typeof x.linkedid === 'string' && x.linkedid !== '')
      .map((x) => ({
        linkedid: x.linkedid as string,
        window: typeof x.window === 'string' ? x.window : null,
        category: typeof x.category === 'string' ? x.category : null,
      }))
  } catch {
    return []
  }
}

export function createCallDesk(client: ApiClient, socket: LiveSocket, options: CallDeskOptions = {}): CallDesk {
  const api = new CallsApi(client)
  const storage = options.storage === undefined ? defaultStorage() : options.storage
  const pops = options.pops ?? null
  const state = reactive<{ calls: LiveCall[]; notice: CallNotice | null }>({ calls: [], notice: null })

  function find(linkedid: string): LiveCall | undefined {
    return state.calls.find((c) => c.linkedid === linkedid)
  }

  function persist(): void {
    const stored: Stored[] = state.calls.map((c) => ({ linkedid: c.linkedid, window: c.window, category: c.category }))
    try {
      if (stored.length) storage?.setItem(STORAGE_KEY, JSON.stringify(stored))
      else storage?.removeItem(STORAGE_KEY)
    } catch {
      // Storage full or refused: only the reload recovery is lost.
    }
  }

  function add(linkedid: string, window: string | null, category: string | null): LiveCall {
    const existing = find(linkedid)
    if (existing) return existing
    state.calls.unshift({ linkedid, window, category, escalation: null, legs: [], busy: false, error: null })
    state.calls.splice(MAX_CALL_POPS)
    persist()
    return state.calls[0] as LiveCall
  }

  function remove(linkedid: string): void {
    state.calls = state.calls.filter((c) => c.linkedid !== linkedid)
    persist()
  }

  const onAnswered = (raw: unknown): void => {
    const call = pushedPayload<CallAnsweredPush>(raw)
    if (!isRecord(call) || typeof call.linkedid !== 'string' || !call.linkedid) return
    add(call.linkedid, call.window ?? null, call.category ?? null)
  }

  const onEnded = (raw: unknown): void => {
    const call = pushedPayload<{ linkedid?: unknown }>(raw)
    if (!isRecord(call) || typeof call.linkedid !== 'string') return
    remove(call.linkedid)
    pops?.dismiss(call.linkedid)
  }

  function legOf(raw: unknown): { linkedid: string; leg: ConferenceLeg } | null {
    const m = pushedPayload<Record<string, unknown>>(raw)
    if (!isRecord(m) || typeof m.linkedid !== 'string' || typeof m.conference !== 'string') return null
    const role: MemberRole = m.role === 'caller' || m.role === 'agent' ? m.role : 'target'
    const channel = typeof m.channel === 'string' && m.channel ? m.channel : `${role}@${m.conference}`
    return { linkedid: m.linkedid, leg: { channel, role, conference: m.conference, onHold: m.conference.endsWith('-hold') } }
  }

  const onJoined = (raw: unknown): void => {
    const got = legOf(raw)
    const call = got && find(got.linkedid)
    if (!got || !call) return
    // A leg moving between the room and the hold room is one leg: keep its latest place.
    call.legs = [...call.legs.filter((l) => l.channel !== got.leg.channel), got.leg]
  }

  const onLeft = (raw: unknown): void => {
    const got = legOf(raw)
    const call = got && find(got.linkedid)
    if (!got || !call) return
    call.legs = call.legs.filter((l) => !(l.channel === got.leg.channel && l.conference === got.leg.conference))
  }

  async function act(linkedid: string, run: (call: LiveCall) => Promise<void>): Promise<boolean> {
    const call = find(linkedid)
    if (!call || call.busy) return false
    call.busy = true
    call.error = null
    state.notice = null
    try {
      await run(call)
      return true
    } catch (error) {
      call.error = messageOf(error)
      // The server no longer knows this escalation (ended, or another tab acted).
      if (error instanceof ApiError && error.code === 'no_escalation') call.escalation = null
      return false
    } finally {
      call.busy = false
    }
  }

  /** Ask the server whether each remembered call is still up; restore those that are. */
  async function restore(): Promise<void> {
    const stored = readStored(storage)
    for (const s of stored.reverse()) {
      const lookup = await lookUp(client, { linkedid: s.linkedid })
      if (lookup.status !== 'ok') continue
      const past = lookup.pop.calls.find((c) => c.linkedid === s.linkedid)
      if (!past || past.outcome !== 'in_progress') continue
      if (find(s.linkedid)) continue
      add(s.linkedid, s.window ?? past.window, s.category)
      if (pops && !pops.state.calls.some((c) => c.linkedid === s.linkedid)) {
        pops.state.calls.unshift({
          linkedid: s.linkedid,
          call: {
            linkedid: s.linkedid,
            direction: 'inbound',
            caller_number: lookup.pop.phone ?? '',
            county: lookup.pop.county_code,
            category: s.category,
            window: s.window ?? past.window,
            queue: null,
            agent_interface: null,
            wait_seconds: past.wait_seconds,
            outcome: past.outcome,
            agent_name: past.agent_name,
          },
          lookup,
        })
        pops.state.calls.splice(MAX_CALL_POPS)
      }
    }
    persist()
  }

  const handlers: [string, (raw: unknown) => void][] = [
    ['call.answered', onAnswered],
    ['call.ended', onEnded],
    ['conference.member_joined', onJoined],
    ['conference.member_left', onLeft],
  ]

  return {
    state,
    api,
    async start() {
      for (const [event, handler] of handlers) socket.on(event, handler as (raw: never) => void)
      await restore()
    },
    stop() {
      for (const [event, handler] of handlers) socket.off(event, handler as (raw: never) => void)
    },
    escalate(linkedid, body) {
      return act(linkedid, async (call) => {
        call.escalation = await api.escalate(linkedid, body)
      })
    },
    step(linkedid, step) {
      return act(linkedid, async (call) => {
        const view = await api.step(linkedid, step)
        if (step === 'leave') {
          // Hand-off: my leg is hung up; the caller and the far party carry on without me.
          remove(linkedid)
          state.notice = { kind: 'handedOff', linkedid }
          return
        }
        call.escalation = view.phase === 'idle' ? null : view
        if (step === 'drop' || step === 'cancel') call.legs = call.legs.filter((l) => l.role !== 'target')
      })
    },
    transfer(linkedid, windowCode) {
      return act(linkedid, async () => {
        await api.transfer(linkedid, windowCode)
        // The caller is back in a queue: no longer my call (its wrap-up still is mine).
        remove(linkedid)
        state.notice = { kind: 'transferred', linkedid, window: windowCode }
      })
    },
  }
}
