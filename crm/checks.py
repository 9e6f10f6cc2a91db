"""System checks: every relation to Contact has a merge rule (crm.registry.merge_rules), so a
model added later cannot make merges fail or lose its rows unnoticed."""

from django.core import checks
from django.db import models

from . import registry


def _unique(field) -> bool:
    if field.unique:
        return True
    meta = field.model._meta
    together = [set(group) for group in meta.unique_together]
    together += [set(c.fields) for c in meta.constraints if isinstance(c, models.UniqueConstraint) and c.fields]
    return any(field.name in group for group in together)


@checks.register(checks.Tags.models)
def merge_rules_check(app_configs=None, **kwargs):
    from .selectors import contact_relations

    handlers = dict(registry.merge_handlers.items())
    errors = []
    for field, label, rule in contact_relations():
        if rule is None:
            errors.append(
                checks.Error(
                    f"{label} points at Contact but has no merge rule.",
                    hint="Declare one with crm.registry.merge_rule() in the app that owns the model.",
                    obj=field.model,
                    id="crm.E001",
                )
            )
        elif rule == registry.MOVE and _unique(field):
            errors.append(
                checks.Error(
                    f"{label} is unique per contact: moving its rows can collide; give it a merge handler.",
                    obj=field.model,
                    id="crm.E002",
                )
            )
        elif rule not in (registry.MOVE, registry.KEEP) and rule not in handlers:
            errors.append(
                checks.Error(
                    f"{label}'s merge rule names no registered handler: {rule}.", obj=field.model, id="crm.E003"
                )
            )
    return errors
