"""Form widgets written as HTML by Python rather than through the template engine: inputs,
textareas, selects and radio buttons, the same markup as Django's templates. Django renders each
widget, and each option of a select, through a template of its own: on the agents' ticket page
that was ~35 template renders a request (bench/README.md, "Issue 15"). `render_without_templates`
switches a form's widgets over; a widget of another kind keeps Django's rendering.

Every value and label is escaped (format_html / conditional_escape)."""

from functools import cache

from django import forms
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import mark_safe


def attributes(attrs: dict) -> str:
    """HTML attributes as django/forms/widgets/attrs.html writes them: False and None left out,
    True as the bare name."""
    parts = []
    for name, value in attrs.items():
        if value is True:
            parts.append(f" {name}")
        elif value is not False and value is not None:
            parts.append(f' {name}="{conditional_escape(value)}"')
    return mark_safe("".join(parts))


def option_html(option: dict) -> str:
    return format_html(
        '<option value="{}"{}>{}</option>', str(option["value"]), attributes(option["attrs"]), option["label"]
    )


def choice_html(option: dict) -> str:
    """One radio button or checkbox with its label (django/forms/widgets/input_option.html)."""
    control = format_html(
        '<input type="{}" name="{}" value="{}"{}>',
        option["type"],
        option["name"],
        str(option["value"]),
        attributes(option["attrs"]),
    )
    if not option["label"]:
        return control
    label_for = option["attrs"].get("id")
    return format_html(
        "<label{}>{} {}</label>", format_html(' for="{}"', label_for) if label_for else "", control, option["label"]
    )


class TemplateFreeMixin:
    """render() without the template engine, for Input, Textarea, Select and RadioSelect (and
    their subclasses, which may override `choice_html`)."""

    choice_html = staticmethod(choice_html)

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        if isinstance(self, forms.RadioSelect | forms.CheckboxSelectMultiple):
            options = mark_safe(
                "".join(
                    format_html("<div>{}</div>", self.choice_html(option))
                    for _group, group_options, _index in widget["optgroups"]
                    for option in group_options
                )
            )
            wrapper = {"id": widget["attrs"].get("id"), "class": widget["attrs"].get("class") or None}
            return format_html("<div{}>{}</div>", attributes(wrapper), options)
        if isinstance(self, forms.Select):
            options = mark_safe(
                "".join(
                    option_html(option)
                    for _group, group_options, _index in widget["optgroups"]
                    for option in group_options
                )
            )
            return format_html('<select name="{}"{}>{}</select>', widget["name"], attributes(widget["attrs"]), options)
        if isinstance(self, forms.Textarea):
            text = widget["value"] or ""
            attrs = attributes(widget["attrs"])
            return format_html('<textarea name="{}"{}>\n{}</textarea>', widget["name"], attrs, text)
        value = "" if widget["value"] is None else format_html(' value="{}"', str(widget["value"]))
        return format_html(
            '<input type="{}" name="{}"{}{}>', widget["type"], widget["name"], value, attributes(widget["attrs"])
        )


RENDERED = (forms.RadioSelect, forms.CheckboxSelectMultiple, forms.Select, forms.Textarea, forms.widgets.Input)


@cache
def template_free(widget_class: type) -> type:
    """The widget class rendering without templates (the class itself if it already does)."""
    if issubclass(widget_class, TemplateFreeMixin):
        return widget_class
    return type(widget_class.__name__, (TemplateFreeMixin, widget_class), {"__module__": widget_class.__module__})


def render_without_templates(form: forms.BaseForm) -> forms.BaseForm:
    """Switch this form's widgets (its own copies) to template-free rendering; other kinds of
    widget (file inputs with their clear box, multi-widgets...) keep Django's."""
    for field in form.fields.values():
        widget = field.widget
        if isinstance(widget, RENDERED) and not isinstance(widget, forms.FileInput | forms.MultiWidget):
            widget.__class__ = template_free(type(widget))
    return form
