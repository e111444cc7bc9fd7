"""Notifications: an outbox table and pluggable senders (log, SMTP, SMS gateway)."""
