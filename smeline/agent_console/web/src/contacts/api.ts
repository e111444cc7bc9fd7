// Wrap-ups and work orders opened from a contact (smeline/contacts, docs/wrapup.md).
// Every call or chat an agent handled needs a wrap-up before the next contact:
// the server refuses the next one with 409 `wrapup_required` until it is in.
import type { ApiClient } from '../api'

export type ContactKind = 'call' | 'chat'
export type ServiceMode = 'online' | 'offline' | 'joint'
export type WrapupResult = 'resolved' | 'ticket'

/** A contact of mine still waiting for its wrap-up. */
export interface PendingContact {
  contact_kind: ContactKind
  chat_id?: number | null
  linkedid?: string | null
  /** An escalated call: joint, and nothing else can be chosen. */
  joint?: boolean
  required?: boolean
  enterprise_name?: string | null
  category_code?: string | null
  county_code?: string | null
  caller?: string | null
  visitor_name?: string | null
  ticket_id?: number | null
  ended_at?: string | null
}

export interface WrapupIn {
  contact_kind: ContactKind
  chat_id?: number
  linkedid?: string
  enterprise_name: string
  category_code: string
  service_mode: ServiceMode
  result: WrapupResult
  ticket_id?: number
}

export interface ContactTicketIn {
  contact_kind: ContactKind
  chat_id?: number
  linkedid?: string
  /** Overrides of what the server takes from the contact. */
  subject?: string
  category_code?: string
  enterprise_name?: string
}

export interface OpenedTicket {
  id: number
  number: string
  short_ref: string
  subject: string
}

/** The key of a contact: `chat:12`, `call:1700000000.42`. */
export function contactKey(c: { contact_kind: ContactKind; chat_id?: number | null; linkedid?: string | null }): string {
  return c.contact_kind === 'chat' ? `chat:${c.chat_id ?? ''}` : `call:${c.linkedid ?? ''}`
}

export function contactRef(c: PendingContact): Pick<WrapupIn, 'contact_kind' | 'chat_id' | 'linkedid'> {
  return c.contact_kind === 'chat'
    ? { contact_kind: 'chat', chat_id: c.chat_id ?? undefined }
    : { contact_kind: 'call', linkedid: c.linkedid ?? undefined }
}

export class ContactsApi {
  constructor(private readonly api: ApiClient) {}

  async pending(): Promise<PendingContact[]> {
    const page = await this.api.request<{ items: PendingContact[] } | PendingContact[]>('GET', '/api/contacts/wrapups/pending')
    return Array.isArray(page) ? page : page.items
  }

  submit(body: WrapupIn): Promise<unknown> {
    return this.api.request('POST', '/api/contacts/wrapups', body)
  }

  openTicket(body: ContactTicketIn): Promise<OpenedTicket> {
    return this.api.request('POST', '/api/contacts/ticket', body)
  }
}
