// JsSIP replaced at the module boundary ('jssip') for the softphone's tests:
//   const fake = vi.hoisted(() => ({ uas: [] as unknown[], sockets: [] as string[] }))
//   vi.mock('jssip', async () => (await import('./fakeJssip')).fakeJssip(fake))
// Every UA the code creates is kept in fake.uas, every WebSocket URL in fake.sockets.
import { vi } from 'vitest'

type Listener = (...args: unknown[]) => void

export class Emitter {
  private readonly listeners = new Map<string, Listener[]>()
  on(event: string, listener: Listener): this {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), listener])
    return this
  }
  emit(event: string, ...args: unknown[]): void {
    for (const l of this.listeners.get(event) ?? []) l(...args)
  }
}

export class FakeSession extends Emitter {
  remote_identity: { display_name: string; uri: { user: string } }
  constructor(user = 'sipp', displayName = 'sipp') {
    super()
    this.remote_identity = { display_name: displayName, uri: { user } }
  }
  answer = vi.fn()
  terminate = vi.fn()
  sendDTMF = vi.fn()
  hold = vi.fn(() => true)
  unhold = vi.fn(() => true)
  mute = vi.fn()
  unmute = vi.fn()
}

export type FakeUA = Emitter & {
  configuration: Record<string, unknown>
  start: ReturnType<typeof vi.fn>
  stop: ReturnType<typeof vi.fn>
}

export interface FakeRegistry {
  uas: unknown[]
  sockets: string[]
}

export function fakeJssip(fake: FakeRegistry) {
  class UA extends Emitter {
    configuration: unknown
    start = vi.fn()
    stop = vi.fn()
    constructor(configuration: unknown) {
      super()
      this.configuration = configuration
      fake.uas.push(this)
    }
  }
  class WebSocketInterface {
    url: string
    constructor(url: string) {
      this.url = url
      fake.sockets.push(url)
    }
  }
  return { UA, WebSocketInterface, C: { DTMF_TRANSPORT: { INFO: 'INFO', RFC2833: 'RFC2833' } } }
}
