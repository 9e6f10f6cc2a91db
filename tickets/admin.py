from django.contrib import admin

from core.admin import ModelAdmin, TabularInline

from .models import BusinessCalendar, CannedReply, Holiday, SLAPolicy, SLATarget, Team, Ticket


class HolidayInline(TabularInline):
    model = Holiday


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(ModelAdmin):
    list_display = ("name", "timezone", "start_time", "end_time")
    search_fields = ("name",)
    inlines = [HolidayInline]


class SLATargetInline(TabularInline):
    model = SLATarget


@admin.register(SLAPolicy)
class SLAPolicyAdmin(ModelAdmin):
    list_display = ("name", "calendar", "is_default", "resolution_comment_required", "at_risk_percent")
    list_select_related = ("calendar",)
    inlines = [SLATargetInline]


@admin.register(Team)
class TeamAdmin(ModelAdmin):
    list_display = ("name",)
    filter_horizontal = ("members",)


@admin.register(CannedReply)
class CannedReplyAdmin(ModelAdmin):
    list_display = ("title", "language", "is_active")
    list_filter = ("language", "is_active")
    search_fields = ("title", "body")


@admin.register(Ticket)
class TicketAdmin(ModelAdmin):
    list_display = ("id", "subject", "contact", "status", "priority", "assignee", "due_at", "sla_state")
    list_filter = ("status", "priority", "sla_state", "channel")
    list_select_related = ("contact", "assignee")
    search_fields = ("=id", "subject")
