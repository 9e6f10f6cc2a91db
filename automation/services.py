"""Writes for automation: start runs, claim the due ones, advance them step by step, and send
messages through the outbox.

The beat pass claims due runs and hands them to workers in chunks (up to 500 per task). A worker
holds a lock on each run of its chunk (`run_locks`), checks the rules and writes the chunk's
outbox rows in one statement under the unique key `run:<id>:step:<id>`, status "queued", then
sends them over one provider connection. Sending never happens twice for a (run, step): right
before each provider call its row is marked "sending" and committed, and its answer is written
right after the call. A worker that dies in between leaves that one row in "sending"; a retry
(or the sweep) finds it with the run's lock free and does not send it again (at most once; the
row is "in doubt", counted in the admin, until a delivery report or a manager settles it). The
rows after it are still queued and are sent by the retry. A connection that fails mid-chunk
leaves the rest queued, and their runs retry later."""

import contextlib
import functools
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail.message import make_msgid
from django.core.mail.utils import DNS_NAME
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, Value
from django.db.models.functions import Coalesce, Concat
from django.template.loader import render_to_string
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone, translation
from django.utils.translation import get_language_info
from django.utils.translation import gettext as _

from core import bidi, mail
from core.exceptions import DomainError
from core.services import audit_log_record
from crm import selectors as crm_selectors
from crm import services as crm_services
from crm.choices import ConsentSource, ConsentStatus
from crm.models import Contact
from journeys import selectors as journey_selectors
from journeys import services as journey_services
from journeys.choices import TransitionSource
from journeys.models import Event
from surveys import services as survey_services

from . import channels, choices, rules
from .models import Message, MessageTemplate, Referral, Reward, Workflow, WorkflowRun, WorkflowStep

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
RUN_LOCK_SPACE = 0x5AFA  # the first key of the advisory locks on runs: pg_advisory_lock(space, run id)
_unsubscribe_signer = signing.Signer(salt="automation.unsubscribe")


def claim_timeout() -> timedelta:
    """A run claimed by the beat pass whose worker never reported back is claimed again after this."""
    return timedelta(seconds=settings.AUTOMATION_CLAIM_TIMEOUT_SECONDS)


# Runs


def run_start(*, workflow: Workflow, contact: Contact, now: datetime | None = None) -> WorkflowRun | None:
    """Start the workflow for a contact if its re-entry mode allows; None when it does not."""
    now = now or timezone.now()
    if not workflow.is_active or contact.erased_at:
        return None
    earlier = WorkflowRun.objects.filter(workflow=workflow, contact=contact)
    if earlier.filter(status__in=[choices.RunStatus.WAITING, choices.RunStatus.QUEUED]).exists():
        return None  # one live run at a time, whatever the mode
    if workflow.reentry == choices.Reentry.NEVER and earlier.exists():
        return None
    first = workflow.steps.order_by("order").values_list("order", flat=True).first()
    if first is None:
        return None
    try:
        with transaction.atomic():
            return WorkflowRun.objects.create(
                workflow=workflow, contact=contact, step_order=first, step_started_at=now, due_at=now, started_at=now
            )
    except IntegrityError:
        return None  # a concurrent trigger started it first


def runs_start_for(*, workflows, contact_id: int) -> list[WorkflowRun]:
    contact = Contact.objects.filter(pk=contact_id).first()
    if contact is None:
        return []
    return [run for workflow in workflows if (run := run_start(workflow=workflow, contact=contact)) is not None]


def runs_start_many(starts: dict[int, list[Workflow]]) -> list[WorkflowRun]:
    """Start workflows for many contacts ({contact id: workflows}, in order): the contacts come
    from one query; each start then checks its re-entry mode as run_start does."""
    contacts = Contact.objects.in_bulk([contact_id for contact_id, workflows in starts.items() if workflows])
    runs = []
    for contact_id, workflows in starts.items():
        contact = contacts.get(contact_id)
        if contact is None:
            continue
        runs.extend(run for workflow in workflows if (run := run_start(workflow=workflow, contact=contact)) is not None)
    return runs


