// Which roles see which part of the console (docs/accounts.md).

/** Roles with telephony.supervise: the wallboard is theirs (a county admin sees their county). */
export const WALLBOARD_ROLES: ReadonlySet<string> = new Set(['supervisor', 'admin', 'county_admin'])

/** Roles with telephony.agent: they take chats. */
export const CHAT_ROLES: ReadonlySet<string> = new Set(['agent', 'county_admin', 'supervisor', 'admin'])
