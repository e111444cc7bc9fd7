// The one socket.io connector of the browser apps (Chatwoot's pattern: event
// names map to store actions in one place). The server side (python-socketio
// namespaces /agent, /supervisor, /visitor, smeline/realtime) is built alongside;
// nothing connects until a caller asks for a namespace.
import { io, type Socket } from 'socket.io-client'

// The namespaces of smeline/realtime/rooms.py.
export type Namespace = '/agent' | '/supervisor' | '/visitor'

export interface LiveOptions {
  /** Same origin by default: the session cookie authenticates the handshake. */
  url?: string
  path?: string
}

export function connectLive(namespace: Namespace, options: LiveOptions = {}): Socket {
  return io(`${options.url ?? ''}${namespace}`, {
    path: options.path ?? '/socket.io',
    withCredentials: true,
    // WebSocket first: an office proxy that breaks it still gets long polling.
    transports: ['websocket', 'polling'],
    autoConnect: true,
  })
}
