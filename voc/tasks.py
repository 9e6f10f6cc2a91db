"""Analysis in the background: after the text's transaction commits (voc.receivers), and a sweep
every 5 minutes for what a lost task or a broker that was down left out."""

from celery import shared_task

from core.broker import send_or_defer

from . import services


@shared_task(name="voc.analyse")
def analyse_task(source: str, ids: list[int]) -> int:
    """Analyse these texts of `source` and store the results (idempotent: a redelivery rewrites
    the same rows)."""
    from . import sources

    return services.analyses_store(source=source, items=sources.texts(source, ids))


def analyse_enqueue(source: str, ids: list[int]) -> bool:
    return send_or_defer(analyse_task, str(source), list(ids), swept_by="voc.sweep")


@shared_task(name="voc.sweep")
def sweep_task() -> int:
    """Beat, every 5 minutes: texts of the last days that have no analysis yet."""
    return services.analyses_sweep()


@shared_task(name="voc.jumps")
def jumps_task() -> list[str]:
    """Beat, daily: tell theme owners about themes customers suddenly talk about much more."""
    return services.theme_jumps_notify()


@shared_task(name="voc.suggest")
def suggest_task() -> int:
    """Beat, daily: recount the suggested theme words."""
    return services.theme_suggestions_refresh()


@shared_task(name="voc.learn")
def learn_task() -> int:
    """After a correction: learn word weights from all corrections."""
    return services.weights_learn()