def runs_claim_due(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """The beat pass: claim waiting runs whose time came (and runs whose worker vanished),
    skipping rows another pass holds, and mark them queued. The caller enqueues them after commit."""
    now = now or timezone.now()
    with transaction.atomic():
        due = list(
            WorkflowRun.objects.select_for_update(skip_locked=True)
            .filter(Q(status=choices.RunStatus.WAITING, due_at__lte=now))
            .order_by("due_at")
            .values_list("pk", flat=True)[:limit]
        )
        # A queued run whose worker has not been heard of (heartbeat, else the claim) for the
        # claim timeout: its worker died or its task was lost. A live worker still holding it
        # (run_locks) makes the new task leave it alone.
        stale = list(
            WorkflowRun.objects.select_for_update(skip_locked=True)
            .alias(last_seen=Coalesce("heartbeat_at", "due_at"))
            .filter(status=choices.RunStatus.QUEUED, last_seen__lte=now - claim_timeout())
            .values_list("pk", flat=True)[: max(limit - len(due), 0)]
        )
        claimed = due + stale
        WorkflowRun.objects.filter(pk__in=claimed).update(
            status=choices.RunStatus.QUEUED, due_at=now, heartbeat_at=None
        )
        if stale:
            WorkflowRun.objects.filter(pk__in=stale).update(
                last_error=_("Its worker stopped (no heartbeat for %(seconds)s s); claimed again at %(at)s.")
                % {"seconds": int(claim_timeout().total_seconds()), "at": now.isoformat(timespec="seconds")}
            )
            logger.warning("automation: %s runs whose worker stopped claimed again", len(stale))
    return claimed


def _exit_reached(run: WorkflowRun, now: datetime) -> bool:
    workflow = run.workflow
    if workflow.goal_stage_id:
        for enrollment in journey_selectors.contact_enrollments(contact_id=run.contact_id):
            stage = enrollment.stage
            if enrollment.journey_id == workflow.goal_stage.journey_id and stage.order >= workflow.goal_stage.order:
                return True
    if workflow.exit_event:
        return Event.objects.filter(
            contact_id=run.contact_id, type=workflow.exit_event, occurred_at__gt=run.started_at, occurred_at__lte=now
        ).exists()
    return False


def _wait_due(run: WorkflowRun, step: WorkflowStep) -> datetime:
    return wait_end(contact=run.contact, step=step, started=run.step_started_at)


def wait_end(*, contact: Contact, step: WorkflowStep, started: datetime) -> datetime:
    """When a wait step that began at `started` ends: its minutes, then the next `wait_until`
    time of day in the contact's zone."""
    due = started + timedelta(minutes=step.wait_minutes or 0)
    if step.wait_until is not None:
        zone = rules.contact_zone(contact)
        local = due.astimezone(zone)
        at = datetime.combine(local.date(), step.wait_until, tzinfo=zone)
        due = at if at >= local else at + timedelta(days=1)
    return due


def run_advance(*, run_id: int, now: datetime | None = None) -> str:
    """Take one claimed run as far as it can go now. Returns its status afterwards, "busy" when
    another worker holds it, or "not_claimed"."""
    return runs_advance(run_ids=[run_id], now=now).get(run_id, "not_claimed")


def runs_advance(*, run_ids: list[int], now: datetime | None = None) -> dict[int, str]:
    """Take a chunk of claimed runs as far as each can go now; returns each run's outcome.

    Each round moves every run of the chunk one step. The round's send steps go together: the
    rules are checked from a few reads for the whole chunk, the outbox rows are written in one
    statement, and the messages leave over one provider connection (one SMTP session for the
    chunk's mail). Other steps (surveys, stage moves, branches) go run by run."""
    now = now or timezone.now()
    run_ids = list(dict.fromkeys(run_ids))
    outcomes: dict[int, str] = {}
    with run_locks(run_ids) as held:
        outcomes.update({run_id: "busy" for run_id in run_ids if run_id not in held})
        steps: dict[int, list[WorkflowStep]] = {}  # per workflow, read once per chunk
        active = [run_id for run_id in run_ids if run_id in held]
        for _guard in range(50):  # a workflow has far fewer steps; no run spins forever
            if not active:
                break
            active, deliveries = _advance_round(active, now, outcomes, steps)
            if deliveries:
                active += _deliver_many(deliveries, now, outcomes)
        outcomes.update(dict.fromkeys(active, "looping"))
    return outcomes


@contextlib.contextmanager
def run_locks(run_ids: list[int]):
    """Hold a session advisory lock on each of these runs while a worker advances them; yields
    the ids it got (another worker holds the rest). The locks outlive the short transactions of
    a chunk and go with the worker's connection when it dies, so a run found with an outbox row
    in "sending" and its lock free was left by a worker that died mid-send. PostgreSQL only:
    SQLite has no such locks, and runs one worker at a time. (Needs a session per worker, not a
    pooler in transaction mode.)"""
    if connection.vendor != "postgresql" or not run_ids:
        yield set(run_ids)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM unnest(%s::bigint[]) AS id WHERE pg_try_advisory_lock(%s, (id %% 2147483648)::int)",
            [run_ids, RUN_LOCK_SPACE],
        )
        held = {row[0] for row in cursor.fetchall()}
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(
                        "SELECT pg_advisory_unlock(%s, (id %% 2147483648)::int) FROM unnest(%s::bigint[]) AS id",
                        [RUN_LOCK_SPACE, list(held)],
                    )
            except DatabaseError:
                if not connection.in_atomic_block:
                    connection.close()  # the locks go with the session
                raise


RUN_FIELDS = ["status", "due_at", "step_order", "step_started_at", "attempts", "finished_at"]


