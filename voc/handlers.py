"""voc's part in crm's registry: erasing a contact blanks what they wrote here."""

from crm import registry

from .models import Analysis


@registry.erase_handlers.register("voc.texts")
def erase_texts(*, contact, actor) -> None:
    """Keep the counts (sentiment, themes, dates); drop the words."""
    Analysis.objects.filter(contact=contact).update(excerpt="")
