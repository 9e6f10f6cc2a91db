"""The agents' queue table: Django's result list, with the rows the queue writes itself
(tickets.admin.QueueChangeList.rows) when it can."""

from django import template
from django.contrib.admin.templatetags.admin_list import result_headers, result_list
from django.contrib.admin.templatetags.base import InclusionAdminNode

register = template.Library()


def queue_result_list(cl):
    rows = cl.rows() if hasattr(cl, "rows") else None
    if rows is None:
        return result_list(cl)
    headers = list(result_headers(cl))
    return {
        "cl": cl,
        "result_hidden_fields": [],
        "result_headers": headers,
        "num_sorted_fields": sum(1 for header in headers if header["sortable"] and header["sorted"]),
        "results": rows,
    }


@register.tag(name="queue_result_list")
def queue_result_list_tag(parser, token):
    return InclusionAdminNode(
        parser, token, func=queue_result_list, template_name="change_list_results.html", takes_context=False
    )
