import { flushPromises, mount } from '@vue/test-utils'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createMemoryHistory, createRouter } from 'vue-router'

import LoginView from '../src/views/LoginView.vue'
import { AGENT, provideSession, sessionOn, type Routes } from './helpers'

function mountLogin(routes: Routes) {
  const { session, calls } = sessionOn(routes)
  const router = createRouter({
    history: createMemoryHistory(),
    routes: [
      { path: '/login', name: 'login', component: LoginView },
      { path: '/', name: 'console', component: { template: '<div>console</div>' } },
      { path: '/password', name: 'password', component: { template: '<div>password</div>' } },
    ],
  })
  const wrapper = mount(LoginView, { global: { ...provideSession(session), plugins: [router] } })
  return { wrapper, session, calls, router }
}

async function fill(wrapper: ReturnType<typeof mount>, username: string, password: string): Promise<void> {
  await wrapper.find('input[data-test="login-username"]').setValue(username)
  await wrapper.find('input[data-test="login-password"]').setValue(password)
  await wrapper.find('form').trigger('submit')
  await flushPromises()
}

const LOGIN_OK = {
  status: 200,
  body: { user: AGENT, token: 't', csrf_token: 'c', expires_at: '2026-12-01T12:00:00Z' },
}

afterEach(() => {
  vi.unstubAllGlobals()
})

describe('LoginView', () => {
  it('an empty form says what is missing and sends nothing', async () => {
    const { wrapper, calls } = mountLogin({})
    await fill(wrapper, '   ', '')
    expect(wrapper.find('[data-test="username-error"]').text()).toBe('请输入用户名')
    expect(wrapper.find('[data-test="password-error"]').text()).toBe('请输入密码')
    expect(calls).toEqual([])
  })

  it('an overlong username is refused before it reaches the server', async () => {
    const { wrapper, calls } = mountLogin({})
    await fill(wrapper, 'a'.repeat(65), 'secret')
    expect(wrapper.find('[data-test="username-error"]').text()).toBe('用户名不能超过 64 个字符')
    expect(calls).toEqual([])
  })

  it('a wrong password shows the Chinese message of login_failed', async () => {
    const { wrapper, session } = mountLogin({
      'POST /api/auth/login': { status: 401, body: { error: { id: 'login_failed', message: 'Wrong' } } },
    })
    await fill(wrapper, 'xn_agent', 'wrong password')
    expect(wrapper.find('[data-test="login-error"]').text()).toContain('用户名或密码错误')
    expect(session.state.user).toBeNull()
  })

  it('throttling is explained', async () => {
    const { wrapper } = mountLogin({
      'POST /api/auth/login': { status: 429, body: { error: { id: 'login_throttled', message: 'Too many' } } },
    })
    await fill(wrapper, 'xn_agent', 'x')
    expect(wrapper.find('[data-test="login-error"]').text()).toContain('登录失败次数过多')
  })

  it('success enters the console and asks for the microphone; a refusal is remembered, not blocking', async () => {
    const getUserMedia = vi.fn().mockRejectedValue(Object.assign(new Error('no'), { name: 'NotAllowedError' }))
    vi.stubGlobal('isSecureContext', true)
    vi.stubGlobal('navigator', { ...navigator, mediaDevices: { getUserMedia } })
    const { wrapper, session, router, calls } = mountLogin({ 'POST /api/auth/login': LOGIN_OK })
    await router.push('/login')
    await fill(wrapper, ' xn_agent ', 'correct horse')
    expect(calls[0]?.body).toEqual({ username: 'xn_agent', password: 'correct horse' })
    expect(session.state.user?.username).toBe('xn_agent')
    expect(router.currentRoute.value.name).toBe('console')
    expect(getUserMedia).toHaveBeenCalledWith({ audio: true })
    expect(session.state.microphone?.result).toBe('denied')
  })

  it('a one-time password leads to the password page', async () => {
    vi.stubGlobal('isSecureContext', false)
    const { wrapper, router } = mountLogin({
      'POST /api/auth/login': { ...LOGIN_OK, body: { ...LOGIN_OK.body, user: { ...AGENT, must_change_password: true } } },
    })
    await fill(wrapper, 'xn_agent', 'one-time')
    expect(router.currentRoute.value.name).toBe('password')
  })
})
