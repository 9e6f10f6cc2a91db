"""Signals tickets sends, after the transaction that caused them has committed."""

from django.dispatch import Signal

# A ticket was resolved (or closed without being resolved first). Keyword argument: ticket_id.
ticket_resolved = Signal()

# A customer opened a ticket (an email to the support address, the contact form). Keyword
# arguments: ticket_id, via. The outgoing mail connects its acknowledgment to it.
ticket_opened_by_customer = Signal()

# A customer wrote on a ticket (email, portal, form). Keyword arguments: ticket_id, comment_id.
customer_replied = Signal()
