from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from core.admin import ModelAdmin, TabularInline

from . import services
from .choices import Sentiment
from .models import Analysis, Theme, ThemeSuggestion, ThemeTerm


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


class SuggestionForm(forms.ModelForm):
    class Meta:
        model = ThemeSuggestion
        fields = ["theme"]
        help_texts = {"theme": _("Accept the word into this theme (save), or use the list's actions.")}


@admin.register(ThemeSuggestion)
class ThemeSuggestionAdmin(ModelAdmin):
    """Suggested theme words: accept into a theme (change page), as a new theme, or reject."""

    form = SuggestionForm
    list_display = ["phrase", "language", "comments", "status", "theme", "example_short"]
    list_filter = ["status", "language"]
    readonly_fields = ["phrase", "language", "comments", "example", "status", "decided_by", "suggested_at"]
    actions = ["accept_as_new_theme", "reject"]

    def has_add_permission(self, request):
        return False

    @admin.display(description=_("example"))
    def example_short(self, obj):
        return obj.example[:120]

    def save_model(self, request, obj, form, change):
        if obj.theme_id:
            services.theme_suggestion_decide(suggestion=obj, accept=True, theme=obj.theme, actor=request.user)

    @admin.action(description=_("Accept as new themes"), permissions=["change"])
    def accept_as_new_theme(self, request, queryset):
        for suggestion in queryset.filter(status=ThemeSuggestion.Status.PENDING):
            services.theme_suggestion_decide(suggestion=suggestion, accept=True, actor=request.user)

    @admin.action(description=_("Reject"), permissions=["change"])
    def reject(self, request, queryset):
        for suggestion in queryset.filter(status=ThemeSuggestion.Status.PENDING):
            services.theme_suggestion_decide(suggestion=suggestion, accept=False, actor=request.user)
