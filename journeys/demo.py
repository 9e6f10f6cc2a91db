"""Demo events: each demo contact walks part of the way along the customer lifecycle, and the
events go through the real ingestion service, so the stage rules build the ledger as they would
in production."""

import random
from datetime import timedelta

from django.utils import timezone

from . import choices
from .ingest import events_ingest

FIRST_TOUCHES = [("instagram-ad", "ad_click"), ("search-ad", "ad_click"), ("blog-post", "page_view"),
                 ("referral-link", "page_view"), ("newsletter", "email_click")]  # fmt: skip


def contact_story(rng: random.Random, *, contact_id: int, start, now) -> list[dict]:
    """One contact's events, oldest first, stopping where many real customers stop."""
    events = []
    at = start

    def add(event_type, touchpoint=None, **extra):
        nonlocal at
        if at > now:
            return False
        event = {"contact": {"id": contact_id}, "type": event_type, "occurred_at": at.isoformat(), **extra}
        if touchpoint:
            event["touchpoint"] = touchpoint
        events.append(event)
        at += timedelta(hours=rng.uniform(2, 24 * 12))
        return at <= now

    touchpoint, event_type = rng.choice(FIRST_TOUCHES)
    for _ in range(rng.randint(1, 3)):
        if not add(event_type, touchpoint):
            return events
        event_type, touchpoint = "page_view", rng.choice(["blog-post", "product-page", "instagram-ad"])
    if rng.random() > 0.7 or not add(rng.choice(["signup", "product_view"]), "product-page"):
        return events
    if rng.random() > 0.55 or not add("cart_add", "cart"):
        return events
    value = round(rng.uniform(15, 320), 2)
    if rng.random() > 0.6:
        add("cart_abandon", "cart", value=value)
        return events
    if not add("purchase", rng.choice(["checkout", "checkout", "store-visit"]), value=value):
        return events
    at += timedelta(days=rng.uniform(15, 60))
    if rng.random() > 0.4 or not add("purchase", "checkout", value=round(rng.uniform(15, 320), 2),
                                     properties={"repeat": True}):  # fmt: skip
        return events
    if rng.random() < 0.3:
        add(rng.choice(["review", "referral"]), rng.choice(["review-site", "referral-link"]))
    return events


def seed_journey_events(*, contact_ids: list[int], days: int = 180, seed: int = 7, batch: int = 1000) -> int:
    """Post the demo stories through the ingestion service; returns the number of events stored."""
    rng = random.Random(seed)
    now = timezone.now()
    items = []
    for contact_id in contact_ids:
        start = now - timedelta(days=rng.uniform(1, days))
        items.extend(contact_story(rng, contact_id=contact_id, start=start, now=now))
    items.sort(key=lambda item: item["occurred_at"])
    stored = 0
    for offset in range(0, len(items), batch):
        results = events_ingest(items=items[offset : offset + batch], source=choices.EventSource.IMPORT)
        stored += sum(result.status == "stored" for result in results)
    return stored
