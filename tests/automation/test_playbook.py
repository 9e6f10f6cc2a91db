"""The shipped playbook: idempotent to install, every template valid and renderable in all four
languages, and its django-celery-beat schedules set up once."""

import pytest
from django.conf import settings
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from automation import services
from automation.models import MessageTemplate, Workflow, WorkflowStep
from automation.playbook import SCHEDULES, TEMPLATES, WORKFLOWS, install_playbook, setup_periodic_tasks
from tests.factories import ContactFactory

pytestmark = pytest.mark.django_db


def test_install_is_idempotent_and_keeps_edits():
    first = install_playbook()
    assert first == {"templates": len(TEMPLATES), "workflows": len(WORKFLOWS)}
    MessageTemplate.objects.filter(slug="welcome").update(name="Edited by marketing")
    assert install_playbook() == {"templates": 0, "workflows": 0}
    assert MessageTemplate.objects.count() == len(TEMPLATES)
    assert Workflow.objects.count() == len(WORKFLOWS)
    assert MessageTemplate.objects.get(slug="welcome").name == "Edited by marketing"


def test_every_template_is_valid_and_renders_in_every_language():
    install_playbook()
    contact = ContactFactory(first_name="Sara")
    languages = [code for code, _name in settings.LANGUAGES]
    for template in MessageTemplate.objects.all():
        template.full_clean()
        assert sorted(template.body) == sorted(languages), template.slug
        for language in languages:
            subject, body = services.render(template=template, contact=contact, language=language)
            assert "Sara" in subject + body, (template.slug, language)
            assert "{" not in body, (template.slug, language)


def test_every_workflow_and_step_is_valid():
    install_playbook()
    for workflow in Workflow.objects.all():
        workflow.full_clean()
        steps = list(workflow.steps.all())
        services.workflow_steps_check(steps=steps)
        for step in steps:
            step.full_clean()
    assert WorkflowStep.objects.filter(kind="send", template__isnull=True).count() == 0


def test_setup_periodic_tasks_is_idempotent_and_keeps_admin_edits():
    install_playbook()
    assert setup_periodic_tasks() == len(SCHEDULES)
    task = PeriodicTask.objects.get(name="automation: Newsletter (every two weeks)")
    assert task.task == "automation.start_scheduled"
    task.enabled = False
    task.save()
    call_command("setup_periodic_tasks")
    call_command("install_playbook")
    assert PeriodicTask.objects.filter(task="automation.start_scheduled").count() == len(SCHEDULES)
    assert not PeriodicTask.objects.get(pk=task.pk).enabled
    assert CrontabSchedule.objects.filter(periodictask__task="automation.start_scheduled").distinct().count() == len(
        SCHEDULES
    )


def test_scheduled_workflow_task_starts_runs_for_the_segment():
    from automation.tasks import workflow_start_scheduled_task

    install_playbook()
    ContactFactory(), ContactFactory()
    workflow = Workflow.objects.get(slug="newsletter")
    assert workflow_start_scheduled_task(workflow.pk) == 2
    assert workflow_start_scheduled_task(workflow.pk) == 0  # the runs are still live
