import { createApp, watch } from 'vue'

import App from './App.vue'
import { t } from './i18n'
import { createConsoleRouter } from './router'
import { createSession, SESSION_KEY } from './session'
import './styles/app.css'

document.title = t('app.title')

const session = createSession()
const router = createConsoleRouter(session)

// A 401 from any call (session expired, logged out elsewhere) clears the
// user: go back to the login page instead of showing empty panels.
watch(
  () => session.state.user,
  (user) => {
    const name = router.currentRoute.value.name
    if (!user && name !== 'login') void router.push({ name: 'login' })
  },
)

createApp(App).provide(SESSION_KEY, session).use(router).mount('#app')