def _advance_round(active: list[int], now: datetime, outcomes: dict, steps: dict):
    """One step for each run of the chunk, in one transaction. Returns the runs that go on to
    another step at once, and the (run, step, message) whose outbox rows wait to be sent."""
    go_on, deliveries, changed = [], [], []
    with transaction.atomic():
        runs = list(
            WorkflowRun.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("workflow__goal_stage", "contact")
            .filter(pk__in=active, status=choices.RunStatus.QUEUED)
        )
        outcomes.update(dict.fromkeys(set(active) - {run.pk for run in runs}, "not_claimed"))
        unknown = {run.workflow_id for run in runs} - steps.keys()
        if unknown:
            for workflow_id in unknown:
                steps[workflow_id] = []
            for step in WorkflowStep.objects.filter(workflow_id__in=unknown).select_related("template"):
                steps[step.workflow_id].append(step)
            for workflow_id in unknown:
                steps[workflow_id].sort(key=lambda step: step.order)

        def apply(run, step, result):
            action, value = result
            changed.append(run)
            if action == "wait":
                run.status, run.due_at = choices.RunStatus.WAITING, value
                outcomes[run.pk] = run.status
            else:
                _go_to(run, value if action == "goto" else None, step, now, steps[run.workflow_id])
                last = not any(later.order >= run.step_order for later in steps[run.workflow_id])
                if last and not (run.workflow.goal_stage_id or run.workflow.exit_event):
                    outcomes[run.pk] = _finish(run, choices.RunStatus.COMPLETED, now)  # no round for it
                else:
                    go_on.append(run.pk)

        sends = []
        for run in sorted(runs, key=lambda run: run.pk):
            workflow = run.workflow
            if (workflow.goal_stage_id or workflow.exit_event) and _exit_reached(run, now):
                outcomes[run.pk] = _finish(run, choices.RunStatus.EXITED, now)
                changed.append(run)
                continue
            step = next((step for step in steps[run.workflow_id] if step.order >= run.step_order), None)
            if step is None:
                outcomes[run.pk] = _finish(run, choices.RunStatus.COMPLETED, now)
                changed.append(run)
                continue
            if step.kind == choices.StepKind.SEND:
                sends.append((run, step))
                continue
            try:
                if step.kind == choices.StepKind.WAIT:
                    result = _do_step(run, step, now)  # no query
                else:
                    # A savepoint: a database error in the step must not break the round's transaction.
                    with transaction.atomic():
                        result = _do_step(run, step, now)
            except DomainError as exc:
                result = ("next", None)
                logger.info("Run %s step %s: %s", run.pk, step.order, exc.message)
            except Exception as exc:  # a bug or an outage: retry later, then give up
                outcomes[run.pk] = _fail(run, exc, now)
                continue
            apply(run, step, result)
        if sends:
            for (run, step), result in zip(sends, _prepare_sends(sends, now), strict=True):
                if result[0] == "send":
                    deliveries.append((run, step, result[1]))
                else:
                    apply(run, step, result)
        _save_runs(changed)
    return go_on, deliveries


def _save_runs(runs: list[WorkflowRun]) -> None:
    """Write the runs' step fields: one UPDATE per set of equal values (a chunk's runs mostly
    move alike: the same next step, the same status), bulk_update when they differ widely."""
    groups: dict[tuple, list[int]] = {}
    for run in runs:
        groups.setdefault(tuple(getattr(run, name) for name in RUN_FIELDS), []).append(run.pk)
    if len(groups) > 8:
        WorkflowRun.objects.bulk_update(runs, RUN_FIELDS)
        return
    for values, ids in groups.items():
        WorkflowRun.objects.filter(pk__in=ids).update(**dict(zip(RUN_FIELDS, values, strict=True)))


def _go_to(run: WorkflowRun, order: int | None, step: WorkflowStep, now: datetime, steps: list) -> None:
    if order is None:
        order = next((later.order for later in steps if later.order > step.order), None)
    run.step_order = order if order is not None else step.order + 1
    run.step_started_at = now
    run.attempts = 0


def _finish(run: WorkflowRun, status: str, now: datetime) -> str:
    run.status, run.finished_at, run.due_at = status, now, None
    return status


def _fail(run: WorkflowRun, exc: Exception | str, now: datetime) -> str:
    """Saved at once (the round's bulk update leaves this run out)."""
    run.attempts += 1
    run.last_error = (exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}")[:2000]
    if run.attempts >= MAX_ATTEMPTS:
        run.status, run.finished_at = choices.RunStatus.FAILED, now
        # An outbox row that never got to the provider is not left queued for ever.
        Message.objects.filter(run=run, status=choices.MessageStatus.QUEUED).update(
            status=choices.MessageStatus.FAILED,
            next_attempt_at=None,
            error=_("Failed after %(n)s attempts: %(reason)s") % {"n": run.attempts, "reason": run.last_error},
        )
    else:
        run.status, run.due_at = choices.RunStatus.WAITING, now + timedelta(minutes=5 * 2**run.attempts)
    run.save(update_fields=["attempts", "last_error", "status", "finished_at", "due_at"])
    logger.warning("Run %s failed (attempt %s): %s", run.pk, run.attempts, run.last_error)
    return run.status


def _do_step(run: WorkflowRun, step: WorkflowStep, now: datetime):
    kind = step.kind
    if kind == choices.StepKind.WAIT:
        due = _wait_due(run, step)
        return ("wait", due) if due > now else ("next", None)
    if kind == choices.StepKind.SURVEY:
        survey_services.invitation_create(survey=step.survey, contact=run.contact)
        return ("next", None)
    if kind == choices.StepKind.MOVE_STAGE:
        journey_services.enrollment_set_stage(
            contact=run.contact,
            journey=step.stage.journey,
            stage=step.stage,
            source=TransitionSource.AUTOMATION,
            reason=_("Workflow %(name)s") % {"name": run.workflow.name},
        )
        return ("next", None)
    # Branch: did the event happen since the step began, within the window?
    window_end = run.step_started_at + timedelta(minutes=step.branch_window_minutes)
    happened = Event.objects.filter(
        contact_id=run.contact_id,
        type=step.branch_event,
        occurred_at__gte=run.step_started_at,
        occurred_at__lte=min(now, window_end),
    ).exists()
    if happened:
        return ("goto", step.branch_goto)
    return ("wait", window_end) if now < window_end else ("next", None)


