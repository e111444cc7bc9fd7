"""Structured logs: one JSON object per line, rotated daily, kept for months.

Phone numbers are masked in every message, whatever the caller passed in.

Nothing is written on the caller's thread: a log call only queues the record
(its message merged with its arguments), and one listener thread formats the
JSON, masks it and writes the file — so a call routed on the event loop never
waits for the disk (the FastAGI server logs one line per decision).
"""

from __future__ import annotations

import atexit
import copy
import json
import logging
import logging.handlers
import queue
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
        exc = record.exc_text
        if exc is None and record.exc_info:
            exc = self.formatException(record.exc_info)
        if exc:
            entry["exc"] = mask_phones_in_text(exc)
        return json.dumps(entry, ensure_ascii=False)


class _Enqueue(logging.handlers.QueueHandler):
    """Queues a copy with its message and traceback already text (the
    arguments may change after the call); the JSON is left to the listener."""

    _plain = logging.Formatter()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = self._plain.formatException(record.exc_info)
            record.exc_info = None
        return record


_listener: logging.handlers.QueueListener | None = None


def _stop_listener() -> None:
    global _listener
    listener, _listener = _listener, None
    if listener is not None:
        listener.stop()  # writes what is queued, then joins the thread
        for handler in listener.handlers:
            handler.close()


def flush_logs() -> None:
    """Wait until every record logged so far is written (tests, shutdown)."""
    if _listener is not None:
        _listener.stop()
        _listener.start()


def log_handlers() -> tuple[logging.Handler, ...]:
    """The handlers that write (behind the queue)."""
    return tuple(_listener.handlers) if _listener is not None else ()


def setup_logging(
    *, log_dir: Path | None, level: str, retention_days: int, to_stderr: bool
) -> None:
    global _listener
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_smeline", False):
            root.removeHandler(handler)
    _stop_listener()
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
    if handlers:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        enqueue = _Enqueue(records)
        enqueue._smeline = True  # type: ignore[attr-defined]
        root.addHandler(enqueue)
        _listener = logging.handlers.QueueListener(records, *handlers)
        _listener.start()
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


atexit.register(_stop_listener)
