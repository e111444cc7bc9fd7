"""Configuration: defaults, environment, TOML file, and clear errors."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from smeline.config import load_settings


def test_embedded_default_needs_no_services(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("SMELINE_"):
            monkeypatch.delenv(key)
    s = load_settings()
    assert s.is_sqlite and s.redis_url is None and not s.telephony_configured
    assert s.business_hours == [(time(8, 30), time(12, 0)), (time(14, 30), time(17, 30))]
    assert s.log_retention_days >= 183


def test_environment_beats_the_toml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "smeline.toml"
    toml.write_text('port = 9000\nredis_url = "redis://127.0.0.1:6379/3"\n', encoding="utf-8")
    monkeypatch.setenv("SMELINE_CONFIG", str(toml))
    monkeypatch.setenv("SMELINE_PORT", "9100")
    monkeypatch.setenv("SMELINE_BUSINESS_HOURS", '[["09:00","12:00"],["13:30","18:00"]]')
    s = load_settings()
    assert s.port == 9100
    assert s.redis_url == "redis://127.0.0.1:6379/3"
    assert s.business_hours[1] == (time(13, 30), time(18, 0))


def test_bad_values_are_refused_with_the_field_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMELINE_BUSINESS_HOURS", '[["14:00","12:00"]]')
    with pytest.raises(ValidationError, match="business_hours"):
        load_settings()
    monkeypatch.delenv("SMELINE_BUSINESS_HOURS")
    monkeypatch.setenv("SMELINE_SLA_WARNING_RATIO", "1.5")
    with pytest.raises(ValidationError, match="sla_warning_ratio"):
        load_settings()
    monkeypatch.delenv("SMELINE_SLA_WARNING_RATIO")
    # the softphone's WebSocket also goes into the console's CSP: a plain ws(s) URL only
    for bad in ("https://pbx.example.cn/ws", "wss://pbx.example.cn/ws?x=1", "wss://a b/ws"):
        monkeypatch.setenv("SMELINE_WEBRTC_WS_URL", bad)
        with pytest.raises(ValidationError, match="webrtc_ws_url"):
            load_settings()
    monkeypatch.setenv("SMELINE_WEBRTC_WS_URL", "wss://pbx.example.cn:8089/ws")
    assert load_settings().webrtc_ws_url == "wss://pbx.example.cn:8089/ws"
