"""Signals tickets sends, after the transaction that caused them has committed."""

from django.dispatch import Signal

# A ticket was resolved (or closed without being resolved first). Keyword argument: ticket_id.
ticket_resolved = Signal()
