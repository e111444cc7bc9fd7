"""Files in a chat: what a file is (from its bytes, never from the browser's
claim or the name's extension), a name safe to show and to download under.

Pure functions; ``ChatService`` stores, ``http.py`` serves.
"""

from __future__ import annotations

import io
import unicodedata
import zipfile
from dataclasses import dataclass
from urllib.parse import quote

from smeline.errors import ApiError


@dataclass(frozen=True, slots=True)
class FileKind:
    content_type: str
    extensions: tuple[str, ...]  # the first is added to a name that has none of them

    @property
    def image(self) -> bool:
        return self.content_type.startswith("image/")


PNG = FileKind("image/png", (".png",))
JPEG = FileKind("image/jpeg", (".jpg", ".jpeg"))
GIF = FileKind("image/gif", (".gif",))
WEBP = FileKind("image/webp", (".webp",))
PDF = FileKind("application/pdf", (".pdf",))
DOCX = FileKind(
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document", (".docx",)
)
XLSX = FileKind("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", (".xlsx",))
TEXT = FileKind("text/plain; charset=utf-8", (".txt", ".log", ".csv"))

#: The allowed kinds, for the error details and the docs.
ALLOWED = ("png", "jpeg", "gif", "webp", "pdf", "docx", "xlsx", "txt")

_MAX_NAME = 120
_ZIP_MAGIC = b"PK\x03\x04"


def _ooxml(data: bytes) -> FileKind | None:
    """A Word or Excel file is a zip whose ``[Content_Types].xml`` sits next to
    ``word/`` or ``xl/``. Only the central directory is read: nothing is
    inflated, so a zip bomb costs nothing here."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    if any(n.startswith("word/") for n in names):
        return DOCX
    if any(n.startswith("xl/") for n in names):
        return XLSX
    return None


def _text(data: bytes) -> FileKind | None:
    """UTF-8 text with no control characters but whitespace (an optional BOM)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    for ch in text:
        if ch not in "\n\r\t\f" and unicodedata.category(ch) == "Cc":
            return None
    return TEXT


def sniff(data: bytes) -> FileKind | None:
    """The kind of ``data`` from its first bytes; None: not a kind we take."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    if data.startswith(_ZIP_MAGIC):
        return _ooxml(data)
    return _text(data)


def safe_filename(raw: str | None, kind: FileKind) -> str:
    """The name shown and downloaded: the last path component, no control or
    format characters (CR/LF, bidi overrides), no leading dots, at most 120
    characters, ending with an extension of the sniffed kind (``a.html`` that
    is a PNG becomes ``a.html.png``)."""
    name = unicodedata.normalize("NFC", raw or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")
    ).strip()
    name = name.lstrip(". ").strip()
    if not name:
        name = "attachment"
    if not name.lower().endswith(kind.extensions):
        name += kind.extensions[0]
    if len(name) > _MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        suffix = f".{ext}" if dot and len(ext) <= 10 else ""
        name = stem[: _MAX_NAME - len(suffix)] + suffix if suffix else name[:_MAX_NAME]
    return name


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name in RFC 5987's
    ``filename*`` (every browser we support reads it)."""
    fallback = "".join(
        ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\;%' else "_" for ch in filename
    )
    encoded = quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def too_large(max_bytes: int) -> ApiError:
    return ApiError(
        f"The file is larger than {max_bytes} bytes",
        error_id="attachment_too_large",
        status=413,
        details={"max_bytes": max_bytes},
    )


def wrong_type() -> ApiError:
    return ApiError(
        "This kind of file cannot be sent",
        error_id="attachment_type",
        status=415,
        details={"allowed": list(ALLOWED)},
    )
