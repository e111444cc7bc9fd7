"""Senders: deliver one outbox row over one channel (log, SMTP, SMS gateway).

A sender either returns (delivered) or raises. ``SendError`` means "try again
later"; ``PermanentSendError`` means retrying cannot help (the address is
invalid, the gateway rejected the request as malformed), so the dispatcher marks
the row failed at once.

Every sender passes the notification id to the far side as an idempotency key
(SMTP ``Message-ID``, SMS ``out_id``): the dispatcher can, rarely, send a row
twice (a crash between a successful send and recording it), and the key lets the
mail client or the gateway recognise the second copy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Protocol

import aiohttp
import aiosmtplib

from smeline.config import Settings
from smeline.masking import mask_phones_in_text
from smeline.notifications.models import Notification

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0


class SendError(Exception):
    """Delivery failed for now; the dispatcher retries with back-off."""


class PermanentSendError(SendError):
    """Delivery can never succeed (e.g. the gateway says the number is invalid)."""


class Sender(Protocol):
    channel: str

    async def send(self, n: Notification) -> None:
        """Delivers ``n`` or raises ``SendError`` / ``PermanentSendError``."""
        ...


def message_id(n: Notification) -> str:
    """Stable per notification, so a re-sent copy is recognisable as the same mail."""
    return f"<smeline-notification-{n.id}@smeline>"


def out_id(n: Notification) -> str:
    """The SMS gateway's idempotency key for ``n``."""
    return f"smeline-{n.id}"


class LogSender:
    """Writes one log line per notification; the default when nothing else is set up."""

    channel = "log"

    async def send(self, n: Notification) -> None:
        # The log address is a username, which may well be a mobile number.
        logger.info(
            "notification %s template=%s recipient_user_id=%s address=%s",
            n.id,
            n.template_id,
            n.recipient_user_id,
            mask_phones_in_text(n.address) if n.address else None,
        )


