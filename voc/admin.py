from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from core.admin import ModelAdmin, TabularInline

from . import services
from .choices import Sentiment
from .models import Analysis, Theme, ThemeTerm


class ThemeTermInline(TabularInline):
    model = ThemeTerm


@admin.register(Theme)
class ThemeAdmin(ModelAdmin):
    list_display = ["key", "names", "is_active", "owner"]
    inlines = [ThemeTermInline]
    autocomplete_fields = []


class ThemeFilter(admin.SimpleListFilter):
    title = _("theme")
    parameter_name = "theme"

    def lookups(self, request, model_admin):
        return [(t.key, t.name(request.LANGUAGE_CODE)) for t in Theme.objects.all()]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(theme_rows__theme__key=self.value())
        return queryset


class CorrectionForm(forms.ModelForm):
    """A manager's reading: the sentiment and the themes; kept across rebuilds."""

    correct_sentiment = forms.ChoiceField(label=_("Sentiment"), choices=Sentiment.choices)
    correct_themes = forms.ModelMultipleChoiceField(
        label=_("Themes"),
        queryset=Theme.objects.all(),
        required=False,
        to_field_name="key",
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = Analysis
        fields = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["correct_sentiment"].initial = self.instance.sentiment
            self.fields["correct_themes"].initial = list(self.instance.themes)


@admin.register(Analysis)
class AnalysisAdmin(ModelAdmin):
    form = CorrectionForm
    list_display = [
        "written_at",
        "excerpt_short",
        "sentiment",
        "confidence",
        "theme_list",
        "language",
        "channel",
        "corrected",
    ]
    list_filter = [ThemeFilter, "written_at", "sentiment", "language", "channel", "source", "corrected"]
    date_hierarchy = "written_at"
    search_fields = []
    readonly_fields = [
        "source",
        "source_id",
        "contact",
        "language",
        "channel",
        "stage",
        "score",
        "excerpt",
        "written_at",
        "sentiment",
        "confidence",
        "polarity",
        "themes",
        "corrected",
        "analysed_at",
    ]
    fieldsets = [
        (None, {"fields": readonly_fields}),
        (_("Correct"), {"fields": ["correct_sentiment", "correct_themes"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("contact", "stage")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("text"))
    def excerpt_short(self, obj):
        return obj.excerpt[:120]

    @admin.display(description=_("themes"))
    def theme_list(self, obj):
        return ", ".join(f"{key} ({sentiment})" for key, sentiment in obj.themes.items()) or "-"

    def save_model(self, request, obj, form, change):
        services.correction_record(
            analysis=obj,
            sentiment=form.cleaned_data["correct_sentiment"],
            themes=[t.key for t in form.cleaned_data["correct_themes"]],
            actor=request.user,
        )
