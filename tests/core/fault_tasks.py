"""Tasks for the fault tests' real workers (`celery worker -I tests.core.fault_tasks`): they sleep
and leave marks in a folder, and touch no database."""

import os
import time
from pathlib import Path

from celery import shared_task


@shared_task(name="tests.faults.sleep", acks_late=True)
def sleep_and_mark(name: str, seconds: float, folder: str) -> str:
    Path(folder, f"started-{name}").write_text(str(os.getpid()))
    time.sleep(seconds)
    Path(folder, f"done-{name}").write_text(str(os.getpid()))
    return name
