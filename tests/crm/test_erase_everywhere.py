"""Erasing a person leaves nothing that names them anywhere in the database: a full data dump
(pg_dump --data-only on PostgreSQL, the SQL dump on SQLite) is searched for their name, email
and phone after the erase."""

import re
import subprocess

import pytest
from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import connection

from core.services import audit_log_record
from crm.imports import import_job_create
from crm.models import Contact
from crm.services import contact_erase
from journeys import ingest
from tests.crm.everywhere import give_everything
from tests.factories import ContactFactory
from tickets import services as ticket_services
from tickets.inbound import inbound_receive

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

FIRST, LAST = "Zoltanbek", "Quorrington"
EMAIL = "zoltanbek.quorrington@example.org"
PHONE_DIGITS = "9121112233"
HEX = re.compile(r"(?:\\\\x|X')([0-9a-fA-F]{16,})")


def database_dump() -> str:
    if connection.vendor == "postgresql":
        params = connection.get_connection_params()
        command = ["pg_dump", "--data-only", "--no-owner", "-h", params.get("host") or "127.0.0.1"]
        command += ["-p", str(params.get("port") or 5432), "-U", params.get("user") or "postgres", params["dbname"]]
        return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout
    return "\n".join(connection.connection.iterdump())


def traces(dump: str) -> list[str]:
    """`table: row` for every row of the dump that names the person."""
    found, table = [], ""
    for line in dump.splitlines():
        if line.startswith("COPY "):  # pg_dump: the rows of one table follow
            table = line.split()[1].removeprefix("public.")
        elif line.startswith("INSERT INTO "):  # SQLite: one statement per row
            table = line.split()[2].strip('"')
        # Binary columns (an import's uploaded file) are dumped as hex: read them as text too.
        blobs = [bytes.fromhex(h).decode("utf-8", "replace") for h in HEX.findall(line) if len(h) % 2 == 0]
        if any(t in text for text in (line, *blobs) for t in (FIRST, LAST, EMAIL, PHONE_DIGITS)):
            found.append(f"{table}: {line[:200]}")
    return found


def test_after_an_erase_no_table_holds_the_persons_name_email_or_phone(world, dave, default_sla_policy):
    # given a person who appears in every app...
    person = ContactFactory(first_name=FIRST, last_name=LAST, email=EMAIL, phone=f"+98{PHONE_DIGITS}")
    made = give_everything(person, world, age=2)
    ticket = made["ticket"]
    # ...in a ticket subject, its status note and an agent's reply that names them,
    ticket_services.ticket_update(ticket=ticket, actor=dave, subject=f"{FIRST} {LAST} cannot log in")
    ticket_services.ticket_comment(
        ticket=ticket, author=dave, body=f"Called {FIRST} on 0{PHONE_DIGITS}", is_public=False
    )
    ticket_services.ticket_change_status(
        ticket=ticket, status="pending", actor=dave, note=f"Waiting for {FIRST} {LAST}"
    )
    # ...in an event whose idempotency key is their email,
    ingest.events_ingest(
        items=[{"type": "signup", "contact": {"email": EMAIL}, "idempotency_key": f"signup:{EMAIL}"}],
        source="api",
        actor=dave,
    )
    # ...in an email they wrote to support (kept whole for the record) and an auto-reply refused,
    for extra in ("", "Auto-Submitted: auto-replied\n"):
        inbound_receive(
            raw=(
                f"From: {FIRST} {LAST} <{EMAIL}>\nTo: {settings.SUPPORT_EMAIL}\nSubject: {FIRST} needs help\n{extra}"
                f"Message-ID: <{len(extra)}@example.org>\n\nCall me on 0{PHONE_DIGITS}.\n"
            ).encode()
        )
    # ...in a check-only import and a failed import of a file with their row,
    csv = f"first_name,last_name,email,phone\n{FIRST},{LAST},{EMAIL},+98{PHONE_DIGITS}\n".encode()
    import_job_create(actor=dave, data=csv, file_name="people.csv", file_format="csv", dry_run=True)
    bad = f"first_name,last_name,email,phone\n{FIRST},{LAST},{EMAIL},not-a-phone\n".encode()
    import_job_create(actor=dave, data=bad, file_name="people-bad.csv", file_format="csv")
    # ...in the admin's log of changes (an edit through the admin) and the audit log,
    LogEntry.objects.log_actions(
        user_id=dave.pk,
        queryset=Contact.objects.filter(pk=person.pk),
        action_flag=CHANGE,
        change_message="Changed name.",
    )
    audit_log_record(actor=dave, action="contact.export", obj=person, data={})
    named_in = {row.split(":")[0] for row in traces(database_dump())}
    for table in (
        "django_admin_log",
        "crm_importjob",
        "tickets_ticketstatuschange",
        "tickets_inboundemail",
        "journeys_event",
        "core_auditlog",
    ):
        assert table in named_in, f"the set-up should have named the person in {table}"

    # when a manager erases them
    contact_erase(contact=person, actor=dave, reason="asked by email")

    # then a full data dump names them nowhere
    assert traces(database_dump()) == []


def test_a_check_only_upload_is_kept_for_a_real_run_no_longer_than_the_set_time(dave, settings):
    from datetime import timedelta

    from django.utils import timezone

    from crm.imports import import_uploads_purge

    settings.CRM_IMPORT_KEEP_HOURS = 24
    csv = f"first_name,email\n{FIRST},{EMAIL}\n".encode()
    job = import_job_create(actor=dave, data=csv, file_name="people.csv", file_format="csv", dry_run=True)
    job.refresh_from_db()
    assert job.status == "done" and bytes(job.content) == csv  # kept: "import it for real" needs it

    assert import_uploads_purge(now=timezone.now() + timedelta(hours=23)) == 0
    assert import_uploads_purge(now=timezone.now() + timedelta(hours=25)) == 1
    job.refresh_from_db()
    assert bytes(job.content) == b""
