"""The support mailbox poller: reads the unseen messages of SUPPORT_IMAP_URL
(imap://user:password@host:143/INBOX, or imaps:// for TLS on 993) with the standard library's
imaplib, hands each to tickets.inbound, and marks it \\Seen only after its transaction has
committed. A poller that dies halfway leaves the rest unseen, and a message it had committed but
not yet marked is recognised by its Message-ID the next time: each counts once."""

import contextlib
import hashlib
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
    counts = _counts()
    try:
        _select(conn, mailbox)
        uids = _unseen(conn)[:limit]
        before = _last_row()
        for start in range(0, len(uids), BATCH):
            _ingest(conn, uids[start : start + BATCH], counts, before, after_commit)
    finally:
        with contextlib.suppress(Exception):
            conn.logout()
    return counts


# --- on the worker pool (SUPPORT_IMAP_WORKERS): the beat's poll hands out disjoint batches ----------------
#
# The poll reads the unseen UIDs and queues each batch of them to tickets.ingest_mail, so the
# worker pool's processes ingest side by side. Exactly once holds as in mailbox_poll: the ledger's
# unique Message-ID keeps a message read twice from counting twice, and \Seen is set only after
# the commits. A batch is marked in flight (the cache, IN_FLIGHT seconds) so that the next poll
# does not queue it again while it runs; a batch whose worker died is queued again by the broker
# (acks_late, reject_on_worker_lost) or, if the broker lost it, by the first poll after the mark
# expired. UIDs are only meaningful with the mailbox's UIDVALIDITY: a batch carries it, and a
# batch whose mailbox was recreated meanwhile does nothing (the next poll sees the new UIDs).

IN_FLIGHT = 600


def mailbox_dispatch(*, queue, url: str | None = None, limit: int = 20000, batch: int | None = None) -> dict:
    """Queue the unseen messages not in flight to `queue(uidvalidity, uids)` in batches of
    `batch` (BATCH). Returns {"unseen": n, "queued": n, "in_flight": n, "batches": n}."""
    batch = batch or BATCH
    from django.core.cache import cache

    conn, mailbox = connect(url)
    try:
        uidvalidity = _select(conn, mailbox)
        uids = _unseen(conn)[:limit]
    finally:
        with contextlib.suppress(Exception):
            conn.logout()
    prefix = f"tickets:imap:{_mailbox_key(url, mailbox)}:{uidvalidity}:"
    fresh = [uid for uid in uids if cache.add(prefix + uid.decode(), 1, timeout=IN_FLIGHT)]
    batches = 0
    for start in range(0, len(fresh), batch):
        chunk = [int(uid) for uid in fresh[start : start + batch]]
        try:
            queue(uidvalidity, chunk)
        except Exception:
            cache.delete_many([prefix + str(uid) for uid in fresh[start:]])  # not queued: the next poll takes them
            raise
        batches += 1
    return {"unseen": len(uids), "queued": len(fresh), "in_flight": len(uids) - len(fresh), "batches": batches}


def mailbox_ingest(*, uidvalidity: int, uids: list[int], url: str | None = None, after_commit=None) -> dict:
    """Ingest the messages `uids` (one batch of mailbox_dispatch) that are still unseen."""
    conn, mailbox = connect(url)
    counts = _counts()
    try:
        if _select(conn, mailbox) != uidvalidity:
            counts["skipped"] = len(uids)  # the mailbox was recreated: these UIDs name other messages now
            return counts
        wanted = [str(uid).encode() for uid in uids]
        _status, data = conn.uid("FETCH", b",".join(wanted).decode(), "(UID FLAGS)")
        seen = {uid for uid, flags in _flags(data) if rb"\Seen" in flags}
        counts["skipped"] = len(seen)  # done by an earlier run of this batch
        _ingest(conn, [uid for uid in wanted if uid not in seen], counts, _last_row(), after_commit)
    finally:
        with contextlib.suppress(Exception):
            conn.logout()
    return counts


def _counts() -> dict:
    return {"read": 0, "processed": 0, "refused": 0, "duplicate": 0, "again": 0}


def _select(conn: imaplib.IMAP4, mailbox: str) -> int:
    """Select the mailbox; returns its UIDVALIDITY."""
    status, _ = conn.select(_quote(mailbox))
    if status != "OK":
        raise imaplib.IMAP4.error(f"cannot select mailbox {mailbox!r}")
    _name, values = conn.response("UIDVALIDITY")
    return int(values[0]) if values and values[0] else 0


def _unseen(conn: imaplib.IMAP4) -> list[bytes]:
    _status, data = conn.uid("SEARCH", None, "UNSEEN")
    return (data[0] or b"").split()


def _last_row() -> int:
    """The newest ledger row: a message whose row is older was read before ("again")."""
    return inbound.InboundEmail.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _mailbox_key(url: str | None, mailbox: str) -> str:
    parts = urlsplit(url or settings.SUPPORT_IMAP_URL)
    return hashlib.sha256(f"{parts.hostname}:{parts.port}:{parts.username}:{mailbox}".encode()).hexdigest()[:16]


def _ingest(conn: imaplib.IMAP4, uids: list[bytes], counts: dict, before: int, after_commit) -> None:
    """Fetch and ingest one batch of UIDs, each message in its own transaction, then mark the
    batch \\Seen (and those over the size cap \\Flagged: they stay, unread)."""
    if not uids:
        return
    batch = b",".join(uids).decode()
    _status, data = conn.uid("FETCH", batch, "(UID RFC822.SIZE)")
    sizes = dict(match for item in data if isinstance(item, bytes) and (match := _size_match(item)))
    big = [uid for uid, size in sizes.items() if size > inbound.max_message_bytes()]
    small = [uid for uid in uids if uid not in big]
    rows = []
    if small:
        _status, data = conn.uid("FETCH", b",".join(small).decode(), "(UID BODY.PEEK[])")
        rows += [(uid, raw, None) for uid, raw in _raw_messages(data)]
    if big:  # over the cap: only the headers are read; the message stays, flagged
        _status, data = conn.uid("FETCH", b",".join(big).decode(), "(UID BODY.PEEK[HEADER])")
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


def _flags(data) -> list[tuple[bytes, bytes]]:
    """(uid, flags) pairs of a UID FETCH (UID FLAGS) answer."""
    out = []
    for item in data:
        if isinstance(item, bytes):
            uid, flags = re.search(rb"UID (\d+)", item), re.search(rb"FLAGS \(([^)]*)\)", item)
            if uid:
                out.append((uid[1], flags[1] if flags else b""))
    return out


def _size_match(item: bytes):
    uid = re.search(rb"UID (\d+)", item)
    size = re.search(rb"RFC822\.SIZE (\d+)", item)
    return (uid[1], int(size[1])) if uid and size else None


def _quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
