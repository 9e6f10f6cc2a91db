import os
import tempfile
from pathlib import Path


def screenshots_dir() -> Path:
    """docs/screenshots/ when SAFAR_SCREENSHOTS=1 (to refresh the README's pictures), otherwise a
    scratch folder, so an ordinary test run leaves the working tree clean."""
    if os.environ.get("SAFAR_SCREENSHOTS") == "1":
        return Path(__file__).resolve().parents[2] / "docs" / "screenshots"
    folder = Path(tempfile.gettempdir()) / "safar-screenshots"
    folder.mkdir(exist_ok=True)
    return folder
