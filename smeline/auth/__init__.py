"""Staff accounts, roles, sessions and permissions."""
