import { afterEach, describe, expect, it, vi } from 'vitest'

import { Conversation, lineLength } from '../src/chat/conversation'
import { request } from '../src/live/request'
import type { ChatMessage, FetchResult } from '../src/chat/types'
import { FakeSocket, HOLD, message } from './fakeSocket'
import { settle } from './helpers'

afterEach(() => {
  vi.useRealTimers()
})

/** A visitor-side conversation on a fake /visitor socket whose server stores lines like smeline's. */
function setUp() {
  const socket = new FakeSocket()
  const stored: ChatMessage[] = []
  let ids = 0
  const serverSend = (payload: { client_id: string; body: string }): ChatMessage => {
    const known = stored.find((m) => m.client_id === payload.client_id && m.sender_kind === 'visitor')
    if (known) return known
    const line = message({ seq: stored.length + 1, sender_kind: 'visitor', client_id: payload.client_id, body: payload.body }) as ChatMessage
    stored.push(line)
    return line
  }
  socket.answer = (event, payload) => {
    if (event === 'chat.send') return { ok: true, message: serverSend(payload as { client_id: string; body: string }) }
    if (event === 'chat.fetch') {
      const since = (payload as { since: number }).since
      return { ok: true, messages: stored.filter((m) => m.seq > since), state: 'assigned' }
    }
    return { ok: true }
  }
  let n = 0
  const conversation = new Conversation(
    {
      isConnected: () => socket.connected,
      send: (clientId, body) => request<{ message: ChatMessage }>(socket, 'chat.send', { client_id: clientId, body }),
      fetch: (since) => request<FetchResult>(socket, 'chat.fetch', { since }),
      typing: (typing) => socket.emit('chat.typing', { typing }),
    },
    'visitor',
    { newClientId: () => `c${(n += 1)}`, maxChars: 10 },
  )
  return { socket, stored, serverSend, conversation, ids }
}

