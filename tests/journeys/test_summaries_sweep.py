"""Beat's sweep of the analytics summaries (journeys.summaries.summaries_sweep) rebuilds what lost
tasks left out (a Redis restarted empty, a broker down): touch summaries and attribution credits
come out as the tasks would have written them. The real Redis restart is in tests/test_faults_redis.py."""

from journeys.models import AttributionCredit, ContactTouchpoint, ContactTouchSummary, StageTransition
from journeys.summaries import summaries_sweep
from journeys.tasks import events_summarise_task
from tests.journeys.test_analytics import build_story


def state():
    return (
        sorted(ContactTouchSummary.objects.values_list()),
        sorted(ContactTouchpoint.objects.values_list("contact_id", "touchpoint_id", "first_at", "last_at", "events")),
        sorted(AttributionCredit.objects.values_list("transition_id", "stage_id", "model", "channel", "weight")),
    )


def test_the_sweep_writes_what_lost_tasks_left_out(db):
    summaries_sweep()  # where the sweep starts
    # given events and moves whose summary and credit tasks never ran (the test's transaction never
    # commits, so no after-commit task is sent: as if every one was lost)
    story = build_story()
    assert not ContactTouchSummary.objects.exists() and not AttributionCredit.objects.exists()
    # when beat's sweep passes twice (what one pass sees, the next checks)
    assert summaries_sweep() == {"contacts": 0, "enrollments": 0}
    fixed = summaries_sweep()
    # then the summaries and credits are there, the same as the tasks would have written
    swept = state()
    assert fixed["contacts"] > 0 and fixed["enrollments"] == len(story.enrollments)
    assert swept[0] and swept[2]
    events_summarise_task(
        [c.pk for c in story.contacts.values()], list(StageTransition.objects.values_list("pk", flat=True))
    )
    assert state() == swept
    # and the next pass finds nothing to do
    assert summaries_sweep() == {"contacts": 0, "enrollments": 0}
