"""The support mailbox poller: reads the unseen messages of SUPPORT_IMAP_URL
(imap://user:password@host:143/INBOX, or imaps:// for TLS on 993) with the standard library's
imaplib, hands each to tickets.inbound, and marks it \\Seen only after its transaction has
committed. A poller that dies halfway leaves the rest unseen, and a message it had committed but
not yet marked is recognised by its Message-ID the next time: each counts once."""

import contextlib
import imaplib
import logging
import re
from urllib.parse import unquote, urlsplit

from django.conf import settings

from . import inbound

logger = logging.getLogger(__name__)

BATCH = 100  # messages fetched in one FETCH; marked \Seen together after their commits


def configured() -> bool:
    return bool(settings.SUPPORT_IMAP_URL)


def connect(url: str | None = None) -> tuple[imaplib.IMAP4, str]:
    """A logged-in connection and the mailbox name the URL names (INBOX by default)."""
    parts = urlsplit(url or settings.SUPPORT_IMAP_URL)
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError("SUPPORT_IMAP_URL must start with imap:// or imaps://")
    timeout = getattr(settings, "SUPPORT_IMAP_TIMEOUT", 60)
    if parts.scheme == "imaps":
        conn = imaplib.IMAP4_SSL(parts.hostname, parts.port or 993, timeout=timeout)
    else:
        conn = imaplib.IMAP4(parts.hostname, parts.port or 143, timeout=timeout)
    conn.login(unquote(parts.username or ""), unquote(parts.password or ""))
    return conn, unquote(parts.path.lstrip("/")) or "INBOX"


def _raw_messages(data) -> list[tuple[bytes, bytes]]:
    """(uid, raw) pairs of a UID FETCH (UID BODY.PEEK[]) answer."""
    out = []
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            match = re.search(rb"UID (\d+)", item[0])
            if match:
                out.append((match[1], item[1]))
    return out


def mailbox_poll(*, url: str | None = None, limit: int = 2000, after_commit=None) -> dict:
    """Ingest up to `limit` unseen messages. `after_commit(uid, row)` is called after each
    message's transaction (the benchmark counts with it; a test stops the poller with it)."""
    conn, mailbox = connect(url)
    counts = {"read": 0, "processed": 0, "refused": 0, "duplicate": 0, "again": 0}
    try:
        status, _ = conn.select(_quote(mailbox))
        if status != "OK":
            raise imaplib.IMAP4.error(f"cannot select mailbox {mailbox!r}")
        status, data = conn.uid("SEARCH", None, "UNSEEN")
        uids = (data[0] or b"").split()[:limit]
        before = inbound.InboundEmail.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        for start in range(0, len(uids), BATCH):
            batch = b",".join(uids[start : start + BATCH]).decode()
            status, data = conn.uid("FETCH", batch, "(UID RFC822.SIZE)")
            sizes = dict(match for item in data if isinstance(item, bytes) and (match := _size_match(item)))
            big = [uid for uid, size in sizes.items() if size > inbound.max_message_bytes()]
            small = [uid for uid in uids[start : start + BATCH] if uid not in big]
            rows = []
            if small:
                status, data = conn.uid("FETCH", b",".join(small).decode(), "(UID BODY.PEEK[])")
                rows += [(uid, raw, None) for uid, raw in _raw_messages(data)]
            if big:  # over the cap: only the headers are read; the message stays, flagged
                status, data = conn.uid("FETCH", b",".join(big).decode(), "(UID BODY.PEEK[HEADER])")
                rows += [(uid, head, sizes[uid]) for uid, head in _raw_messages(data)]
            done = []
            for uid, raw, size in rows:
                if size is None:
                    row = inbound.inbound_receive(raw=raw, source="imap")
                else:
                    row = inbound.inbound_refuse_too_large(head=raw, size=size, source="imap")
                counts["read"] += 1
                key = "again" if row.pk <= before else row.status
                counts[key] = counts.get(key, 0) + 1
                if after_commit is not None:
                    after_commit(uid, row)
                done.append(uid)
            if done:
                conn.uid("STORE", b",".join(done).decode(), "+FLAGS.SILENT", r"(\Seen)")
            if big:
                conn.uid("STORE", b",".join(big).decode(), "+FLAGS.SILENT", r"(\Flagged)")
    finally:
        with contextlib.suppress(Exception):
            conn.logout()
    return counts


def _size_match(item: bytes):
    uid = re.search(rb"UID (\d+)", item)
    size = re.search(rb"RFC822\.SIZE (\d+)", item)
    return (uid[1], int(size[1])) if uid and size else None


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