class SmtpSender:
    """Sends the rendered subject and body as a UTF-8 mail through one SMTP relay."""

    channel = "smtp"

    def __init__(
        self,
        *,
        host: str,
        port: int = 25,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        sender_address: str,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.starttls = starttls
        self.sender_address = sender_address
        self.timeout = timeout

    def build_message(self, n: Notification) -> EmailMessage:
        if not n.address:
            raise PermanentSendError(f"notification {n.id} has no email address")
        msg = EmailMessage()
        msg["From"] = self.sender_address
        msg["To"] = n.address
        msg["Subject"] = n.subject
        msg["Message-ID"] = message_id(n)
        # The time of the cause, not of this attempt: a re-send is byte-for-byte the same mail.
        msg["Date"] = format_datetime(n.created_at)
        msg.set_content(n.body, charset="utf-8")
        return msg

    async def send(self, n: Notification) -> None:
        msg = self.build_message(n)
        try:
            await aiosmtplib.send(
                msg,
                hostname=self.host,
                port=self.port,
                username=self.username,
                password=self.password,
                # Explicit either way: aiosmtplib's default (None) upgrades opportunistically,
                # which breaks on intranet relays with self-signed certificates.
                start_tls=self.starttls,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            # 5xx on RCPT: the mailbox does not exist or is refused; 4xx is greylisting etc.
            if codes and all(code >= 500 for code in codes):
                raise PermanentSendError(f"SMTP recipient refused: {codes}") from exc
            raise SendError(f"SMTP recipient deferred: {codes}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            # Sender refused, authentication or DATA errors are relay or configuration
            # problems that an operator can fix, so they are retried.
            raise SendError(f"SMTP {exc.code}: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise SendError(f"SMTP {type(exc).__name__}: {exc}") from exc


class SmsGatewaySender:
    """Sends an SMS through an HTTP gateway that speaks smeline's generic adapter contract.

    Chinese SMS gateways only deliver a pre-approved signature (签名) plus a
    pre-approved template (模板) filled with parameters, never free text, so the
    rendered body is not sent; the gateway renders its own copy of the template.

    The contract (put a small shim in front of a gateway that differs)::

        POST <url>
        Authorization: Bearer <api_key>
        Content-Type: application/json

        {"phone": "13800001234",
         "sign": "<signature>",
         "template_code": "<template_codes[template_id], else template_id>",
         "params": {"number": "MZ...", ...},
         "out_id": "smeline-<notification id>"}

    ``out_id`` is an idempotency key: smeline may, rarely, post the same
    notification twice, and the gateway should drop a repeated ``out_id``.

    Replies:

    - 2xx with JSON ``{"code": "OK"}``: sent.
    - 2xx with any other body: not sent, retried (a shim should map permanent
      rejections such as an invalid number to a 4xx instead).
    - 4xx other than 408 and 429: permanently rejected (invalid number,
      unknown template, bad signature); not retried.
    - 408, 429, 5xx, timeouts and connection errors: retried with back-off.

    Without an ``api_key`` (a shim on localhost) no Authorization header is sent.
    Without a ``session`` each send opens and closes its own connection pool;
    pass the application's shared session to reuse connections.
    """

    channel = "sms"

    def __init__(
        self,
        *,
        url: str,
        api_key: str | None,
        signature: str,
        template_codes: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.signature = signature
        self.template_codes: Mapping[str, str] = dict(template_codes or {})
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    def payload(self, n: Notification) -> dict[str, Any]:
        if not n.address:
            raise PermanentSendError(f"notification {n.id} has no phone number")
        return {
            "phone": n.address,
            "sign": self.signature,
            "template_code": self.template_codes.get(n.template_id, n.template_id),
            "params": n.params,
            "out_id": out_id(n),
        }

    async def send(self, n: Notification) -> None:
        payload = self.payload(n)
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            if self.session is not None:
                await self._post(self.session, payload, headers)
            else:
                async with aiohttp.ClientSession() as session:
                    await self._post(session, payload, headers)
        except SendError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise SendError(f"SMS gateway {type(exc).__name__}: {exc}") from exc

    async def _post(
        self, session: aiohttp.ClientSession, payload: dict[str, Any], headers: dict[str, str]
    ) -> None:
        async with session.post(
            self.url, json=payload, headers=headers, timeout=self.timeout
        ) as resp:
            text = await resp.text(errors="replace")
            status = resp.status
        # Gateways like to echo the number back; the dispatcher masks phone numbers in
        # every error before it logs or stores it (masking twice would garble the text).
        detail = text[:200]
        if 200 <= status < 300:
            code: Any = None
            try:
                body = json.loads(text)
                code = body.get("code") if isinstance(body, dict) else None
            except ValueError:
                pass
            if code == "OK":
                return
            raise SendError(f"SMS gateway HTTP {status} without code OK: {detail}")
        if 400 <= status < 500 and status not in (408, 429):
            raise PermanentSendError(f"SMS gateway rejected HTTP {status}: {detail}")
        raise SendError(f"SMS gateway HTTP {status}: {detail}")


def build_senders(
    settings: Settings, session: aiohttp.ClientSession | None = None
) -> dict[str, Sender]:
    """One sender per enabled channel in ``settings.notification_senders``.

    ``log`` needs no configuration; ``smtp`` needs ``smtp_host`` and ``sms`` needs
    ``sms_gateway_url``. A channel that is enabled but not configured is an error
    at start-up rather than a pile of undeliverable rows later.
    """
    senders: dict[str, Sender] = {}
    for channel in settings.notification_senders:
        if channel == "log":
            senders["log"] = LogSender()
        elif channel == "smtp":
            if not settings.smtp_host:
                raise ValueError(
                    "notification sender 'smtp' is enabled (SMELINE_NOTIFICATION_SENDERS) "
                    "but SMELINE_SMTP_HOST is not set"
                )
            senders["smtp"] = SmtpSender(
                host=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                starttls=settings.smtp_starttls,
                sender_address=settings.smtp_from,
            )
        elif channel == "sms":
            if not settings.sms_gateway_url:
                raise ValueError(
                    "notification sender 'sms' is enabled (SMELINE_NOTIFICATION_SENDERS) "
                    "but SMELINE_SMS_GATEWAY_URL is not set"
                )
            senders["sms"] = SmsGatewaySender(
                url=settings.sms_gateway_url,
                api_key=settings.sms_gateway_key,
                signature=settings.sms_signature,
                template_codes=settings.sms_template_codes,
                session=session,
            )
    return senders