def message_key(run: WorkflowRun, step: WorkflowStep) -> str:
    return f"run:{run.pk}:step:{step.pk}"


def _prepare_sends(sends: list[tuple[WorkflowRun, WorkflowStep]], now: datetime) -> list[tuple]:
    """Check the rules and write the outbox rows of a round's send steps, in four queries: one
    result per (run, step): ("send", message) for a row queued for the provider, ("next", None)
    when handled (skipped with its reason, or done before: a retry or a duplicate task), or
    ("wait", when) when quiet hours or a weekend defer it."""
    keys = [message_key(run, step) for run, step in sends]
    existing = dict(Message.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", "status"))
    died = [key for key, status in existing.items() if status == choices.MessageStatus.SENDING]
    if died:
        # These runs are ours (run_locks): whoever marked the row sending died before the provider
        # answered. It may have gone out, so it is not sent again: it is in doubt, counted in the
        # admin, until a delivery report or a manager settles it.
        Message.objects.filter(idempotency_key__in=died, status=choices.MessageStatus.SENDING).update(
            status=choices.MessageStatus.IN_DOUBT, error=WORKER_DIED
        )
    # A row still queued never reached the provider (its connection failed): decided again.
    todo = {key for key in keys if existing.get(key, choices.MessageStatus.QUEUED) == choices.MessageStatus.QUEUED}
    contact_ids = {run.contact_id for (run, _step), key in zip(sends, keys, strict=True) if key in todo}
    consents = rules.consents_current(contact_ids=contact_ids)
    recent = rules.recent_sends(contact_ids=contact_ids, since=now - timedelta(days=7))
    results, rows = [], []
    for (run, step), key in zip(sends, keys, strict=True):
        if key not in todo:
            results.append(("next", None))
            continue
        contact, template = run.contact, step.template
        sent = recent.setdefault((contact.pk, template.channel), [])
        decision = rules.decide(
            contact=contact,
            channel=template.channel,
            purpose=template.purpose,
            consent=consents.get(contact.pk, {}),
            now=now,
            sent=sent,
        )
        if decision.defer_until is not None:
            results.append(("wait", decision.defer_until))
            continue
        if decision.send:
            sent.append(now)  # the caps count it: one contact may be in two of the chunk's runs
        language = contact.language if contact.language in (template.body or {}) else "en"
        subject, body = render(template=template, contact=contact, language=language)
        message = Message(
            contact=contact,
            channel=template.channel,
            template=template,
            run=run,
            status=choices.MessageStatus.QUEUED if decision.send else choices.MessageStatus.SKIPPED,
            skip_reason=decision.skip,
            idempotency_key=key,
            to=rules.address(contact, template.channel),
            language=language,
            subject=subject[:255],
            body=body,
        )
        rows.append(message)
        results.append(message)
    if rows:
        Message.objects.bulk_create(
            rows,
            update_conflicts=True,  # only rows still queued: the others were left out above
            unique_fields=["idempotency_key"],
            update_fields=["status", "skip_reason", "to", "language", "subject", "body", "template"],
        )
    return [
        result if not isinstance(result, Message)
        else ("send", result) if result.status == choices.MessageStatus.QUEUED else ("next", None)
        for result in results
    ]  # fmt: skip


def _deliver_many(deliveries: list[tuple], now: datetime, outcomes: dict) -> list[int]:
    """Send a round's queued outbox rows, one provider connection per channel. Returns the runs
    that go on (their message was sent or failed); a run whose message never reached the
    provider (no connection) keeps it queued and tries again later."""
    by_channel: dict[str, list] = {}
    for run, _step, message in deliveries:
        message.contact = run.contact
        by_channel.setdefault(message.channel, []).append(message)
    tried: set[int] = set()
    errors: dict[str, str] = {}
    for channel, messages in by_channel.items():
        done, error = _send_over_one_connection(channel, messages)
        tried |= done
        if error:
            errors[channel] = error
    go_on = []
    for run, _step, message in deliveries:
        if message.pk in tried:
            go_on.append(run.pk)
            continue
        reason = errors.get(message.channel) or Message.objects.values_list("error", flat=True).get(pk=message.pk)
        outcomes[run.pk] = _fail(run, _("Not sent: %(error)s") % {"error": reason or ""}, now)
        if run.status == choices.RunStatus.WAITING:  # the run retries it then
            Message.objects.filter(pk=message.pk, status=choices.MessageStatus.QUEUED).update(
                next_attempt_at=run.due_at
            )
    return go_on


class _Ledger:
    """The outbox side of a send loop. Each row is marked "sending" (with the time, one more
    attempt, and for email the Message-ID it will carry) and committed right before its provider
    call, and its outcome is written right after the call. A worker killed mid-chunk leaves at
    most the one row in flight in "sending" (found later and made "in doubt"); the rows after it
    stay queued. On PostgreSQL these commits do not wait for the WAL flush (a worker that dies
    loses nothing by it; only a database crash could), so the two writes cost little."""

    HEARTBEAT_SECONDS = 30

    def __init__(self, run_ids=()):
        self.run_ids = sorted({pk for pk in run_ids if pk is not None})
        self.beat_at = time.monotonic()
        self.async_commit = connection.vendor == "postgresql" and not connection.in_atomic_block
        if self.async_commit:
            with connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")

    def start(self, message: Message, provider_id: str = "") -> bool:
        """Mark `message` sending; False when it is no longer queued (then it is not sent)."""
        now = timezone.now()
        if self.run_ids and time.monotonic() - self.beat_at >= self.HEARTBEAT_SECONDS:
            self.beat_at = time.monotonic()
            WorkflowRun.objects.filter(pk__in=self.run_ids, status=choices.RunStatus.QUEUED).update(heartbeat_at=now)
        # Plain SQL: the ORM's update costs more CPU than the statement itself.
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Message._meta.db_table} SET status = %s, claimed_at = %s, attempts = attempts + 1, "
                "provider_id = CASE WHEN %s = '' THEN provider_id ELSE %s END WHERE id = %s AND status = %s",
                [
                    choices.MessageStatus.SENDING,
                    Message._meta.get_field("claimed_at").get_db_prep_save(now, connection),
                    provider_id,
                    provider_id[:128],
                    message.pk,
                    choices.MessageStatus.QUEUED,
                ],
            )
            return cursor.rowcount == 1

    def _write(self, message: Message, **fields) -> None:
        Message.objects.filter(pk=message.pk, status=choices.MessageStatus.SENDING).update(**fields)

    def sent(self, message: Message, provider_id: str) -> None:
        fields = {"status": choices.MessageStatus.SENT, "sent_at": timezone.now(), "next_attempt_at": None}
        if provider_id:
            fields["provider_id"] = provider_id[:128]
        self._write(message, **fields)

    def failed(self, message: Message, error: str) -> None:
        self._write(message, status=choices.MessageStatus.FAILED, error=error[:2000], next_attempt_at=None)

    def requeue(self, message: Message, error: str) -> None:
        """Refused for now (nothing went out): queued again; the run, or the sweep, retries it."""
        self._write(message, status=choices.MessageStatus.QUEUED, error=error[:2000], provider_id="")

    def in_doubt(self, message: Message, error: str) -> None:
        self._write(message, status=choices.MessageStatus.IN_DOUBT, error=error[:2000])

    def close(self) -> None:
        if self.async_commit:
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
                cursor.execute("RESET synchronous_commit")


