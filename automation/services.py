"""Writes for automation: start runs, claim the due ones, advance them step by step, and send
messages through the outbox.

Sending never happens twice for a (run, step): the outbox row is written and committed under the
unique key `run:<id>:step:<id>` in status "sending" before the provider is called, and marked sent
after. A worker that dies in between leaves the row in "sending"; a retry finds it and does not
send again (at most once; the row is marked interrupted so the loss is visible)."""

import contextlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext as _

from core.exceptions import DomainError
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
        stale = list(
            WorkflowRun.objects.select_for_update(skip_locked=True)
            .filter(status=choices.RunStatus.QUEUED, due_at__lte=now - claim_timeout())
            .values_list("pk", flat=True)[: max(limit - len(due), 0)]
        )
        claimed = due + stale
        WorkflowRun.objects.filter(pk__in=claimed).update(status=choices.RunStatus.QUEUED, due_at=now)
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
    """Take a claimed run as far as it can go now. Returns its status afterwards."""
    now = now or timezone.now()
    for _guard in range(50):  # a workflow has far fewer steps; no run spins forever
        outcome = _advance_one(run_id, now)
        if outcome != "next":
            return outcome
    return "looping"


def _advance_one(run_id: int, now: datetime) -> str:
    """One step: returns "next" to go on, or the run's resting status."""
    with transaction.atomic():
        run = (
            WorkflowRun.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("workflow__goal_stage", "contact")
            .filter(pk=run_id, status=choices.RunStatus.QUEUED)
            .first()
        )
        if run is None:
            return "not_claimed"
        if _exit_reached(run, now):
            return _finish(run, choices.RunStatus.EXITED, now)
        step = run.workflow.steps.filter(order__gte=run.step_order).order_by("order").first()
        if step is None:
            return _finish(run, choices.RunStatus.COMPLETED, now)
        try:
            # A savepoint: a database error in the step must not break the run's own transaction.
            with transaction.atomic():
                result = _do_step(run, step, now)
        except DomainError as exc:
            result = ("next", None)
            logger.info("Run %s step %s: %s", run.pk, step.order, exc.message)
        except Exception as exc:  # a provider or bug: retry later, then give up
            return _fail(run, exc, now)
        action, value = result
        if action == "busy":
            return "busy"  # another worker is sending this step right now; it moves the run on
        if action == "wait":
            run.status, run.due_at = choices.RunStatus.WAITING, value
            run.save(update_fields=["status", "due_at", "attempts", "last_error"])
            return run.status
        if action == "send":
            message_id = value
        else:
            _go_to(run, value if action == "goto" else None, step, now)
            return "next"
    # Outside the transaction: the outbox row is committed, now call the provider.
    message_deliver(message_id=message_id)
    with transaction.atomic():
        run = WorkflowRun.objects.select_for_update().get(pk=run_id)
        if run.status != choices.RunStatus.QUEUED or run.step_order != step.order:
            return "not_claimed"  # a duplicate task moved it on meanwhile; never move it back
        _go_to(run, None, step, now)
    return "next"


def _go_to(run: WorkflowRun, order: int | None, step: WorkflowStep, now: datetime) -> None:
    if order is None:
        following = run.workflow.steps.filter(order__gt=step.order).order_by("order").values_list("order", flat=True)
        order = following.first()
    run.step_order = order if order is not None else step.order + 1
    run.step_started_at = now
    run.attempts = 0
    run.save(update_fields=["step_order", "step_started_at", "attempts"])


def _finish(run: WorkflowRun, status: str, now: datetime) -> str:
    run.status, run.finished_at, run.due_at = status, now, None
    run.save(update_fields=["status", "finished_at", "due_at"])
    return status


def _fail(run: WorkflowRun, exc: Exception, now: datetime) -> str:
    run.attempts += 1
    run.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if run.attempts >= MAX_ATTEMPTS:
        run.status, run.finished_at = choices.RunStatus.FAILED, now
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
    if kind == choices.StepKind.SEND:
        return _prepare_send(run, step, now)
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


def _prepare_send(run: WorkflowRun, step: WorkflowStep, now: datetime):
    """Write the outbox row for this (run, step), skipped or to send; or defer the run."""
    key = f"run:{run.pk}:step:{step.pk}"
    existing = Message.objects.filter(idempotency_key=key).first()
    if existing is not None:
        if existing.status == choices.MessageStatus.SENDING:
            # message_deliver holds this row's lock while it talks to the provider: a locked row
            # is being sent by a live worker (this task is a duplicate), an unlocked one was left
            # by a worker that died. (SQLite has no row locks; it runs one worker at a time.)
            unlocked = Message.objects.select_for_update(skip_locked=True).filter(
                pk=existing.pk, status=choices.MessageStatus.SENDING
            )
            if not unlocked.exists():
                return ("busy", None)
            unlocked.update(status=choices.MessageStatus.SKIPPED, skip_reason=choices.SkipReason.INTERRUPTED)
        return ("next", None)  # handled before (this is a retry or a duplicate task)
    message = message_prepare(contact=run.contact, template=step.template, key=key, run=run, now=now)
    if isinstance(message, datetime):
        return ("wait", message)
    if message.status == choices.MessageStatus.SENDING:
        return ("send", message.pk)
    return ("next", None)


