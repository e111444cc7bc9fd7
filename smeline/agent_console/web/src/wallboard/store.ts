// The supervisor's wallboard: read once over REST, then only what the server
// pushes (`wallboard.update` on /supervisor, at most once a second when
// something changed). The browser never polls; after a reconnect it reads the
// board once more, since pushes missed while away are not replayed.
import { reactive } from 'vue'

import { ApiError, type ApiClient } from '../api'
import { pushedPayload, type LiveSocket } from '../live/request'
import type { SpyMode, Wallboard } from './types'

export interface WallboardState {
  board: Wallboard | null
  connected: boolean
  error: string | null
  /** How many pushes arrived (the view's freshness mark; tests). */
  pushes: number
  /**
   * The call each agent is on, by user id, from the call events pushed to
   * /supervisor (the board itself does not name calls): listen / whisper /
   * barge act on a call's Linkedid.
   */
  calls: Record<number, string>
}

interface CallPush {
  linkedid: string
  agent_interface: string | null
}

/** `PJSIP/agent-12` → 12 (smeline.telephony.phones.interface_of). */
export function agentOfInterface(value: string | null | undefined): number | null {
  const match = /\/agent-(\d+)$/.exec(value ?? '')
  return match ? Number(match[1]) : null
}

export class WallboardApi {
  constructor(private readonly api: ApiClient) {}

  board(): Promise<Wallboard> {
    return this.api.request('GET', '/api/wallboard')
  }

  forcePause(userId: number): Promise<unknown> {
    return this.api.request('POST', `/api/telephony/agents/${userId}/pause`, { reason: 'supervisor' })
  }

  forceLogout(userId: number): Promise<unknown> {
    return this.api.request('POST', `/api/telephony/agents/${userId}/logout`)
  }

  spy(linkedid: string, mode: SpyMode): Promise<unknown> {
    return this.api.request('POST', `/api/telephony/calls/${encodeURIComponent(linkedid)}/spy`, { mode })
  }
}

export interface WallboardStore {
  readonly state: WallboardState
  readonly api: WallboardApi
  start(): Promise<void>
  stop(): void
}

export function createWallboard(api: ApiClient, socket: LiveSocket): WallboardStore {
  const client = new WallboardApi(api)
  const state = reactive<WallboardState>({ board: null, connected: socket.connected, error: null, pushes: 0, calls: {} }) as WallboardState
  let everConnected = socket.connected

  async function load(): Promise<void> {
    try {
      state.board = await client.board()
      state.error = null
    } catch (error) {
      state.error = error instanceof ApiError ? error.message : String(error)
    }
  }

  const handlers: Record<string, (raw: never) => void> = {
    connect: () => {
      state.connected = true
      if (everConnected) void load()
      everConnected = true
    },
    disconnect: () => {
      state.connected = false
    },
    'wallboard.update': (raw: unknown) => {
      const board = pushedPayload<Wallboard>(raw)
      // A push older than what is shown (a slow process) is not a step back.
      if (state.board && Date.parse(board.at) < Date.parse(state.board.at)) return
      state.board = board
      state.pushes += 1
    },
    'call.answered': (raw: unknown) => {
      const call = pushedPayload<CallPush>(raw)
      const agent = agentOfInterface(call.agent_interface)
      if (agent !== null && call.linkedid) state.calls[agent] = call.linkedid
    },
    'call.agent_completed': (raw: unknown) => forgetCall(pushedPayload<CallPush>(raw)),
    'call.ended': (raw: unknown) => forgetCall(pushedPayload<CallPush>(raw)),
  }

  function forgetCall(call: CallPush): void {
    for (const [agent, linkedid] of Object.entries(state.calls)) {
      if (linkedid === call.linkedid) delete state.calls[Number(agent)]
    }
  }

  return {
    state,
    api: client,
    async start() {
      for (const [event, handler] of Object.entries(handlers)) socket.on(event, handler)
      await load()
    },
    stop() {
      for (const [event, handler] of Object.entries(handlers)) socket.off(event, handler)
    },
  }
}