def _send_over_one_connection(channel: str, messages: list[Message]) -> tuple[set[int], str]:
    """Send the messages in order over one connection. Returns the ids handed to the provider
    and settled (sent, failed for good, or in doubt) and, when it stopped early, why (the rest
    stay queued). What a refusal means comes from core.mail: a permanent one fails the message
    with the provider's reason and the loop goes on; a temporary one puts it back in the queue
    (its run retries it with a backoff); a lost answer leaves it in doubt, never sent again by
    itself."""
    tried: set[int] = set()
    try:
        sender = _EmailSender() if channel == choices.Channel.EMAIL else channels.backend_for(channel)
    except (channels.ProviderError, OSError) as exc:
        logger.warning("No %s connection: %s", channel, exc)
        return tried, mail.send_error_text(exc)
    ledger = _Ledger(message.run_id for message in messages)
    try:
        for message in messages:
            message_id = make_msgid(domain=DNS_NAME) if channel == choices.Channel.EMAIL else ""
            if not ledger.start(message, message_id):
                continue  # changed meanwhile (a duplicate task); never sent twice
            tried.add(message.pk)
            try:
                if channel == choices.Channel.EMAIL:
                    provider_id = sender.send(message, message_id)
                else:
                    provider_id = sender.send(to=message.to, body=message.body, subject=message.subject)
            except (channels.ProviderError, OSError) as exc:
                cause = exc.__cause__ if isinstance(exc, channels.ProviderError) and exc.__cause__ else exc
                kind = getattr(exc, "kind", None) or mail.send_error_kind(cause, connected=True)
                reason = mail.send_error_text(cause)
                if kind == mail.TEMPORARY:
                    ledger.requeue(message, reason)
                    tried.discard(message.pk)
                elif kind == mail.PERMANENT:
                    ledger.failed(message, reason)
                else:
                    ledger.in_doubt(message, reason)
                logger.warning("%s message %s not sent (%s): %s", channel, message.pk, kind, reason)
                if channel == choices.Channel.EMAIL and not channels.connection_usable(exc):
                    return tried, reason
            else:
                ledger.sent(message, provider_id)
        return tried, ""
    finally:
        ledger.close()
        if channel == choices.Channel.EMAIL:
            sender.close()


def email_html(message: Message, *, unsubscribe: str) -> str:
    """The HTML part of a message's email, in its language and direction; the number runs that
    render() isolated are <bdi dir="ltr"> elements."""
    with translation.override(message.language or "en"):
        return render_to_string(
            "automation/email.html",
            {
                "subject": message.subject,
                "paragraphs": [bidi.isolates_as_html(p) for p in message.body.split("\n\n")],
                "unsubscribe_url": unsubscribe,
                "rtl": translation.get_language_bidi(),
                "language": message.language,
            },
        )


