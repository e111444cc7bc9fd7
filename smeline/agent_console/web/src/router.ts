// Client-side routes under /console/ (HTML5 history: the server answers
// index.html for any sub-path, see smeline/agent_console/static.py).
import { createRouter, createWebHistory, type Router, type RouterHistory } from 'vue-router'

import type { SessionStore } from './session'
import ChangePasswordView from './views/ChangePasswordView.vue'
import ConsoleView from './views/ConsoleView.vue'
import LoginView from './views/LoginView.vue'
import { WALLBOARD_ROLES } from './roles'

export const BASE = '/console/'

export function createConsoleRouter(session: SessionStore, history: RouterHistory = createWebHistory(BASE)): Router {
  const router = createRouter({
    history,
    routes: [
      { path: '/', name: 'console', component: ConsoleView },
      { path: '/login', name: 'login', component: LoginView },
      { path: '/password', name: 'password', component: ChangePasswordView },
      // Its own chunk: ECharts and the wallboard load only for supervisors.
      { path: '/wallboard', name: 'wallboard', component: () => import('./views/WallboardView.vue') },
      { path: '/:rest(.*)*', redirect: '/' },
    ],
  })
  router.beforeEach(async (to) => {
    let user = session.state.user
    try {
      user = await session.restore()
    } catch {
      // The server could not be asked: the login page says so when used.
    }
    if (!user) return to.name === 'login' ? true : { name: 'login' }
    if (user.must_change_password) return to.name === 'password' ? true : { name: 'password' }
    if (to.name === 'login' || to.name === 'password') return { name: 'console' }
    if (to.name === 'wallboard' && !WALLBOARD_ROLES.has(user.role)) return { name: 'console' }
    return true
  })
  return router
}
