from django.core.management.base import BaseCommand

from automation.playbook import install_playbook, setup_periodic_tasks


class Command(BaseCommand):
    help = "Install the retention playbook (templates in en/fa/ar/he and workflows) and its schedules. Idempotent."

    def handle(self, *args, **options):
        made = install_playbook()
        schedules = setup_periodic_tasks()
        self.stdout.write(
            self.style.SUCCESS(
                f"Playbook: {made['templates']} templates and {made['workflows']} workflows added, "
                f"{schedules} schedules added."
            )
        )
