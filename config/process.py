"""Process-wide tuning of the long-running processes: the web server's workers and Celery's.

Python's cyclic garbage collector runs a young-generation pass every 700 container allocations
and, now and then, a full pass over every object the process holds. A Django process holds about
130,000 such objects once it has loaded (modules, models, URL patterns, translations), all alive
until it exits, and a request that ingests 1,000 events allocates tens of thousands more. On the
event bench (bench/README.md, session 6) the collector took 15 ms of a 1,000-event batch's 70 ms
of CPU, and a gunicorn worker spent 61-72 us of CPU an event with Python's defaults against
36-41 us with the tuning below.

- gc.freeze() moves everything alive once the application has loaded to a permanent generation
  that no pass visits: start-up objects are not garbage (the few that would become garbage later
  are kept instead of collected).
- The young generation is collected every settings.GC_GEN0_THRESHOLD allocations (5,000) instead
  of 700: passes are rarer, and most of what a request allocates is freed by reference counting
  before one runs. 0 turns the tuning off."""

import gc

from django.conf import settings


def tune_gc() -> None:
    """Freeze what is alive now and collect the young generation less often. Call once, after
    the application has loaded (config/wsgi.py; each Celery pool process as it starts)."""
    threshold = settings.GC_GEN0_THRESHOLD
    if threshold <= 0:
        return
    gc.freeze()
    _gen0, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(threshold, gen1, gen2)
