"""The support mailbox read by the worker pool (SUPPORT_IMAP_WORKERS): the beat's poll hands the
unseen messages out in disjoint batches (tickets.imap.mailbox_dispatch -> tickets.ingest_mail),
and every message still counts once: a batch run twice, a batch whose worker died after some of
its commits, a poll while a batch is in flight, a mailbox recreated under the batch. With a real
Dovecot (tests/tickets/mailkit.py); the worker-pool fault test is in test_mail_worker.py."""

import pytest

from tests.tickets.mailkit import DOVECOT, Dovecot
from tests.tickets.test_mail import SUPPORT, customer_mail
from tickets import imap, tasks
from tickets.models import InboundEmail, Ticket


@pytest.fixture(autouse=True)
def support_settings(settings, tmp_path):
    settings.SUPPORT_EMAIL = SUPPORT
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(scope="module")
def dovecot_server():
    if DOVECOT is None:
        pytest.skip("Dovecot is not installed (Debian: apt-get install dovecot-imapd; ./safar test does it)")
    server = Dovecot().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(dovecot_server, settings):
    """The support mailbox, empty, as SUPPORT_IMAP_URL."""
    conn = dovecot_server.client()
    if conn.select("INBOX")[1][0] != b"0":
        conn.store("1:*", "+FLAGS.SILENT", r"(\Deleted)")
        conn.expunge()
    conn.logout()
    settings.SUPPORT_IMAP_URL = dovecot_server.url
    return dovecot_server


def mails(count: int) -> list[bytes]:
    return [customer_mail(sender=f"c{i}@x.example", subject=f"Mail {i}").as_bytes() for i in range(count)]


def dispatch(**kwargs) -> tuple[dict, list[tuple[int, list[int]]]]:
    queued = []
    result = imap.mailbox_dispatch(queue=lambda uidvalidity, uids: queued.append((uidvalidity, uids)), **kwargs)
    return result, queued


def subjects() -> list[str]:
    return sorted(Ticket.objects.values_list("subject", flat=True))


def test_the_poll_hands_out_disjoint_batches_and_each_message_counts_once(
    db, mailbox, django_capture_on_commit_callbacks
):
    mailbox.append(*mails(7))
    result, queued = dispatch(batch=3)
    assert result == {"unseen": 7, "queued": 7, "in_flight": 0, "batches": 3}
    uids = [uid for _validity, batch in queued for uid in batch]
    assert [len(batch) for _validity, batch in queued] == [3, 3, 1] and len(set(uids)) == 7
    for uidvalidity, batch in reversed(queued):  # in any order, as the workers take them
        with django_capture_on_commit_callbacks(execute=True):
            imap.mailbox_ingest(uidvalidity=uidvalidity, uids=batch)
    assert subjects() == [f"Mail {i}" for i in range(7)] and mailbox.unseen() == 0
    # A batch handed out again (the broker redelivered it) finds its messages done.
    counts = imap.mailbox_ingest(uidvalidity=queued[0][0], uids=queued[0][1])
    assert counts["read"] == 0 and counts["skipped"] == 3 and InboundEmail.objects.count() == 7


def test_a_batch_whose_worker_died_after_some_commits_is_ingested_once_when_run_again(db, mailbox):
    mailbox.append(*mails(5))
    _result, [(uidvalidity, batch)] = dispatch()

    class Died(Exception):
        """The worker dying after the second commit, before the batch's \\Seen mark."""

    def die_after_two(uid, row):
        if InboundEmail.objects.count() == 2:
            raise Died

    with pytest.raises(Died):
        imap.mailbox_ingest(uidvalidity=uidvalidity, uids=batch, after_commit=die_after_two)
    assert len(subjects()) == 2 and mailbox.unseen() == 5

    counts = imap.mailbox_ingest(uidvalidity=uidvalidity, uids=batch)
    assert counts["read"] == 5 and counts["again"] == 2 and counts["processed"] == 3
    assert subjects() == [f"Mail {i}" for i in range(5)] and mailbox.unseen() == 0


def test_a_poll_while_a_batch_is_in_flight_does_not_hand_it_out_again(db, mailbox):
    mailbox.append(*mails(4))
    assert dispatch(batch=2)[0]["queued"] == 4
    mailbox.append(*[customer_mail(sender="late@x.example", subject="Late").as_bytes()])
    result, queued = dispatch(batch=2)
    assert result == {"unseen": 5, "queued": 1, "in_flight": 4, "batches": 1} and len(queued[0][1]) == 1
    # The marks expire (IN_FLIGHT): a batch the broker lost is handed out by a later poll.
    from django.core.cache import cache

    cache.clear()
    assert dispatch(batch=10)[0]["queued"] == 5


def test_a_batch_for_a_mailbox_that_was_recreated_does_nothing(db, mailbox):
    mailbox.append(*mails(2))
    _result, [(uidvalidity, batch)] = dispatch()
    counts = imap.mailbox_ingest(uidvalidity=uidvalidity + 1, uids=batch)
    assert counts["read"] == 0 and counts["skipped"] == 2
    assert InboundEmail.objects.count() == 0 and mailbox.unseen() == 2


def test_the_beat_task_uses_the_worker_pool_when_asked(
    db, mailbox, settings, celery_eager, django_capture_on_commit_callbacks
):
    settings.SUPPORT_IMAP_WORKERS = True
    mailbox.append(*mails(3))
    with django_capture_on_commit_callbacks(execute=True):
        result = tasks.poll_mailbox_task()  # the batch task runs at once here (eager Celery)
    assert result["queued"] == 3 and result["batches"] == 1
    assert subjects() == [f"Mail {i}" for i in range(3)] and mailbox.unseen() == 0