class _EmailSender:
    """One SMTP session (Django's email backend) for a chunk's mail."""

    def __init__(self):
        self.connection = channels.email_connection()

    def send(self, message: Message, message_id: str = "") -> str:
        url = unsubscribe_url(message.contact, message.channel)
        html = email_html(message, unsubscribe=url)
        return channels.send_email(
            to=message.to,
            subject=message.subject,
            text=message.body,
            html=html,
            unsubscribe_url=url,
            connection=self.connection,
            message_id=message_id,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.connection.close()


def render(*, template: MessageTemplate, contact: Contact, language: str) -> tuple[str, str]:
    values = {
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "full_name": f"{contact.first_name} {contact.last_name}".strip(),
        "referral_code": contact.referral_code,
        "referral_link": referral_link(contact),
        "unsubscribe_url": unsubscribe_url(contact, template.channel),
        "site_url": settings.SITE_URL,
    }
    subject = (template.subject or {}).get(language) or (template.subject or {}).get("en", "")
    body = template.body.get(language) or template.body.get("en", "")
    subject, body = subject.format_map(values), body.format_map(values)
    if get_language_info(language)["bidi"]:  # phone numbers, dates and codes keep their order
        subject, body = bidi.isolate_numbers(subject), bidi.isolate_numbers(body)
    return subject, body


# Unsubscribe and delivery reports


def unsubscribe_url(contact: Contact, channel: str) -> str:
    token = _unsubscribe_signer.sign(f"{contact.pk}:{channel}")
    return settings.SITE_URL + _reverse_one("automation:unsubscribe", token)


_PLACEHOLDER = "SAFARARG0"


@functools.lru_cache(maxsize=64)
def _url_around(name: str, _prefix: str, _urlconf, _language) -> tuple[str, str]:
    before, _placeholder, after = reverse(name, args=[_PLACEHOLDER]).partition(_PLACEHOLDER)
    return before, after


def _reverse_one(name: str, value: str) -> str:
    """reverse(name, args=[value]) for a URL with one argument, resolved once per URL and then
    filled in (a chunk builds two links per message; reverse() was a fifth of a send's CPU).
    Quoted as reverse() quotes."""
    if "/" in value:
        return reverse(name, args=[value])  # which no <str:> argument matches: reverse() says so
    before, after = _url_around(name, get_script_prefix(), get_urlconf(), translation.get_language())
    return before + quote(value, safe="!$&'()*+,;=/~:@") + after


def unsubscribe_read(token: str) -> tuple[Contact, str] | None:
    try:
        contact_id, channel = _unsubscribe_signer.unsign(token).split(":", 1)
    except (signing.BadSignature, ValueError):
        return None
    # A link sent before a merge names the merged-away id: it means the contact that absorbed it.
    contact = crm_selectors.contact_resolve(int(contact_id)) if contact_id.isdigit() else None
    if contact is None or channel not in choices.Channel.values:
        return None
    return contact, channel


@transaction.atomic
def unsubscribe(*, contact: Contact, channel: str, ip_address: str | None = None) -> bool:
    """Withdraw marketing consent for the channel (RFC 8058 one-click). Idempotent."""
    current = crm_selectors.consent_current(contact=contact).get((channel, choices.Purpose.MARKETING))
    if current is not None and current.status == ConsentStatus.WITHDRAWN:
        return False
    if contact.erased_at:
        return False
    crm_services.consent_record(
        contact=contact,
        channel=channel,
        purpose=choices.Purpose.MARKETING,
        status=ConsentStatus.WITHDRAWN,
        source=ConsentSource.UNSUBSCRIBE,
        ip_address=ip_address,
        proof="one-click unsubscribe",
    )
    return True


def delivery_report(*, provider_id: str, status: str, error: str = "") -> int:
    """A provider's webhook: delivered or failed. Returns the number of messages updated. A
    message in doubt (its sender died before recording the answer; email carries the Message-ID
    stored before the call) is settled by it: delivered means it went out, once."""
    if status not in ("delivered", "failed"):
        raise DomainError(_("Status must be delivered or failed."), code="status", field="status")
    rows = Message.objects.filter(provider_id=provider_id).exclude(provider_id="")
    if status == "delivered":
        return rows.update(
            status=choices.MessageStatus.DELIVERED,
            delivered_at=timezone.now(),
            sent_at=Coalesce("sent_at", "claimed_at"),
        )
    return rows.update(status=choices.MessageStatus.FAILED, error=error[:2000])


# Messages in doubt, and messages waiting outside a run (resent, or a sweep's leftovers)

WORKER_DIED = "The worker stopped while handing it to the provider; it may have gone out."


def messages_send(*, message_ids: list[int], now: datetime | None = None) -> dict[str, int]:
    """Send queued outbox rows outside their run's chunk (a manager's resend, or a retry the
    sweep found due). Consent and the contact's erasure are checked again (no caps: the message
    was decided before); quiet hours and weekends defer it. A temporary refusal sets
    `next_attempt_at` by the message's attempts, and after MAX_ATTEMPTS it fails. Returns counts."""
    now = now or timezone.now()
    rows = list(
        Message.objects.select_related("contact", "template")
        .filter(pk__in=message_ids, status=choices.MessageStatus.QUEUED)
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("pk")
    )
    counts = {"sent": 0, "deferred": 0, "skipped": 0, "retry": 0, "failed": 0, "in_doubt": 0}
    consents = rules.consents_current(contact_ids={m.contact_id for m in rows})
    by_channel: dict[str, list[Message]] = {}
    for message in rows:
        template_purpose = message.template.purpose if message.template_id else choices.Purpose.MARKETING
        decision = rules.decide(
            contact=message.contact,
            channel=message.channel,
            purpose=template_purpose,
            consent=consents.get(message.contact_id, {}),
            now=now,
            sent=[],
        )
        if decision.defer_until is not None:
            Message.objects.filter(pk=message.pk).update(next_attempt_at=decision.defer_until)
            counts["deferred"] += 1
        elif not decision.send:
            Message.objects.filter(pk=message.pk, status=choices.MessageStatus.QUEUED).update(
                status=choices.MessageStatus.SKIPPED, skip_reason=decision.skip, next_attempt_at=None
            )
            counts["skipped"] += 1
        else:
            by_channel.setdefault(message.channel, []).append(message)
    for channel, messages in by_channel.items():
        _send_over_one_connection(channel, messages)
    settled = dict(
        Message.objects.filter(pk__in=[m.pk for ms in by_channel.values() for m in ms]).values_list("pk", "status")
    )
    for message in (m for ms in by_channel.values() for m in ms):
        status = settled.get(message.pk)
        if status == choices.MessageStatus.QUEUED:  # refused for now, or never reached
            attempts = Message.objects.filter(pk=message.pk).values_list("attempts", flat=True).first() or 0
            if attempts >= MAX_ATTEMPTS:
                Message.objects.filter(pk=message.pk, status=choices.MessageStatus.QUEUED).update(
                    status=choices.MessageStatus.FAILED,
                    next_attempt_at=None,
                    error=Concat(Value(_("Failed after %(n)s attempts: ") % {"n": attempts}), "error"),
                )
                counts["failed"] += 1
            else:
                Message.objects.filter(pk=message.pk).update(
                    next_attempt_at=now + timedelta(minutes=5 * 2 ** max(attempts, 1))
                )
                counts["retry"] += 1
        elif status in counts:
            counts[status] += 1
    return counts


@transaction.atomic
def messages_resend(*, message_ids: list[int], actor) -> int:
    """A manager sends messages in doubt again (they may get it twice: the admin says so).
    They are queued now and sent by a task after commit (or by the sweep if that task is lost)."""
    from .tasks import messages_send_task

    ids = list(
        Message.objects.select_for_update()
        .filter(pk__in=message_ids, status=choices.MessageStatus.IN_DOUBT)
        .values_list("pk", flat=True)
    )
    if not ids:
        return 0
    Message.objects.filter(pk__in=ids).update(
        status=choices.MessageStatus.QUEUED, next_attempt_at=timezone.now(), provider_id="", error=""
    )
    audit_log_record(actor=actor, action="message.resend", obj=Message.objects.get(pk=ids[0]), data={"messages": ids})
    transaction.on_commit(lambda: messages_send_task.delay(ids))
    return len(ids)


@transaction.atomic
def messages_drop(*, message_ids: list[int], actor) -> int:
    """A manager settles messages in doubt as not to be sent (skipped: dropped)."""
    ids = list(
        Message.objects.select_for_update()
        .filter(pk__in=message_ids, status=choices.MessageStatus.IN_DOUBT)
        .values_list("pk", flat=True)
    )
    if ids:
        Message.objects.filter(pk__in=ids).update(
            status=choices.MessageStatus.SKIPPED, skip_reason=choices.SkipReason.DROPPED, next_attempt_at=None
        )
        audit_log_record(actor=actor, action="message.drop", obj=Message.objects.get(pk=ids[0]), data={"messages": ids})
    return len(ids)


def messages_sweep(*, now: datetime | None = None, limit: int = 500) -> dict[str, int]:
    """Beat, every minute. (1) A row left "sending" longer than the claim timeout whose run no
    worker holds (run_locks) lost its worker mid-call: it becomes in doubt, with why. (2) Queued
    rows outside a live run whose next attempt is due (a resend whose task was lost, a retry) are
    sent. Returns what it did."""
    now = now or timezone.now()
    stuck = list(
        Message.objects.filter(status=choices.MessageStatus.SENDING, claimed_at__lte=now - claim_timeout()).values_list(
            "pk", "run_id"
        )[:limit]
    )
    in_doubt = 0
    if stuck:
        run_ids = sorted({run_id for _pk, run_id in stuck if run_id is not None})
        with run_locks(run_ids) as free:
            ids = [pk for pk, run_id in stuck if run_id is None or run_id in free]
            in_doubt = Message.objects.filter(pk__in=ids, status=choices.MessageStatus.SENDING).update(
                status=choices.MessageStatus.IN_DOUBT, error=WORKER_DIED
            )
    live = WorkflowRun.objects.filter(
        pk=OuterRef("run_id"), status__in=[choices.RunStatus.WAITING, choices.RunStatus.QUEUED]
    )
    due = list(
        Message.objects.filter(status=choices.MessageStatus.QUEUED, next_attempt_at__lte=now)
        .exclude(Exists(live))
        .values_list("pk", flat=True)[:limit]
    )
    counts = messages_send(message_ids=due, now=now) if due else {}
    return {"in_doubt": in_doubt, **counts}


# Referral program


def referral_link(contact: Contact) -> str:
    return settings.SITE_URL + _reverse_one("automation:referral", contact.referral_code)


@transaction.atomic
def referral_record(*, referred: Contact, referral_code: str) -> Referral | None:
    """Attribute a new contact to the contact whose code brought them (once; never oneself)."""
    referrer = crm_selectors.contact_by_referral_code(referral_code)
    if referrer is None or referrer.pk == referred.pk or Referral.objects.filter(referred=referred).exists():
        return None
    if referred.referred_by_id is None:
        Contact.objects.filter(pk=referred.pk).update(referred_by=referrer)
    return Referral.objects.create(referrer=referrer, referred=referred)


@transaction.atomic
def referral_reward(*, referral: Referral) -> Reward | None:
    """The friend reached the reward stage: the referrer gets a discount code and moves to advocacy."""
    referral = Referral.objects.select_for_update().get(pk=referral.pk)
    if referral.rewarded_at is not None:
        return None
    reward = Reward.objects.create(
        referral=referral,
        contact_id=referral.referrer_id,
        kind=Reward.Kind.DISCOUNT,
        code="REF-" + secrets.token_hex(4).upper(),
        amount=settings.AUTOMATION_REFERRAL_REWARD_AMOUNT,
    )
    referral.rewarded_at = timezone.now()
    referral.save(update_fields=["rewarded_at"])
    advocacy = journey_selectors.stage_by_slug(journey_slug="lifecycle", stage_slug="advocacy")
    if advocacy is not None:
        with contextlib.suppress(DomainError):  # already there
            journey_services.enrollment_set_stage(
                contact=referral.referrer,
                journey=advocacy.journey,
                stage=advocacy,
                source=TransitionSource.AUTOMATION,
                reason=_("Referred a friend who became a customer"),
            )
    return reward


# Workflows

WORKFLOW_FIELDS = (
    "name",
    "slug",
    "description",
    "trigger",
    "trigger_stage",
    "trigger_event",
    "segment",
    "reentry",
    "goal_stage",
    "exit_event",
    "is_active",
)
STEP_FIELDS = (
    "kind",
    "wait_minutes",
    "wait_until",
    "template",
    "survey",
    "stage",
    "branch_event",
    "branch_window_minutes",
    "branch_goto",
)


def workflow_steps_check(*, steps: list[WorkflowStep]) -> None:
    """The rules over a workflow's steps as a whole (each step's own rules are in its clean()):
    at least one step, one step per order, and every branch jumps forward to a step that exists,
    so no workflow can loop."""
    if not steps:
        raise ValidationError({"steps": _("A workflow needs at least one step.")})
    orders = [step.order for step in steps]
    duplicates = sorted({order for order in orders if orders.count(order) > 1})
    if duplicates:
        raise ValidationError({"steps": _("Two steps have the order %(order)s.") % {"order": duplicates[0]}})
    for step in steps:
        if step.kind != choices.StepKind.BRANCH or step.branch_goto is None:
            continue
        if step.branch_goto <= step.order:
            raise ValidationError(
                {"steps": _("Step %(order)s goes back to step %(goto)s; a workflow cannot loop.")
                 % {"order": step.order, "goto": step.branch_goto}}
            )  # fmt: skip
        if step.branch_goto not in orders:
            raise ValidationError(
                {"steps": _("Step %(order)s goes to step %(goto)s, which does not exist.")
                 % {"order": step.order, "goto": step.branch_goto}}
            )  # fmt: skip


@transaction.atomic
def workflow_save(*, workflow: Workflow | None = None, fields: dict, steps: list[dict] | None = None) -> Workflow:
    """Create a workflow, or change one, with its steps in one transaction. `steps` (dicts of
    order and step fields) replaces the steps; None keeps them. Steps are matched by order, so a
    kept step keeps its id, which the outbox keys of runs in flight use. Raises ValidationError."""
    creating = workflow is None
    workflow = workflow or Workflow()
    for name, value in fields.items():
        if name not in WORKFLOW_FIELDS:
            raise ValueError(f"unknown workflow field {name}")
        setattr(workflow, name, value)
    workflow.full_clean()
    if steps is None:
        if creating:
            raise ValidationError({"steps": _("A workflow needs at least one step.")})
        workflow.save()
        return workflow
    existing = {} if creating else {step.order: step for step in workflow.steps.all()}
    wanted = []
    for data in steps:
        step = existing.get(data["order"]) or WorkflowStep(order=data["order"])
        for name in STEP_FIELDS:
            setattr(step, name, data.get(name, WorkflowStep._meta.get_field(name).get_default()))
        step.full_clean(exclude=["workflow"], validate_unique=False, validate_constraints=False)
        wanted.append(step)
    workflow_steps_check(steps=wanted)
    workflow.save()
    kept = {step.order for step in wanted}
    WorkflowStep.objects.filter(workflow=workflow).exclude(order__in=kept).delete()
    for step in wanted:
        step.workflow = workflow
        step.save()
    return workflow


@dataclass
class StartResult:
    contact: int
    status: str  # started, skipped or rejected
    run: int | None = None
    reason: str = ""


def workflow_start(*, workflow: Workflow, contact_ids: list[int]) -> list[StartResult]:
    """Start a workflow by hand for these contacts; each gets a result saying what happened."""
    contacts = Contact.objects.in_bulk(contact_ids)
    results = []
    for contact_id in dict.fromkeys(contact_ids):
        contact = contacts.get(contact_id)
        if contact is None:
            results.append(StartResult(contact_id, "rejected", reason=_("No such contact.")))
        elif not workflow.is_active:
            results.append(StartResult(contact_id, "skipped", reason=_("The workflow is not active.")))
        elif contact.erased_at:
            results.append(StartResult(contact_id, "skipped", reason=_("The contact was erased.")))
        elif (run := run_start(workflow=workflow, contact=contact)) is None:
            results.append(
                StartResult(contact_id, "skipped", reason=_("Already running, or its re-entry mode does not allow it."))
            )
        else:
            results.append(StartResult(contact_id, "started", run=run.pk))
    return results
