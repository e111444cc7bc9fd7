// Browsers give the microphone only to secure pages (HTTPS, or localhost):
// the console asks once at login so that a refusal is seen before the first
// call rings, not when the agent clicks answer. Chat and work orders never
// depend on the answer.
import { t } from './i18n'

export type MicrophoneResult = 'granted' | 'denied' | 'insecure' | 'no_device' | 'unavailable'

export interface MicrophoneCheck {
  result: MicrophoneResult
  /** The DOMException's name when getUserMedia threw. */
  errorName?: string
}

interface MediaEnvironment {
  isSecureContext: boolean
  mediaDevices?: Pick<MediaDevices, 'getUserMedia'> | undefined
}

export async function requestMicrophone(env: MediaEnvironment = browserEnvironment()): Promise<MicrophoneCheck> {
  if (!env.isSecureContext) return { result: 'insecure' }
  if (!env.mediaDevices?.getUserMedia) return { result: 'unavailable', errorName: 'NoMediaDevices' }
  try {
    const stream = await env.mediaDevices.getUserMedia({ audio: true })
    // Only the permission was wanted: free the device for the softphone.
    for (const track of stream.getTracks()) track.stop()
    return { result: 'granted' }
  } catch (error) {
    const name = error instanceof Error || (typeof error === 'object' && error !== null && 'name' in error)
      ? String((error as { name: unknown }).name)
      : 'Error'
    if (name === 'NotAllowedError' || name === 'SecurityError' || name === 'PermissionDeniedError') {
      return { result: 'denied', errorName: name }
    }
    if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') {
      return { result: 'no_device', errorName: name }
    }
    return { result: 'unavailable', errorName: name }
  }
}

export function microphoneMessage(check: MicrophoneCheck): string {
  switch (check.result) {
    case 'granted':
      return t('mic.granted')
    case 'denied':
      return t('mic.denied')
    case 'insecure':
      return t('mic.insecure')
    case 'no_device':
      return t('mic.noDevice')
    case 'unavailable':
      return t('mic.unavailable', { detail: check.errorName ?? '' })
  }
}

function browserEnvironment(): MediaEnvironment {
  return { isSecureContext: window.isSecureContext, mediaDevices: navigator.mediaDevices }
}
