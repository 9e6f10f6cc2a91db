from django.core.management.base import BaseCommand

from automation.playbook import setup_periodic_tasks


class Command(BaseCommand):
    help = "Create the django-celery-beat schedules of the scheduled workflows (promotions, newsletter). Idempotent."

    def handle(self, *args, **options):
        self.stdout.write(self.style.SUCCESS(f"{setup_periodic_tasks()} schedules added."))
