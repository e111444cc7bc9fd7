// 我的工单 by push: every `ticket.*` event reaches the assignee's agent room
// (smeline/realtime/bridge.py ROUTES), so the list is re-read when one of
// mine changes, and an SLA warning or breach of mine is a notification.
import 'element-plus/es/components/notification/style/css'
import { ElNotification } from 'element-plus/es/components/notification/index'

import { t, tDynamic } from '../i18n'
import { pushedPayload, type LiveSocket } from '../live/request'
import { formatPopTime } from '../components/screenpop/format'

export const TICKET_EVENTS = [
  'ticket.created',
  'ticket.updated',
  'ticket.assigned',
  'ticket.transitioned',
  'ticket.transferred',
  'ticket.commented',
  'ticket.sla_warning',
  'ticket.sla_breached',
] as const

/** smeline/ticketing/events.py TicketSlaEvent (the fields used here). */
export interface TicketSlaPush {
  ticket_id: number
  number: string
  assignee_id: number | null
  clock: string
  due_at: string
}

export interface SlaNotice {
  level: 'warning' | 'breached'
  title: string
  message: string
  ticketId: number
}

export type Notify = (notice: SlaNotice) => void

export const notifyWithElement: Notify = (notice) => {
  ElNotification({
    type: notice.level === 'breached' ? 'error' : 'warning',
    title: notice.title,
    message: notice.message,
    // A breach stays until the agent closes it; a warning goes away by itself.
    duration: notice.level === 'breached' ? 0 : 15_000,
  })
}

export function slaNotice(level: 'warning' | 'breached', push: TicketSlaPush): SlaNotice {
  return {
    level,
    title: t(level === 'breached' ? 'call.slaBreachedTitle' : 'call.slaWarningTitle'),
    message: t('call.slaBody', {
      number: push.number,
      clock: tDynamic(`call.slaClock.${push.clock}`, 'call.slaClock.other'),
      due: formatPopTime(push.due_at),
    }),
    ticketId: push.ticket_id,
  }
}

export interface TicketWatchOptions {
  /** Only my own work orders notify (a supervisor's console hears others'). */
  userId: number
  onChange: () => void
  notify?: Notify
}

/** Subscribe; returns the unsubscribe. */
export function watchMyTickets(socket: LiveSocket, options: TicketWatchOptions): () => void {
  const notify = options.notify ?? notifyWithElement
  const handlers = TICKET_EVENTS.map((event) => {
    const handler = (raw: unknown): void => {
      const push = pushedPayload<TicketSlaPush>(raw)
      if (typeof push !== 'object' || push === null) return
      const mine = push.assignee_id === options.userId
      if (mine && event === 'ticket.sla_warning') notify(slaNotice('warning', push))
      if (mine && event === 'ticket.sla_breached') notify(slaNotice('breached', push))
      options.onChange()
    }
    socket.on(event, handler as (raw: never) => void)
    return [event, handler] as const
  })
  return () => {
    for (const [event, handler] of handlers) socket.off(event, handler as (raw: never) => void)
  }
}
