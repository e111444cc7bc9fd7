// Files in a chat, for the console and the widget alike (docs/webchat.md,
// "Files"): what the server takes, a quick refusal before uploading, the
// multipart upload itself and how a size reads. The server decides from the
// bytes; the checks here only save a visitor a useless upload.
import { ApiError } from '../api'
import type { ChatMessage } from './types'

/** chat_attachment_max_bytes of a default deployment (10 MiB). */
export const DEFAULT_MAX_BYTES = 10 * 1024 * 1024

/** What the file picker offers (the server sniffs the bytes anyway). */
export const ACCEPT = '.png,.jpg,.jpeg,.gif,.webp,.pdf,.docx,.xlsx,.txt,.csv,.log'

const EXTENSIONS = new Set(ACCEPT.split(','))

export type FileProblem = 'attachment_too_large' | 'attachment_type' | 'attachment_empty'

/** A refusal the browser can tell before uploading, as the server's error id. */
export function precheck(file: { name: string; size: number }, maxBytes = DEFAULT_MAX_BYTES): FileProblem | null {
  if (file.size === 0) return 'attachment_empty'
  if (file.size > maxBytes) return 'attachment_too_large'
  const dot = file.name.lastIndexOf('.')
  const ext = dot >= 0 ? file.name.slice(dot).toLowerCase() : ''
  if (!EXTENSIONS.has(ext)) return 'attachment_type'
  return null
}

export function isImage(contentType: string): boolean {
  return /^image\/(png|jpeg|gif|webp)$/.test(contentType)
}

/** 1536 → "1.5 KB"; units as Chinese offices write them. */
export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`
}

type Fetch = (input: string, init?: RequestInit) => Promise<Response>

/** The REST MessageOut of an upload in the socket's shape (id "<chat>:<seq>"). */
interface RestMessage extends Omit<ChatMessage, 'id'> {
  sender_user_id?: number | null
}

export interface UploadOptions {
  fetch?: Fetch
  headers?: Record<string, string>
  credentials?: RequestCredentials
  mode?: RequestMode
}

/**
 * POST the file as multipart (fields `client_id`, `file`); the stored line,
 * or an ApiError with the server's id (`attachment_too_large`, …).
 */
export async function uploadFile(
  url: string,
  clientId: string,
  file: Blob,
  filename: string,
  options: UploadOptions = {},
): Promise<ChatMessage> {
  const form = new FormData()
  form.append('client_id', clientId)
  form.append('file', file, filename)
  const fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init))
  let response: Response
  try {
    response = await fetchImpl(url, {
      method: 'POST',
      // No Content-Type: the browser writes the multipart boundary.
      headers: { Accept: 'application/json', ...(options.headers ?? {}) },
      body: form,
      credentials: options.credentials ?? 'same-origin',
      mode: options.mode,
    })
  } catch {
    throw new ApiError(0, 'network')
  }
  let payload: unknown = null
  try {
    payload = await response.json()
  } catch {
    payload = null
  }
  if (response.ok && payload !== null) {
    const m = payload as RestMessage
    return {
      id: `${m.chat_id}:${m.seq}`,
      seq: m.seq,
      chat_id: m.chat_id,
      sender_kind: m.sender_kind,
      sender_name: m.sender_name,
      body: m.body,
      client_id: m.client_id,
      created_at: m.created_at,
      attachment: m.attachment ?? null,
    }
  }
  const error = (payload as { error?: { id?: unknown; details?: unknown } } | null)?.error
  const id =
    typeof error?.id === 'string'
      ? error.id
      : response.status === 413
        ? 'attachment_too_large'
        : response.status >= 500
          ? 'server'
          : 'unknown'
  throw new ApiError(response.status, id, error?.details)
}
