"""The project's admin base classes. Every ModelAdmin derives from these, so the admin
theme (plain Django today, perhaps unfold once we are on Python 3.12) changes here only."""

from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import selectors, services
from .models import AuditLog, Notification


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL an unfiltered changelist uses the planner's row estimate instead of a
    full COUNT(*), which costs tens of ms per million rows on every page view."""

    @cached_property
    def count(self):
        query = getattr(self.object_list, "query", None)
        if connection.vendor == "postgresql" and query is not None and not query.where and not query.distinct:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [self.object_list.model._meta.db_table],
                )
                row = cursor.fetchone()
            if row and row[0] > 10_000:
                return row[0]
        return super().count


class WithoutAppList:
    """The admin site as pages without the app-list sidebar see it: each_context leaves the app
    list out, which checks four permissions and reverses two URLs for every registered model on
    every page (~8-12 % of the CPU of the agents' queue and ticket page, bench/README.md "Issue
    15"). Everything else is the site's own. A ModelAdmin built with it (`admin_site=
    WithoutAppList(site)` in its __init__) shows no sidebar on any of its pages."""

    def __init__(self, site):
        self._site = site

    def __getattr__(self, name):
        return getattr(self._site, name)

    def each_context(self, request):
        site = self._site
        script_name = request.META["SCRIPT_NAME"]
        return {
            "site_title": site.site_title,
            "site_header": site.site_header,
            "site_url": script_name if site.site_url == "/" and script_name else site.site_url,
            "has_permission": site.has_permission(request),
            "available_apps": [],
            "is_popup": False,
            "is_nav_sidebar_enabled": False,
            "log_entries": site.get_log_entries(request),
        }


class ModelAdmin(admin.ModelAdmin):
    list_per_page = 50
    show_full_result_count = False
    paginator = EstimatedCountPaginator


class ReadOnlyModelAdmin(ModelAdmin):
    """For ledgers and logs the system writes: staff read them, nobody adds, edits or deletes."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TabularInline(admin.TabularInline):
    extra = 0


def ltr(value) -> str:
    """Isolate a left-to-right token (email, phone, id, URL) inside right-to-left text."""
    if value in (None, ""):
        return "-"
    return format_html('<bdi dir="ltr">{}</bdi>', value)


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyModelAdmin):
    list_display = ("at", "actor", "action", "content_type", "object_link")
    list_filter = ("action", "content_type")
    list_select_related = ("actor", "content_type")
    search_fields = ("object_id", "object_repr")
    date_hierarchy = "at"

    @admin.display(description=_("object"))
    def object_link(self, obj):
        return format_html('{} <bdi dir="ltr">#{}</bdi>', obj.object_repr, obj.object_id)


@admin.register(Notification)
class NotificationAdmin(ReadOnlyModelAdmin):
    """Each user's own notifications (tickets at risk...). Nobody sees anyone else's."""

    list_display = ("title_link", "kind", "created_at", "state")
    list_filter = (("read_at", admin.EmptyFieldListFilter), "kind")
    fields = ("title_link", "body", "kind", "created_at", "read_at")
    readonly_fields = fields
    actions = ["mark_read"]

    @admin.display(description=_("title"))
    def title_link(self, obj):
        # Only links inside this site: a stored URL is never trusted to be a safe scheme.
        if obj.url.startswith("/") and not obj.url.startswith("//"):
            return format_html('<a href="{}">{}</a>', obj.url, obj.title)
        return obj.title

    @admin.display(description=_("read"), ordering="read_at")
    def state(self, obj):
        return _("Read") if obj.read_at else _("Unread")

    def get_queryset(self, request):
        return selectors.notifications_visible(user=request.user, queryset=super().get_queryset(request))

    @admin.action(description=_("Mark as read"), permissions=["view"])
    def mark_read(self, request, queryset):
        count = services.notifications_mark_read(user=request.user, ids=queryset.values_list("pk", flat=True))
        self.message_user(
            request,
            ngettext("%d notification marked read.", "%d notifications marked read.", count) % count,
            messages.SUCCESS,
        )
