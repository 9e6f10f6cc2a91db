"""Roles are Django groups. Each app grants its own permissions to them in a data migration
through `grant`, so a role's rights sit next to the models they are about."""

from django.utils.translation import gettext_lazy as _

SALES = "sales"
SUPPORT = "support"
MARKETING = "marketing"
MANAGER = "manager"
ROLES = {
    SALES: _("Sales"),
    SUPPORT: _("Support"),
    MARKETING: _("Marketing"),
    MANAGER: _("Manager"),
}


def grant(apps, app_label: str, grants: dict[str, list[str]]) -> None:
    """Give each role the listed codenames of `app_label` (idempotent).

    Runs inside migrations, where post_migrate has not yet created the permissions,
    so it creates them first.
    """
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config(app_label)
    app_config.models_module = True
    create_permissions(app_config, verbosity=0, apps=apps)
    app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for role in ROLES:
        Group.objects.get_or_create(name=role)
    for role, codenames in grants.items():
        group = Group.objects.get(name=role)
        perms = list(Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames))
        missing = set(codenames) - {p.codename for p in perms}
        if missing:
            raise LookupError(f"{app_label}: unknown permissions {sorted(missing)}")
        group.permissions.add(*perms)


def user_roles(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    return set(user.groups.values_list("name", flat=True))
