// Which roles see which part of the console (docs/accounts.md).

/** Roles with telephony.supervise: the wallboard is theirs (a county admin sees their county). */
export const WALLBOARD_ROLES: ReadonlySet<string> = new Set(['supervisor', 'admin', 'county_admin'])

/** Roles with telephony.agent: they take calls and chats. */
export const DESK_ROLES: ReadonlySet<string> = new Set(['agent', 'county_admin', 'supervisor', 'admin'])

/** Who has the chat panel: the desk, and experts for the chats they are invited into. */
export const CHAT_ROLES: ReadonlySet<string> = new Set([...DESK_ROLES, 'expert'])
