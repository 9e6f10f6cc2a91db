from django import template

from core import calendars

register = template.Library()


@register.simple_tag
def calendar_menu() -> dict:
    """The calendars the current language offers (the default first) and the one in use."""
    offered = calendars.offered()
    return {"choices": [(code, calendars.NAMES[code]) for code in offered], "active": calendars.active()}
