"""Signals surveys sends, after the transaction that caused them has committed."""

from django.dispatch import Signal

# A customer answered. Keyword argument: response_id.
response_submitted = Signal()
