"""Structured logs: one JSON object per line, rotated daily, kept for months.

Phone numbers are masked in every message, whatever the caller passed in.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
from datetime import UTC, datetime
from pathlib import Path

from smeline.masking import mask_phones_in_text

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": mask_phones_in_text(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = mask_phones_in_text(str(value))
        if record.exc_info:
            entry["exc"] = mask_phones_in_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(
    *, log_dir: Path | None, level: str, retention_days: int, to_stderr: bool
) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_smeline", False):
            root.removeHandler(handler)
    formatter = JsonFormatter()
    handlers: list[logging.Handler] = []
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.handlers.TimedRotatingFileHandler(
            log_dir / "smeline.log",
            when="midnight",
            backupCount=retention_days,
            encoding="utf-8",
            utc=False,
        )
        handlers.append(file_handler)
    if to_stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._smeline = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
