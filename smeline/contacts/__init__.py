"""Contacts: the wrap-up every call and chat needs, and work orders opened from a contact."""
