"""The one way the product writes spreadsheets people open: every cell made safe from formula
injection, UTF-8 with a BOM (so Excel reads Persian, Arabic and Hebrew), and an audit entry
saying who exported what, with which filter and how many rows."""

import csv
import re
from collections.abc import Iterable

from django.http import HttpResponse

from .services import audit_log_record

# A cell a spreadsheet would run as a formula (CSV injection). Phone numbers and plain
# numbers start with + or - too and are safe, so they are left alone.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?[\d\s().-]*")


def spreadsheet_safe(value):
    """'=HYPERLINK(...)' -> "'=HYPERLINK(...)": shown as text by Excel, LibreOffice and Sheets."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_response(*, filename: str, header: list, rows: Iterable[Iterable]) -> tuple[HttpResponse, int]:
    """A CSV download whose every cell is spreadsheet-safe; also the number of rows written."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.write("\ufeff")
    writer = csv.writer(response)
    writer.writerow([spreadsheet_safe(cell) for cell in header])
    count = 0
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
        count += 1
    return response, count


def export_audit(*, actor, what: str, file_format: str, filters: dict, rows: int) -> None:
    """One audit entry per export of people's data: who, what, which filter, how many rows."""
    audit_log_record(
        actor=actor,
        action=f"{what}.export",
        obj=actor,
        data={"format": file_format, "filter": filters, "rows": rows},
    )


def query_filters(query) -> dict:
    """A request's query parameters as a plain dict for the audit (lists only where repeated)."""
    return {key: values if len(values) > 1 else values[0] for key, values in query.lists() if key != "export"}
