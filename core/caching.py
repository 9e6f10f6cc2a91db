"""A short-lived, per-process copy of a small query result."""

import time
from collections.abc import Callable

from django.db import transaction


class ShortLived:
    """`get()` runs `load` at most once every `seconds` in this process; `forget()` drops the copy.

    For small tables read on hot paths (which surveys or workflows a stage move triggers): event
    ingestion moves thousands of contacts a second and most moves trigger nothing. The owner
    calls `forget()` when a row is saved or deleted; other processes see the change within `seconds`."""

    def __init__(self, load: Callable[[], list], seconds: float = 10):
        self.load = load
        self.seconds = seconds
        self._value: list | None = None
        self._at = 0.0

    def get(self) -> list:
        now = time.monotonic()
        if self._value is None or now - self._at > self.seconds:
            self._value, self._at = self.load(), now
        return self._value

    def forget(self) -> None:
        self._value = None


def forget_on_change(forget: Callable[[], None]) -> None:
    """For a receiver of a cached table's saves and deletes: forget now, and again after commit,
    since a request in between may have read the old rows again."""
    forget()
    transaction.on_commit(forget)
