import { onBeforeUnmount, onMounted, ref, type Ref } from 'vue'

/** A clock that ticks every second while the calling component is mounted. */
export function useNow(intervalMs = 1000): Ref<number> {
  const now = ref(Date.now())
  let timer: ReturnType<typeof setInterval> | undefined
  onMounted(() => {
    now.value = Date.now()
    timer = setInterval(() => {
      now.value = Date.now()
    }, intervalMs)
  })
  onBeforeUnmount(() => {
    if (timer !== undefined) clearInterval(timer)
  })
  return now
}
