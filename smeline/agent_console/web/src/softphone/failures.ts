// What went wrong with the softphone, in words the agent can act on.
//
// The failure modes come from a real JsSIP 3.13.8 agent in Chromium against a
// real Asterisk (../shared/asterisk/recordings-webrtc, README "third batch"):
// - an untrusted certificate on the WSS listener is visible to JsSIP only as a
//   WebSocket close with code 1006 and no reason, followed by endless retries
//   (variant-untrusted-cert); the real reason is only in the browser console;
// - an agent endpoint without `webrtc=yes` (or without rtcp_mux) registers and
//   rings fine and only fails when the agent answers: Chrome rejects Asterisk's
//   offer, JsSIP answers 488 and ends the session with cause "WebRTC Error",
//   and the queue rings the agent again every few seconds while the caller
//   waits (variant-plain-endpoint, variant-no-rtcp-mux);
// - closing the tab drops the contact at once (variant-tab-closed), so a lost
//   registration means the agent cannot be reached at all.
// Each of these is turned into one problem with a message and a hint from the
// catalogue instead of a silent retry loop.
import { t } from '../i18n'

/** JsSIP's cause strings (JsSIP.C.causes) that matter here. */
export const CAUSES = {
  CONNECTION_ERROR: 'Connection Error',
  REQUEST_TIMEOUT: 'Request Timeout',
  AUTHENTICATION_ERROR: 'Authentication Error',
  INCOMPATIBLE_SDP: 'Incompatible SDP',
  BAD_MEDIA_DESCRIPTION: 'Bad Media Description',
  WEBRTC_ERROR: 'WebRTC Error',
  USER_DENIED_MEDIA_ACCESS: 'User Denied Media Access',
  BYE: 'Terminated',
  CANCELED: 'Canceled',
  NO_ANSWER: 'No Answer',
  BUSY: 'Busy',
  REJECTED: 'Rejected',
  UNAVAILABLE: 'Unavailable',
  NOT_FOUND: 'Not Found',
} as const

export type PhoneFailure =
  /** The SIP WebSocket closed. `everConnected`: it had been open at least once. */
  | { kind: 'disconnected'; code?: number; everConnected: boolean }
  /** REGISTER was refused or could not be sent. */
  | { kind: 'registrationFailed'; cause?: string }
  /** The registration ended although we did not ask for it. */
  | { kind: 'unregistered'; wasRegistered: boolean; cause?: string }
  /** getUserMedia threw; `name` is the DOMException's name. */
  | { kind: 'microphone'; name: string }
  /** A call ended in failure; `answering`: the agent had clicked answer. */
  | { kind: 'sessionFailed'; cause: string; statusCode?: number; answering: boolean }

export type ProblemKind =
  | 'certificate'
  | 'microphone'
  | 'noMicrophone'
  | 'registrationLost'
  | 'authentication'
  | 'registrationRefused'
  | 'extensionMisconfigured'
  | 'connectionLost'
  | 'callFailed'

export interface PhoneProblem {
  kind: ProblemKind
  message: string
  hint: string
}

/** The page to open once to accept Asterisk's certificate: the WSS URL over https. */
export function certificatePage(wssUrl: string): string {
  return wssUrl.replace(/^wss:/i, 'https:').replace(/^ws:/i, 'http:')
}

function problem(kind: ProblemKind, message: string, hint: string): PhoneProblem {
  return { kind, message, hint }
}

/**
 * The problem to show for a failure, or null when nothing went wrong from the
 * agent's point of view (the caller hung up, another agent answered first).
 */
export function describeFailure(failure: PhoneFailure, wssUrl: string): PhoneProblem | null {
  switch (failure.kind) {
    case 'disconnected':
      // 1006 is "closed abnormally": before the first successful connection it
      // is what an untrusted certificate (or an unreachable server) looks like.
      if (failure.code === 1006 && !failure.everConnected) {
        return problem(
          'certificate',
          t('phone.error.certificate'),
          t('phone.error.certificateHint', { url: certificatePage(wssUrl) }),
        )
      }
      return problem('connectionLost', t('phone.error.connectionLost'), t('phone.error.connectionLostHint'))
    case 'registrationFailed':
      if (failure.cause === CAUSES.AUTHENTICATION_ERROR) {
        return problem('authentication', t('phone.error.authentication'), t('phone.error.authenticationHint'))
      }
      // 403 / 603: the server knows the account and refuses it (disabled
      // endpoint, an ACL): retrying will not help.
      if (failure.cause === CAUSES.REJECTED) {
        return problem(
          'registrationRefused',
          t('phone.error.registrationRefused'),
          t('phone.error.registrationRefusedHint'),
        )
      }
      return problem('registrationLost', t('phone.error.registrationLost'), t('phone.error.registrationLostHint'))
    case 'unregistered':
      if (!failure.wasRegistered) return null
      return problem('registrationLost', t('phone.error.registrationLost'), t('phone.error.registrationLostHint'))
    case 'microphone':
      return microphoneProblem(failure.name)
    case 'sessionFailed':
      return sessionProblem(failure)
  }
}

function microphoneProblem(name: string): PhoneProblem {
  if (name === 'NotFoundError' || name === 'DevicesNotFoundError' || name === 'OverconstrainedError') {
    return problem('noMicrophone', t('mic.noDevice'), t('phone.error.microphoneHint'))
  }
  // NotAllowedError (refused, or not a secure context), SecurityError,
  // PermissionDeniedError (old Chromium), NotReadableError (held by another program).
  return problem('microphone', t('phone.error.microphone'), t('phone.error.microphoneHint'))
}

function sessionProblem(failure: Extract<PhoneFailure, { kind: 'sessionFailed' }>): PhoneProblem | null {
  const misconfigured =
    failure.cause === CAUSES.INCOMPATIBLE_SDP ||
    failure.cause === CAUSES.BAD_MEDIA_DESCRIPTION ||
    failure.statusCode === 488 ||
    failure.statusCode === 606 ||
    // Chrome refused Asterisk's offer (no DTLS fingerprint, no rtcp-mux) when
    // the agent answered: JsSIP replies 488 with this cause.
    (failure.cause === CAUSES.WEBRTC_ERROR && failure.answering)
  if (misconfigured) {
    return problem(
      'extensionMisconfigured',
      t('phone.error.extensionMisconfigured'),
      t('phone.error.extensionMisconfiguredHint'),
    )
  }
  switch (failure.cause) {
    case CAUSES.USER_DENIED_MEDIA_ACCESS:
      return microphoneProblem('NotAllowedError')
    case CAUSES.CONNECTION_ERROR:
    case CAUSES.REQUEST_TIMEOUT:
      return problem('connectionLost', t('phone.error.connectionLost'), t('phone.error.connectionLostHint'))
    // Ordinary ends of a ringing call: the caller gave up, another agent of
    // the queue (ringall) answered first, nobody answered.
    case CAUSES.BYE:
    case CAUSES.CANCELED:
    case CAUSES.NO_ANSWER:
    case CAUSES.BUSY:
    case CAUSES.REJECTED:
    case CAUSES.UNAVAILABLE:
    case CAUSES.NOT_FOUND:
      return null
    default:
      return problem(
        'callFailed',
        t('phone.error.callFailed', { cause: failure.cause }),
        t('phone.error.callFailedHint'),
      )
  }
}
