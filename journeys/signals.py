"""Signals journeys sends, always after the transaction that caused them has committed."""

from django.dispatch import Signal

# A contact entered a stage. Sent once per StageTransition with keyword arguments
# transition (StageTransition), enrollment (Enrollment) and contact_id (int).
stage_changed = Signal()

# Events were stored. Sent once per ingest call with events (list[Event]).
events_stored = Signal()

# A batch of moves was made (one manual move, or every move one ingest call's rules made). Sent
# once per batch, after stage_changed for each move, with transitions (list[StageTransition],
# enrollment loaded). For receivers that are cheaper set-based than one move at a time.
stages_entered = Signal()
