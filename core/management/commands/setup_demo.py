"""First-run set-up for a developer machine: demo users for each role and demo data.

Idempotent: run it as often as you like. The demo password is made once and kept in
var/demo-password so it can be printed again on every start.
"""

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from core.roles import ROLES

DEMO_USERS = {"sales": "alice", "support": "bob", "marketing": "carol", "manager": "dave"}


class Command(BaseCommand):
    help = "Create demo users (admin and one per role) and demo data when the database is empty."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=300)

    def handle(self, *args, contacts, **options):
        if not settings.DEBUG:
            raise CommandError("setup_demo makes users with a known password; it runs only with DEBUG on.")
        password_file = settings.VAR_DIR / "demo-password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(12))
            password_file.chmod(0o600)
        password = password_file.read_text().strip()

        User = get_user_model()
        if not User.objects.filter(username="admin").exists():
            User.objects.create_superuser("admin", "admin@example.com", password)
        for role, username in DEMO_USERS.items():
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": True, "email": f"{username}@example.com"}
            )
            if created:
                user.set_password(password)
                user.save()
            user.groups.add(Group.objects.get(name=role))

        # The retention playbook (templates, workflows, schedules) first, so the demo's signups
        # start the welcome and onboarding workflows. Idempotent.
        call_command("install_playbook", stdout=self.stdout)

        from crm.models import Contact

        if not Contact.objects.exists():
            self.stdout.write(f"Loading {contacts} demo contacts...")
            call_command("seed_demo", contacts=contacts, stdout=self.stdout)
            self.stdout.write("Loading their journeys (events through the stage rules)...")
            call_command("seed_journeys", stdout=self.stdout)
            call_command("churn_recompute", stdout=self.stdout)

        self.stdout.write(self.style.SUCCESS("\nSafar is ready at http://127.0.0.1:8000/admin/"))
        self.stdout.write(f"  superuser: admin / {password}")
        for role, username in DEMO_USERS.items():
            self.stdout.write(f"  {ROLES[role]:<10} {username} / {password}")
