// Who is logged in, what the server says about telephony and the microphone:
// the console's one store of session state, shared by the router and the shell.
import { inject, reactive, readonly, type InjectionKey } from 'vue'

import { ApiClient, ApiError, type Health, type User } from './api'
import type { MicrophoneCheck } from './microphone'

interface SessionState {
  user: User | null
  health: Health | null
  microphone: MicrophoneCheck | null
}

export interface SessionStore {
  readonly api: ApiClient
  readonly state: Readonly<SessionState>
  setUser(user: User | null): void
  setMicrophone(check: MicrophoneCheck | null): void
  /** The logged-in user, asking the server once after a page load; null when logged out. */
  restore(): Promise<User | null>
  refreshHealth(): Promise<Health | null>
  telephonyConfigured(): boolean
}

export function createSession(api?: ApiClient): SessionStore {
  const state = reactive<SessionState>({ user: null, health: null, microphone: null })
  let restored = false
  const client =
    api ??
    new ApiClient({
      onUnauthenticated: () => {
        state.user = null
      },
    })
  return {
    api: client,
    state: readonly(state) as Readonly<SessionState>,
    setUser(user) {
      state.user = user
      restored = true
    },
    setMicrophone(check) {
      state.microphone = check
    },
    async restore() {
      if (restored) return state.user
      try {
        state.user = await client.me()
      } catch (error) {
        if (!(error instanceof ApiError) || (error.status !== 401 && error.status !== 403)) throw error
        state.user = null
      }
      restored = true
      return state.user
    },
    async refreshHealth() {
      try {
        state.health = await client.health()
      } catch {
        // The banner keeps its last word; the next refresh tries again.
      }
      return state.health
    },
    telephonyConfigured() {
      return state.health?.telephony === 'configured'
    },
  }
}

export const SESSION_KEY: InjectionKey<SessionStore> = Symbol('smeline.session')

export function useSession(): SessionStore {
  const session = inject(SESSION_KEY)
  if (!session) throw new Error('the session store is not provided')
  return session
}
