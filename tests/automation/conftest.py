"""Shared helpers for the automation tests: a template per channel, workflows written through
the service, and consent rows at known times."""

from datetime import UTC, datetime

import pytest

from automation import services
from automation.models import MessageTemplate
from tests.factories import ConsentFactory

# A Wednesday, 12:00 UTC: inside the default sending hours for a UTC contact.
NOON = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def make_template(slug="hello", channel="email", purpose="marketing", **fields) -> MessageTemplate:
    defaults = {
        "name": slug.title(),
        "subject": {"en": "Hello {first_name}"} if channel == "email" else {},
        "body": {"en": "Hello {first_name}, from {site_url}", "fa": "سلام {first_name}"},
    }
    return MessageTemplate.objects.create(slug=slug, channel=channel, purpose=purpose, **{**defaults, **fields})


def make_workflow(steps, slug="wf", **fields):
    """steps: dicts with `kind` and the step's fields; orders 1, 2, 3... unless given."""
    fields = {"name": slug.title(), "slug": slug, "trigger": "manual", **fields}
    rows = [{"order": i, **step} for i, step in enumerate(steps, start=1)]
    return services.workflow_save(fields=fields, steps=rows)


def consent(contact, channel="email", purpose="marketing", status="granted", source="form", at=None):
    return ConsentFactory(
        contact=contact,
        channel=channel,
        purpose=purpose,
        status=status,
        source=source,
        occurred_at=at or datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.fixture
def template(db):
    return make_template()
