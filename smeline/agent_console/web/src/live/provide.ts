// Which sockets the views open: socket.io by default, a fake in the tests.
import { inject, type InjectionKey } from 'vue'

import type { LiveSocket } from './request'
import { connectLive, type Namespace } from './socket'

export type SocketFactory = (namespace: Namespace) => LiveSocket

export const LIVE_KEY: InjectionKey<SocketFactory> = Symbol('smeline.live')

export const socketIo: SocketFactory = (namespace) => connectLive(namespace) as unknown as LiveSocket

export function useLive(): SocketFactory {
  return inject(LIVE_KEY, socketIo)
}
