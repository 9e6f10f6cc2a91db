"""What a ticket accepts as an attachment, by email or upload: checked by name, declared type
and the file's first bytes together, since each of the three is chosen by the sender.

Allowed: images (PNG, JPEG, GIF, WebP), PDF, plain text and CSV, and office documents (Word,
Excel, PowerPoint, OpenDocument). Everything else is refused, executables and archives
included: an OOXML or OpenDocument file is a ZIP, so a ZIP passes only when it carries the
document's own marker ([Content_Types].xml or an OpenDocument mimetype entry), never as .zip.
SVG is refused too (it can carry script).
"""

import io
import os
import unicodedata
import zipfile
from dataclasses import dataclass

from django.utils.translation import gettext as _

OOXML = "ooxml"
ODF = "odf"
OLE = "ole"

# extension -> (canonical content type, what the first bytes must be)
ALLOWED = {
    "png": ("image/png", "png"),
    "jpg": ("image/jpeg", "jpeg"),
    "jpeg": ("image/jpeg", "jpeg"),
    "gif": ("image/gif", "gif"),
    "webp": ("image/webp", "webp"),
    "pdf": ("application/pdf", "pdf"),
    "txt": ("text/plain", "text"),
    "csv": ("text/csv", "text"),
    "log": ("text/plain", "text"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document", OOXML),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", OOXML),
    "pptx": ("application/vnd.openxmlformats-officedocument.presentationml.presentation", OOXML),
    "odt": ("application/vnd.oasis.opendocument.text", ODF),
    "ods": ("application/vnd.oasis.opendocument.spreadsheet", ODF),
    "odp": ("application/vnd.oasis.opendocument.presentation", ODF),
    "doc": ("application/msword", OLE),
    "xls": ("application/vnd.ms-excel", OLE),
    "ppt": ("application/vnd.ms-powerpoint", OLE),
}
# Declared types that say nothing (mail programs and browsers send them for anything).
GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream", "application/x-download"}
# The accept= attribute of the upload inputs.
ACCEPT = ",".join(sorted({f".{ext}" for ext in ALLOWED} | {ctype for ctype, _kind in ALLOWED.values()}))

_MAGIC = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "pdf": (b"%PDF-",),
    OLE: (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",),
}
MAX_NAME = 150


class AttachmentRefused(Exception):
    """The file is not stored; `reason` says why in words the sender understands."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class IncomingFile:
    """A file on its way in: from an upload, an email part, or a test."""

    name: str
    content_type: str
    data: bytes


def incoming(file) -> IncomingFile:
    """An IncomingFile from an IncomingFile, a (name, content_type, data) tuple or an uploaded file.
    Reads an upload only up to one byte over the cap, so a huge one is refused without being read."""
    from django.conf import settings

    if isinstance(file, IncomingFile):
        return file
    if isinstance(file, tuple):
        name, content_type, data = file
        return IncomingFile(name or "", content_type or "", bytes(data))
    data = file.read(settings.TICKETS_ATTACHMENT_MAX_BYTES + 1)
    return IncomingFile(getattr(file, "name", "") or "", getattr(file, "content_type", "") or "", data)


def clean_filename(name: str) -> str:
    """A name safe on disk and in a header: no path, no control characters, at most MAX_NAME."""
    name = unicodedata.normalize("NFC", os.path.basename((name or "").replace("\\", "/"))).strip()
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    stem = stem[: MAX_NAME - len(ext) - 1] or "file"
    return f"{stem}.{ext}" if ext else stem


def _looks_like(kind: str, data: bytes) -> bool:
    if kind in _MAGIC:
        return data.startswith(_MAGIC[kind])
    if kind == "webp":
        return data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    if kind == "text":
        head = data[:8192]
        if b"\x00" in head:
            return False
        # Any 8-bit text encoding is fine (windows-1256, iso-8859-8); refuse what a program
        # would recognise as a binary it can run.
        return not head.startswith((b"MZ", b"\x7fELF", b"#!", b"PK\x03\x04"))
    if kind in (OOXML, ODF):
        if not data.startswith(b"PK\x03\x04"):
            return False
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
                if kind == OOXML:
                    return "[Content_Types].xml" in names
                return "mimetype" in names and archive.read("mimetype").startswith(
                    b"application/vnd.oasis.opendocument"
                )
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, RuntimeError):
            return False
    return False


def check(file: IncomingFile, *, max_bytes: int) -> tuple[str, str]:
    """The (clean file name, canonical content type) of an acceptable file, or AttachmentRefused."""
    name = clean_filename(file.name)
    if len(file.data) > max_bytes:
        raise AttachmentRefused(
            _("%(name)s is larger than %(max)s MB.") % {"name": name, "max": round(max_bytes / 1024 / 1024, 1)}
        )
    if not file.data:
        raise AttachmentRefused(_("%(name)s is empty.") % {"name": name})
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    if ext not in ALLOWED:
        raise AttachmentRefused(
            _("%(name)s: this kind of file is not accepted (images, PDF, text and office documents are).")
            % {"name": name}
        )
    content_type, kind = ALLOWED[ext]
    declared = (file.content_type or "").split(";")[0].strip().lower()
    if (
        declared not in GENERIC_TYPES
        and declared != content_type
        and not (kind == "text" and declared.startswith("text/"))
        and not (ext in ("jpg", "jpeg") and declared == "image/pjpeg")
    ):
        raise AttachmentRefused(
            _("%(name)s says it is %(declared)s, which does not match its name.") % {"name": name, "declared": declared}
        )
    if not _looks_like(kind, file.data):
        raise AttachmentRefused(_("%(name)s is not the kind of file its name says.") % {"name": name})
    return name, content_type
