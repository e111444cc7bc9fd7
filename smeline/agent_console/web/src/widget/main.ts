// The widget's bundle, loaded by /widget/chat.js (which names the hashed file
// of this build) on any portal page:
//   <script src="https://<smeline>/widget/chat.js" data-smeline="https://<smeline>" async></script>
// It talks to the smeline origin of data-smeline (else that of the script),
// never to the portal, and carries no cookies: the visitor token is all.
import { io } from 'socket.io-client'

import type { LiveSocket } from '../live/request'
import { ChatWidget } from './widget'
import css from './widget.css?inline'

declare global {
  interface Window {
    smelineChat?: ChatWidget
  }
}

function sessionStore(): Storage | null {
  try {
    return window.sessionStorage
  } catch {
    return null // storage blocked (privacy settings): no resume after a page change
  }
}

function boot(base: string): void {
  if (window.smelineChat) return // embedded twice
  const host = document.createElement('div')
  host.id = 'smeline-chat'
  document.body.append(host)
  const widget = new ChatWidget(host, {
    base,
    css,
    storage: sessionStore(),
    connect: (token) =>
      io(`${base}/visitor`, {
        path: '/socket.io',
        auth: { token },
        withCredentials: false,
        transports: ['websocket', 'polling'],
      }) as unknown as LiveSocket,
  })
  window.smelineChat = widget
  void widget.resume()
}

const script = document.currentScript as HTMLScriptElement | null
const named = script?.getAttribute('data-smeline') ?? ''
const base = (named || (script?.src ? new URL(script.src).origin : window.location.origin)).replace(/\/+$/, '')
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', () => boot(base))
else boot(base)
