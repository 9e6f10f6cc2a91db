"""History import: `POST /api/v1/transitions/backfill/`, stage moves with their original times.

Three stages, as journeys.ingest:
- read and check (`clean_move`): plain validation per item (the same contact reference and time
  checks as events), no serializer per item;
- contacts (`journeys.ingest.contacts_resolve`): found by id, external id, email or phone in one
  query, the missing ones created in bulk as events create them (source "import");
- write (`journeys.services.transitions_backfill`): the moves merged into the ledger in time
  order, in a fixed number of statements per batch.

One transaction per request, with per-item results: each item is stored, a duplicate or rejected
with its reason, and nothing else is half-written. A rejected item leaves the others alone; an
error of the database (or a crash) rolls the whole request back, contacts included, so a retry
with the same idempotency keys finds nothing stored and nothing to repeat. It was one savepoint
and one move-service call per move: 20-27 moves a second, and a 617-move request cut by
gunicorn's timeout with 394 moves saved (issue 17).
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.choices import ContactSource
from crm.selectors import ContactRef

from . import services
from .ingest import ItemResult, _clean_contact, _Invalid, _storable, contacts_resolve, parse_time
from .models import Journey, Stage

MOVE_FIELDS = frozenset({"contact", "create_contact", "journey", "stage", "at", "reason", "idempotency_key"})
MAX_REASON = 500
# PostgreSQL's codes for a deadlock and a serialization failure: the request is tried again.
RETRY_SQLSTATES = frozenset({"40P01", "40001"})


@dataclass
class _Move:
    index: int
    ref: ContactRef
    create_contact: bool
    new_contact: dict
    journey_id: int
    stage_id: int
    at: datetime
    reason: str
    key: str | None


@dataclass(frozen=True)
class _Setup:
    journeys: dict[str, int]  # slug -> pk
    stages: dict[tuple[int, str], int]  # (journey, slug) -> pk
    orders: dict[int, int]  # stage -> order
    last_orders: dict[int, int]  # journey -> highest stage order


def _setup() -> _Setup:
    """Journeys and stages, read fresh (two small queries): a stage added a second ago is known."""
    journeys = dict(Journey.objects.values_list("slug", "pk"))
    stages, orders, last_orders = {}, {}, {}
    for pk, journey_id, slug, order in Stage.objects.values_list("pk", "journey_id", "slug", "order"):
        stages[(journey_id, slug)] = pk
        orders[pk] = order
        last_orders[journey_id] = max(order, last_orders.get(journey_id, order))
    return _Setup(journeys, stages, orders, last_orders)


def clean_move(index: int, raw, *, now: datetime, setup: _Setup) -> _Move | dict:
    """A valid move, or its errors by field."""
    if not isinstance(raw, dict):
        return {"non_field_errors": [_("Each move is a JSON object.")]}
    errors: dict = {}
    for name in raw.keys() - MOVE_FIELDS:
        errors[name] = [_("Unknown field.")]
    if "contact" in raw:
        ref, new_contact = _clean_contact(raw["contact"], errors)
    else:
        ref, new_contact = None, {}
        errors["contact"] = [_("This field is required.")]
    create_contact = raw.get("create_contact", True)
    if not isinstance(create_contact, bool):
        errors["create_contact"] = [_("Must be true or false.")]
    journey_slug = raw.get("journey")
    journey_id = setup.journeys.get(journey_slug) if isinstance(journey_slug, str) else None
    if journey_slug is None:
        errors["journey"] = [_("This field is required.")]
    elif journey_id is None:
        errors["journey"] = [_("Unknown journey.")]
    stage_slug = raw.get("stage")
    stage_id = setup.stages.get((journey_id, stage_slug)) if isinstance(stage_slug, str) else None
    if stage_slug is None:
        errors["stage"] = [_("This field is required.")]
    elif journey_id is not None and stage_id is None:
        errors["stage"] = [_("Unknown stage of this journey.")]
    at = None
    if raw.get("at") is None:
        errors["at"] = [_("This field is required.")]
    else:
        try:
            at = parse_time(raw["at"], now=now)
        except _Invalid as exc:
            errors["at"] = [str(exc)]
    reason = raw.get("reason", "")
    if reason is None:
        reason = ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON or not _storable(reason):
        errors["reason"] = [_("Give text of at most %(limit)d characters.") % {"limit": MAX_REASON}]
    key = raw.get("idempotency_key")
    if key is not None:
        if not isinstance(key, str) or not 1 <= len(key.strip()) <= 100 or not _storable(key):
            errors["idempotency_key"] = [_("Give text of 1 to 100 characters.")]
        else:
            key = key.strip()
    if errors:
        return errors
    return _Move(index, ref, create_contact, new_contact, journey_id, stage_id, at, reason.strip(), key)


def _retryable(exc: Exception) -> bool:
    if isinstance(exc, IntegrityError):
        # A concurrent request stored the same idempotency key, or enrolled or created the same
        # person, between our read and our write: the next attempt finds its rows.
        return True
    return getattr(exc.__cause__, "sqlstate", None) in RETRY_SQLSTATES


def transitions_backfill(*, items: list, actor) -> list[ItemResult]:
    """Import a batch of historical moves; one result per item, in order (id: the transition's)."""
    now = timezone.now()
    setup = _setup()
    results: list[ItemResult | None] = [None] * len(items)
    valid: list[_Move] = []
    for index, raw in enumerate(items):
        cleaned = clean_move(index, raw, now=now, setup=setup)
        if isinstance(cleaned, dict):
            results[index] = ItemResult(index, "rejected", errors=cleaned)
        else:
            valid.append(cleaned)
    if not valid:
        return results
    for attempt in range(3):
        try:
            with transaction.atomic():
                outcome: list[ItemResult] = []
                contact_ids = contacts_resolve(valid, outcome, actor=actor, source=ContactSource.IMPORT)
                moves = [
                    services.BackfillMove(
                        index=m.index,
                        contact_id=contact_ids[m.index],
                        journey_id=m.journey_id,
                        stage_id=m.stage_id,
                        at=m.at,
                        reason=m.reason,
                        key=m.key,
                    )
                    for m in valid
                    if m.index in contact_ids
                ]
                services.transitions_backfill(
                    moves=moves, actor=actor, stage_orders=setup.orders, last_orders=setup.last_orders
                )
            break
        except (IntegrityError, OperationalError) as exc:
            if attempt == 2 or not _retryable(exc):
                raise
    for result in outcome:
        results[result.index] = result
    for move in moves:
        results[move.index] = ItemResult(
            move.index, move.status, event_id=move.transition_id, contact_id=move.contact_id, errors=move.errors
        )
    return results
