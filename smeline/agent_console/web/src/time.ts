// Pure time formatting for the console: time in state and SLA countdowns.
// Due times come from the server as instants (it has already counted business
// hours and holidays); the countdown is wall-clock time left until them.
import type { SlaState, TicketStatus } from './api'
import { t } from './i18n'

const SECOND = 1000
const MINUTE = 60 * SECOND
const HOUR = 60 * MINUTE
const DAY = 24 * HOUR

function pad(n: number): string {
  return n < 10 ? `0${n}` : String(n)
}

/** 0:00:07 style: `MM:SS` under an hour, `H:MM:SS` under a day, `N天 HH:MM:SS` beyond. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / SECOND))
  const days = Math.floor(total / 86400)
  const hours = Math.floor((total % 86400) / 3600)
  const minutes = Math.floor((total % 3600) / 60)
  const seconds = total % 60
  if (days > 0) {
    return t('duration.days', { days, clock: `${pad(hours)}:${pad(minutes)}:${pad(seconds)}` })
  }
  if (hours > 0) return `${hours}:${pad(minutes)}:${pad(seconds)}`
  return `${pad(minutes)}:${pad(seconds)}`
}

/** Milliseconds since `sinceIso`, never negative (clocks of browser and server differ a little). */
export function elapsedSince(sinceIso: string | null | undefined, nowMs: number): number {
  if (!sinceIso) return 0
  const since = Date.parse(sinceIso)
  return Number.isNaN(since) ? 0 : Math.max(0, nowMs - since)
}

export type SlaLevel = 'ok' | 'warning' | 'breached' | 'paused' | 'none'

export interface SlaCountdown {
  level: SlaLevel
  text: string
}

export interface SlaClockInput {
  status: TicketStatus
  sla_state: SlaState
  resolution_due_at: string | null
}

/**
 * The resolution countdown of a work order at `nowMs`. The warning point
 * (75 % of the target in business time) is only known to the server, so
 * `warning` comes from its `sla_state`; `breached` is also decided here the
 * moment the due time passes, without waiting for the scheduler.
 */
export function slaCountdown(ticket: SlaClockInput, nowMs: number): SlaCountdown {
  if (ticket.resolution_due_at === null) {
    if (ticket.status === 'waiting_customer') return { level: 'paused', text: t('sla.paused') }
    return { level: 'none', text: t('sla.noDue') }
  }
  const due = Date.parse(ticket.resolution_due_at)
  if (Number.isNaN(due)) return { level: 'none', text: t('sla.noDue') }
  const left = due - nowMs
  if (left <= 0) return { level: 'breached', text: t('sla.overdue', { duration: formatDuration(-left) }) }
  const level: SlaLevel = ticket.sla_state === 'ok' ? 'ok' : ticket.sla_state
  return { level, text: t('sla.remaining', { duration: formatDuration(left) }) }
}