def message_prepare(*, contact: Contact, template: MessageTemplate, key: str, run=None, now=None):
    """Check the rules and write the outbox row: status "sending" when it may go, "skipped" with
    its reason when not. Returns the time to retry instead when quiet hours or a weekend defer it."""
    now = now or timezone.now()
    decision = rules.decide(
        contact=contact,
        channel=template.channel,
        purpose=template.purpose,
        consent=crm_selectors.consent_current(contact=contact),
        now=now,
    )
    if decision.defer_until is not None:
        return decision.defer_until
    language = contact.language if contact.language in (template.body or {}) else "en"
    subject, body = render(template=template, contact=contact, language=language)
    return Message.objects.create(
        contact=contact,
        channel=template.channel,
        template=template,
        run=run,
        status=choices.MessageStatus.SENDING if decision.send else choices.MessageStatus.SKIPPED,
        skip_reason=decision.skip,
        idempotency_key=key,
        to=rules.address(contact, template.channel),
        language=language,
        subject=subject[:255],
        body=body,
    )


def message_deliver(*, message_id: int) -> str:
    """Call the provider for an outbox row in status "sending" (committed), then record the outcome.
    The row stays locked during the call, so a duplicate task can tell a live send from a dead one."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("contact")
            .filter(pk=message_id, status=choices.MessageStatus.SENDING)
            .first()
        )
        if message is None:
            return Message.objects.filter(pk=message_id).values_list("status", flat=True).first() or ""
        return _deliver(message)


def _deliver(message: Message) -> str:
    try:
        if message.channel == choices.Channel.EMAIL:
            with translation.override(message.language or "en"):
                html = render_to_string(
                    "automation/email.html",
                    {
                        "subject": message.subject,
                        "paragraphs": [escape(p) for p in message.body.split("\n\n")],
                        "unsubscribe_url": unsubscribe_url(message.contact, message.channel),
                        "rtl": translation.get_language_bidi(),
                        "language": message.language,
                    },
                )
            provider_id = channels.send_email(
                to=message.to,
                subject=message.subject,
                text=message.body,
                html=html,
                unsubscribe_url=unsubscribe_url(message.contact, message.channel),
            )
        else:
            provider_id = channels.backend_for(message.channel).send(
                to=message.to, body=message.body, subject=message.subject
            )
    except (channels.ProviderError, OSError) as exc:
        Message.objects.filter(pk=message.pk).update(status=choices.MessageStatus.FAILED, error=str(exc)[:2000])
        return choices.MessageStatus.FAILED
    Message.objects.filter(pk=message.pk).update(
        status=choices.MessageStatus.SENT, sent_at=timezone.now(), provider_id=(provider_id or "")[:128]
    )
    return choices.MessageStatus.SENT


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
    return subject.format_map(values), body.format_map(values)


# Unsubscribe and delivery reports


def unsubscribe_url(contact: Contact, channel: str) -> str:
    token = _unsubscribe_signer.sign(f"{contact.pk}:{channel}")
    return settings.SITE_URL + reverse("automation:unsubscribe", args=[token])


def unsubscribe_read(token: str) -> tuple[Contact, str] | None:
    try:
        contact_id, channel = _unsubscribe_signer.unsign(token).split(":", 1)
    except (signing.BadSignature, ValueError):
        return None
    contact = Contact.objects.filter(pk=contact_id).first()
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
    """A provider's webhook: delivered or failed. Returns the number of messages updated."""
    if status not in ("delivered", "failed"):
        raise DomainError(_("Status must be delivered or failed."), code="status", field="status")
    rows = Message.objects.filter(provider_id=provider_id).exclude(provider_id="")
    if status == "delivered":
        return rows.update(status=choices.MessageStatus.DELIVERED, delivered_at=timezone.now())
    return rows.update(status=choices.MessageStatus.FAILED, error=error[:2000])


# Referral program


def referral_link(contact: Contact) -> str:
    return settings.SITE_URL + reverse("automation:referral", args=[contact.referral_code])


@transaction.atomic
def referral_record(*, referred: Contact, referral_code: str) -> Referral | None:
    """Attribute a new contact to the contact whose code brought them (once; never oneself)."""
    referrer = Contact.objects.filter(referral_code=referral_code.strip().upper(), erased_at__isnull=True).first()
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
