from django.core.management.base import BaseCommand, CommandError

from crm.models import Contact
from journeys.demo import seed_journey_events


class Command(BaseCommand):
    help = "Write demo events for the demo contacts; the stage rules move them along the lifecycle journey."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=180, help="Spread the stories over this many days.")
        parser.add_argument("--seed", type=int, default=7, help="Random seed, for repeatable data.")

    def handle(self, *args, days, seed, **options):
        if days < 1:
            raise CommandError("--days must be at least 1.")
        contact_ids = list(Contact.objects.filter(erased_at__isnull=True).order_by("pk").values_list("pk", flat=True))
        stored = seed_journey_events(contact_ids=contact_ids, days=days, seed=seed)
        self.stdout.write(self.style.SUCCESS(f"Stored {stored} events for {len(contact_ids)} contacts."))
