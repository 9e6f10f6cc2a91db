"""Signals journeys sends, always after the transaction that caused them has committed."""

from django.dispatch import Signal

# A contact entered a stage. Sent once per StageTransition with keyword arguments
# transition (StageTransition), enrollment (Enrollment) and contact_id (int).
stage_changed = Signal()

# Events were stored. Sent once per ingest call with events (list[Event]).
events_stored = Signal()
