"""The managers' side of support set-up: business calendars with their working intervals per
weekday and their holidays, SLA policies with their targets, and teams with their routing. A
week with overlapping intervals or no working time is refused on the form; a saved change
recomputes the open tickets' due times after commit (tickets.calendars)."""

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet
from django.utils.translation import gettext_lazy as _

from core.admin import ModelAdmin, TabularInline

from .calendars import week_errors, week_summary
from .models import BusinessCalendar, BusinessHours, Holiday, SLAPolicy, SLATarget, Team

User = get_user_model()
TIME = forms.TimeInput(attrs={"type": "time"}, format="%H:%M")


class BusinessHoursFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        week = [
            (form.cleaned_data["weekday"], form.cleaned_data["start_time"], form.cleaned_data["end_time"])
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        errors = week_errors(week)
        if errors:
            raise ValidationError(errors)


class BusinessHoursInline(TabularInline):
    model = BusinessHours
    formset = BusinessHoursFormSet
    extra = 1
    fields = ("weekday", "start_time", "end_time")
    verbose_name_plural = _("Working hours (one row per interval; add a second row for a split shift)")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in ("start_time", "end_time"):
            kwargs["widget"] = TIME
        return super().formfield_for_dbfield(db_field, request, **kwargs)


class HolidayInline(TabularInline):
    model = Holiday
    fields = ("date", "name", "start_time", "end_time")
    verbose_name_plural = _("Holidays (leave the times empty for the whole day)")

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name in ("start_time", "end_time"):
            kwargs["widget"] = TIME
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(ModelAdmin):
    list_display = ("name", "timezone", "week")
    search_fields = ("name",)
    inlines = [BusinessHoursInline, HolidayInline]

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("hours")

    @admin.display(description=_("working hours"))
    def week(self, obj):
        return week_summary(obj.hours.all())


class SLATargetInline(TabularInline):
    model = SLATarget


@admin.register(SLAPolicy)
class SLAPolicyAdmin(ModelAdmin):
    list_display = ("name", "calendar", "is_default", "resolution_comment_required", "at_risk_percent")
    list_select_related = ("calendar",)
    inlines = [SLATargetInline]


@admin.register(Team)
class TeamAdmin(ModelAdmin):
    list_display = ("name", "routing", "queue_owner", "is_default")
    list_select_related = ("queue_owner",)
    search_fields = ("name",)
    fields = ("name", "routing", "queue_owner", "is_default", "members")
    filter_horizontal = ("members",)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "queue_owner":
            kwargs["queryset"] = User.objects.filter(is_active=True, is_staff=True).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)
