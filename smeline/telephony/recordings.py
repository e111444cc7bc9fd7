"""Call recordings: served only from the recordings directory, every play
or download audited, purged after the retention period.

Asterisk writes the files (MixMonitor, Record) into a directory smeline can
read (a shared volume in docker/compose.yml). File I/O runs in a worker
thread: never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

logger = logging.getLogger(__name__)

SUFFIXES = frozenset({".wav", ".gsm", ".ulaw", ".alaw"})


class RecordingArchive:
    def __init__(
        self,
        *,
        root: Path,
        retention_days: int,
        now: Callable[[], datetime],
        purge_every_seconds: float = 3600.0,
    ) -> None:
        self.root = root
        self.retention_days = retention_days
        self._now = now
        self.purge_every_seconds = purge_every_seconds
        self.purged_total = 0

    def _resolve(self, name: str) -> Path | None:
        """The file for a stored path, only if it lies inside ``root``."""
        if not name or "\x00" in name or len(name) > 1024:
            return None
        try:
            root = self.root.resolve()
            path = Path(name)
            path = (path if path.is_absolute() else root / path).resolve()
            path.relative_to(root)
        except (ValueError, OSError):
            return None
        if path.suffix.lower() not in SUFFIXES or not path.is_file():
            return None
        return path

    async def locate(self, name: str) -> Path | None:
        return await asyncio.to_thread(self._resolve, name)

    async def present(self, names: Sequence[str | None]) -> list[bool]:
        """Whether each stored path is still a servable file (one worker
        thread for a whole page: a purged recording is no longer offered)."""
        return await asyncio.to_thread(lambda: [self._resolve(n or "") is not None for n in names])

    def _purge(self) -> int:
        cutoff = self._now().timestamp() - self.retention_days * 86400
        removed = 0
        if not self.root.is_dir():
            return 0
        for directory, _dirs, files in os.walk(self.root):
            for file_name in files:
                path = Path(directory) / file_name
                if path.suffix.lower() not in SUFFIXES:
                    continue
                try:
                    if path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed

    async def purge(self) -> int:
        """Delete recordings older than the retention period; returns how many."""
        started = time.monotonic()
        removed = await asyncio.to_thread(self._purge)
        self.purged_total += removed
        if removed:
            logger.info(
                "purged %d recordings older than %d days in %.1f s",
                removed,
                self.retention_days,
                time.monotonic() - started,
            )
        return removed

    async def purge_forever(self) -> None:
        while True:
            try:
                await self.purge()
            except Exception:
                logger.exception("recording purge failed")
            await asyncio.sleep(self.purge_every_seconds)  # the purge's period, not a wait
