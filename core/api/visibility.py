"""The API's side of "one selector per app says what a user may see" (docs/architecture.md,
"Visibility: one selector per app")."""


class VisibleRows:
    """A viewset mixin: `get_queryset` narrowed by the app's visibility selector, named in
    `visible` (a function of `user` and `queryset`, e.g. `journeys.selectors.journeys_visible`).
    Lists, details, nested actions built on `get_object` and searches all go through it."""

    visible = None

    def get_queryset(self):
        return type(self).visible(user=self.request.user, queryset=super().get_queryset())