describe('Conversation', () => {
  it('shows a line as pending until its ack, then as the stored line', async () => {
    const { socket, conversation } = setUp()
    socket.open()
    let release: (() => void) | undefined
    const answer = socket.answer
    socket.answer = (event, payload) => {
      const reply = answer(event, payload)
      if (event !== 'chat.send') return reply
      release = () => socket.held.shift()?.ack(reply)
      return HOLD
    }
    expect(conversation.send('hello')).toBeNull()
    expect(conversation.outgoing).toMatchObject([{ clientId: 'c1', body: 'hello', status: 'pending' }])
    expect(conversation.messages).toEqual([])
    release?.()
    await settle()
    expect(conversation.outgoing).toEqual([])
    expect(conversation.messages.map((m) => [m.seq, m.body, m.client_id])).toEqual([[1, 'hello', 'c1']])
  })

  it('resends an unacknowledged line after the reconnect with the same client id, and shows it once', async () => {
    const { socket, conversation, stored } = setUp()
    socket.open()
    const answer = socket.answer
    // The first send is lost in transit with the connection: no ack, nothing stored.
    socket.answer = (event, payload) => (event === 'chat.send' ? HOLD : answer(event, payload))
    conversation.send('first')
    await settle()
    socket.drop()
    conversation.send('second') // typed while offline: not emitted now
    expect(socket.sent('chat.send')).toHaveLength(1)
    expect(conversation.outgoing.map((o) => o.status)).toEqual(['pending', 'pending'])

    socket.answer = answer
    socket.open()
    await conversation.resync()
    await settle()
    expect(socket.sent('chat.fetch')).toEqual([{ since: 0 }])
    const sends = socket.sent('chat.send') as { client_id: string }[]
    expect(sends.map((s) => s.client_id)).toEqual(['c1', 'c1', 'c2'])
    expect(stored.map((m) => m.body)).toEqual(['first', 'second'])
    expect(conversation.outgoing).toEqual([])
    // The server's own push of the same lines changes nothing.
    for (const line of stored) socket.push('chat.message', line)
    for (const line of stored) conversation.receive({ ...line })
    expect(conversation.messages.map((m) => m.body)).toEqual(['first', 'second'])
    expect(conversation.lastSeq).toBe(2)
  })

  it('a line the server stored before the drop is found by the re-fetch and not sent again', async () => {
    const { socket, conversation, serverSend } = setUp()
    socket.open()
    const answer = socket.answer
    socket.answer = (event, payload) => (event === 'chat.send' ? HOLD : answer(event, payload))
    conversation.send('kept')
    await settle()
    serverSend(socket.held[0]!.payload as { client_id: string; body: string })
    socket.drop()
    socket.answer = answer
    socket.open()
    await conversation.resync()
    await settle()
    expect(socket.sent('chat.send')).toHaveLength(1)
    expect(conversation.outgoing).toEqual([])
    expect(conversation.messages.map((m) => m.body)).toEqual(['kept'])
  })

  it('de-duplicates a line heard by push, by ack and by re-fetch', async () => {
    const { socket, conversation } = setUp()
    const agentLine = message({ seq: 1, sender_kind: 'agent', body: 'hi', client_id: 'a1' }) as ChatMessage
    conversation.receive(agentLine)
    conversation.receive({ ...agentLine })
    conversation.receive(message({ seq: 3, sender_kind: 'agent', body: 'three' }) as ChatMessage)
    conversation.receive(message({ seq: 2, sender_kind: 'system', body: 'two' }) as ChatMessage)
    expect(conversation.messages.map((m) => m.seq)).toEqual([1, 2, 3])
    socket.open()
    socket.answer = () => ({ ok: true, messages: [agentLine, message({ seq: 4, body: 'four' })], state: 'assigned' })
    await conversation.resync()
    expect(socket.sent('chat.fetch')).toEqual([{ since: 3 }])
    expect(conversation.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4])
    expect(conversation.state).toBe('assigned')
  })

  it('marks a refused line with its reason and sends it again on retry', async () => {
    const { socket, conversation } = setUp()
    socket.open()
    const answer = socket.answer
    socket.answer = (event, payload) =>
      event === 'chat.send' && socket.sent('chat.send').length === 1
        ? { ok: false, error: { code: 'rate_limited', message: 'slow down', details: {} } }
        : answer(event, payload)
    conversation.send('fast')
    await settle()
    expect(conversation.outgoing).toMatchObject([{ status: 'failed', error: 'rate_limited' }])
    conversation.retry('c1')
    await settle()
    expect(conversation.outgoing).toEqual([])
    expect(conversation.messages.map((m) => m.body)).toEqual(['fast'])
  })

  it('refuses an empty or too long line before sending, counting characters as the server does', () => {
    const { socket, conversation } = setUp()
    socket.open()
    expect(conversation.send('   ')).toBe('empty')
    expect(conversation.send('12345678901')).toBe('too_long')
    expect(lineLength('😀😀')).toBe(2)
    expect(conversation.send('😀😀😀😀😀😀😀😀😀😀')).toBeNull()
    expect(socket.sent('chat.send')).toHaveLength(1)
  })

  it('sends typing once, stops after a pause or a send, and lets the other side lapse', () => {
    vi.useFakeTimers()
    const { socket, conversation } = setUp()
    socket.open()
    conversation.noteTyping()
    conversation.noteTyping()
    expect(socket.sent('chat.typing')).toEqual([{ typing: true }])
    vi.advanceTimersByTime(3100)
    expect(socket.sent('chat.typing')).toEqual([{ typing: true }, { typing: false }])
    conversation.noteTyping()
    conversation.send('x')
    expect(socket.sent('chat.typing')).toEqual([{ typing: true }, { typing: false }, { typing: true }, { typing: false }])

    conversation.setPeerTyping(true)
    expect(conversation.peerTyping).toBe(true)
    vi.advanceTimersByTime(6100)
    expect(conversation.peerTyping).toBe(false)
    conversation.setPeerTyping(true)
    conversation.receive(message({ seq: 9, sender_kind: 'agent' }) as ChatMessage)
    expect(conversation.peerTyping).toBe(false)
  })
})
