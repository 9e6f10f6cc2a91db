"""Hooks through which higher apps take part in what crm does to a contact, so that crm
never imports them (see docs/architecture.md, "Layers").

- timeline: providers yielding the entries of the 360-degree timeline. Each takes contact,
  limit, before and user: given a user, it yields only what that user may see (None: all).
- merge: handlers that move (or reconcile) their rows from the merged-away contact.
  After they run, every remaining foreign key to the loser is moved to the winner.
- merge_rules: how a merge treats each relation to Contact, declared by the app that owns the
  model ("app.Model.field" -> MOVE, KEEP or the key of the handler that reconciles it). A check
  (crm.checks) refuses a relation without a rule, so a new model cannot break merges unnoticed.
- erase: handlers that scrub personal data of an erased contact from their rows.
- export: providers of the GDPR data export, each returning JSON-ready data; given a user,
  only what that user may see.
- contact_inlines: admin inline classes shown on the contact page (enrollments, tickets...).
- contact_links: (label, URL name taking the contact id) shown as buttons on the contact page.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # e.g. "consent", "event", "ticket"
    title: str
    channel: str = ""
    data: dict = field(default_factory=dict)


class Registry:
    def __init__(self, name: str):
        self.name = name
        self._items: dict[str, Callable] = {}

    def register(self, key: str, func: Callable | None = None):
        """Register `func` under `key`; usable as a decorator. Re-registering replaces."""

        def decorator(f):
            self._items[key] = f
            return f

        return decorator(func) if func is not None else decorator

    def items(self):
        return list(self._items.items())


timeline = Registry("timeline")
merge_handlers = Registry("merge")
erase_handlers = Registry("erase")
exporters = Registry("export")
contact_inlines = Registry("contact_inlines")
contact_links = Registry("contact_links")


# A merge's rule per relation to Contact.
MOVE = "move"  # a plain foreign key: the rows move to the winner
KEEP = "keep"  # left pointing at the merged-away id (history tables, whose rows are a record)
merge_rules: dict[str, str] = {}


def merge_rule(relation: str, rule: str) -> None:
    """Declare how a merge treats `relation` ("app.Model.field"): MOVE, KEEP, or the key of a
    merge handler that reconciles the rows that cannot simply move (one-to-ones, unique pairs);
    whatever such a handler leaves is then moved like MOVE."""
    merge_rules[relation] = rule


def relation_label(field) -> str:
    return f"{field.model._meta.label}.{field.name}"
