"""The journey map as one picture for a meeting: the page's grid rendered to a standalone HTML
file (styles inlined, nothing fetched) and drawn by headless Chromium, as a PNG (a screenshot
sized to the grid) or a PDF (the print stylesheet, A4 landscape)."""

import os
import subprocess
import tempfile
from pathlib import Path

from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string

EXPORT_TIMEOUT = 60  # seconds Chromium may take


class ExportUnavailable(Exception):
    """Chromium is missing or failed; the message says why."""


def _chromium() -> str:
    path = getattr(settings, "CHROMIUM_PATH", "") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        raise ExportUnavailable(f"no Chromium at {path} (setting CHROMIUM_PATH)")
    return path


def map_export(*, context: dict, kind: str, rows: int) -> bytes:
    """PNG or PDF bytes of the map in `context` (the page's context). `rows`: the grid's rows,
    to size the screenshot (Chromium's --screenshot takes the window, not the page)."""
    chromium = _chromium()
    css = Path(finders.find("insights/journey_map.css")).read_text(encoding="utf-8")
    html = render_to_string("insights/journey_map_export.html", {**context, "css": css, "can_edit": False})
    with tempfile.TemporaryDirectory(prefix="safar-map-") as folder:
        page = Path(folder) / "map.html"
        page.write_text(html, encoding="utf-8")
        out = Path(folder) / f"map.{kind}"
        command = [chromium, "--headless", "--disable-gpu", "--hide-scrollbars", "--no-first-run"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        if kind == "png":
            height = min(8000, 300 + 160 * rows)
            command += [f"--window-size=1600,{height}", f"--screenshot={out}"]
        else:
            command += ["--no-pdf-header-footer", f"--print-to-pdf={out}"]
        command.append(page.as_uri())
        try:
            done = subprocess.run(command, capture_output=True, timeout=EXPORT_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise ExportUnavailable(f"Chromium took longer than {EXPORT_TIMEOUT} s") from None
        if not out.exists():
            raise ExportUnavailable(f"Chromium made no file (exit {done.returncode})")
        return out.read_bytes()
