// The wallboard contract (docs/console.md): GET /api/wallboard and the
// /supervisor socket's `wallboard.update` carry the same JSON.
export interface TodayFigures {
  offered: number
  answered: number
  abandoned: number
  short_abandoned: number
  service_level: number | null
  asa_seconds: number | null
  aht_seconds: number | null
  overflowed_in: number
  chats: number
  chats_answered: number
}

export interface AgentsByState {
  ready: number
  paused: number
  wrapup: number
  on_call: number
  disconnected: number
}

export interface WindowBoard {
  code: string
  name: string
  open: boolean
  calls_waiting: number
  longest_call_wait_seconds: number
  chats_waiting: number
  longest_chat_wait_seconds: number
  agents: AgentsByState
  today: TodayFigures
}

export interface AgentBoard {
  user_id: number
  name: string
  window_code: string | null
  state: string
  reason: string | null
  since: string | null
  handled: number
  missed: number
  aht_seconds: number | null
  chats_active: number
  /** The agent's call in progress, when the server names it: listen / whisper / barge need it. */
  linkedid?: string | null
}

export interface SlaItem {
  id: number
  number: string
  short_ref: string
  subject: string
  county_code: string
  state: string
  sla_state: 'warning' | 'breached' | string
  due_at: string | null
  assignee_name: string | null
}

export interface SlaBoard {
  warning: number
  breached: number
  by_county: { county_code: string; name: string; warning: number; breached: number }[]
  items: SlaItem[]
}

export interface Trends {
  by_hour: number[]
  by_category: Record<string, number>
  by_county: Record<string, number>
}

export interface Wallboard {
  at: string
  day: string
  rules: { service_level_seconds: number; short_abandon_seconds: number }
  windows: WindowBoard[]
  total: TodayFigures
  agents: AgentBoard[]
  sla: SlaBoard
  trends: Trends
}

export type SpyMode = 'listen' | 'whisper' | 'barge'
