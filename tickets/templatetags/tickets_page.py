"""The agents' ticket page: a choice field's label, translated once per process and language.
get_FOO_display() hashes every lazy label of the field on each call (make_hashable), which
cost the page ~150 translations a request; a language's choices for contacts hold 100+."""

from functools import cache

from django import template
from django.utils import translation

register = template.Library()


@cache
def _labels(model, name: str, language: str | None) -> dict:
    with translation.override(language):
        return {value: str(text) for value, text in model._meta.get_field(name).flatchoices}


@register.filter
def label(obj, name: str) -> str:
    """{{ comment|label:"via" }}: the label of obj's choice field `name`, or its value as stored."""
    value = getattr(obj, name)
    return _labels(type(obj), name, translation.get_language()).get(value, value)
