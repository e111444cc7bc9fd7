import { describe, expect, it, vi } from 'vitest'

import { ApiClient, ApiError, readCookie } from '../src/api'
import { AGENT, fakeServer } from './helpers'

const LOGIN = { user: AGENT, token: 't'.repeat(43), csrf_token: 'csrf-from-login', expires_at: '2026-12-01T12:00:00Z' }

describe('ApiClient', () => {
  it('sends the CSRF token of the login answer on writes, and none on reads', async () => {
    const server = fakeServer({
      'POST /api/auth/login': { status: 200, body: LOGIN },
      'GET /api/auth/me': { status: 200, body: AGENT },
      'POST /api/telephony/agents/me/state': { status: 200, body: { logged_in: true, state: 'ready' } },
    })
    const api = new ApiClient({ fetch: server.fetch, cookies: () => '' })
    await api.login('xn_agent', 'a password')
    await api.me()
    await api.agentAct('ready')
    const [login, me, act] = server.calls
    expect(login?.body).toEqual({ username: 'xn_agent', password: 'a password' })
    expect(me?.headers['X-CSRF-Token']).toBeUndefined()
    expect(act?.headers['X-CSRF-Token']).toBe('csrf-from-login')
    expect(act?.body).toEqual({ action: 'ready' })
  })

  it('after a page reload takes the CSRF token from the smeline_csrf cookie', async () => {
    const server = fakeServer({ 'POST /api/auth/logout': { status: 204 } })
    const api = new ApiClient({ fetch: server.fetch, cookies: () => 'other=1; smeline_csrf=from%20cookie' })
    await api.logout()
    expect(server.calls[0]?.headers['X-CSRF-Token']).toBe('from cookie')
  })

  it('turns the error id of a JSON error into the Chinese message of the catalogue', async () => {
    const server = fakeServer({
      'POST /api/auth/login': {
        status: 401,
        body: { error: { id: 'login_failed', message: 'Wrong username or password' } },
      },
    })
    const api = new ApiClient({ fetch: server.fetch, cookies: () => '' })
    const error = await api.login('x', 'y').catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ApiError)
    expect(error).toMatchObject({ status: 401, code: 'login_failed', message: '用户名或密码错误' })
  })

  it('an unknown error id still gives a Chinese message, never the English one', async () => {
    const server = fakeServer({
      'GET /api/auth/me': { status: 418, body: { error: { id: 'teapot', message: 'I am a teapot' } } },
    })
    const error = await new ApiClient({ fetch: server.fetch, cookies: () => '' }).me().catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'teapot', message: '操作失败，请稍后重试' })
  })

  it('a network failure and a non-JSON 502 are told apart', async () => {
    const down = new ApiClient({ fetch: () => Promise.reject(new TypeError('Failed to fetch')), cookies: () => '' })
    await expect(down.health()).rejects.toMatchObject({ code: 'network', message: '无法连接服务器，请检查网络' })
    const proxy = new ApiClient({
      fetch: async () => new Response('<html>Bad Gateway</html>', { status: 502 }),
      cookies: () => '',
    })
    await expect(proxy.health()).rejects.toMatchObject({ status: 502, code: 'server' })
  })

  it('a 401 outside login tells the app the session is gone', async () => {
    const onUnauthenticated = vi.fn()
    const server = fakeServer({
      'GET /api/auth/me': { status: 401, body: { error: { id: 'session_invalid', message: 'x' } } },
      'POST /api/auth/login': { status: 401, body: { error: { id: 'login_failed', message: 'x' } } },
    })
    const api = new ApiClient({ fetch: server.fetch, cookies: () => '', onUnauthenticated })
    await api.login('a', 'b').catch(() => undefined)
    expect(onUnauthenticated).not.toHaveBeenCalled()
    await api.me().catch(() => undefined)
    expect(onUnauthenticated).toHaveBeenCalledOnce()
  })

  it('asks for my open work orders only', async () => {
    const server = fakeServer({ 'GET /api/tickets': { status: 200, body: { items: [], next_cursor: null } } })
    await new ApiClient({ fetch: server.fetch, cookies: () => '' }).myTickets(7)
    const query = new URLSearchParams(server.calls[0]?.path.split('?')[1])
    expect(query.get('assignee_id')).toBe('7')
    expect(query.getAll('status')).toEqual(['new', 'assigned', 'in_progress', 'waiting_customer', 'reopened'])
  })

  it('reads cookies without tripping on odd ones', () => {
    expect(readCookie('a=1; smeline_csrf=x%2By', 'smeline_csrf')).toBe('x+y')
    expect(readCookie('smeline_csrf=%E0%A4%A', 'smeline_csrf')).toBeNull()
    expect(readCookie('', 'smeline_csrf')).toBeNull()
  })
})
