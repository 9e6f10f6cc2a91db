"""The customer texts voc reads, through the selectors of surveys and tickets."""

from datetime import datetime

from surveys import selectors as survey_selectors
from tickets import selectors as ticket_selectors

from .choices import Source


def texts(source: str, ids) -> list[dict]:
    if source == Source.SURVEY_RESPONSE:
        return survey_selectors.comments_for_analysis(ids=ids)
    if source == Source.TICKET:
        return ticket_selectors.customer_texts_for_analysis(ticket_ids=ids)[0]
    if source == Source.TICKET_COMMENT:
        return ticket_selectors.customer_texts_for_analysis(comment_ids=ids)[1]
    raise ValueError(f"unknown source {source!r}")


def texts_since(since: datetime, *, limit: int = 5000) -> dict[str, list[dict]]:
    tickets, comments = ticket_selectors.customer_texts_for_analysis(since=since, limit=limit)
    return {
        Source.SURVEY_RESPONSE: survey_selectors.comments_for_analysis(since=since, limit=limit),
        Source.TICKET: tickets,
        Source.TICKET_COMMENT: comments,
    }
