from django.core.management.base import BaseCommand, CommandError

from crm.demo import seed_demo


class Command(BaseCommand):
    help = "Write realistic demo contacts (en, fa, ar, he) with companies, personas, tags and consent."

    def add_arguments(self, parser):
        parser.add_argument("--contacts", type=int, default=200, help="How many contacts (default 200).")
        parser.add_argument("--seed", type=int, default=7, help="Random seed, for repeatable data.")

    def handle(self, *args, contacts, seed, **options):
        if contacts < 0:
            raise CommandError("--contacts must be zero or more.")
        result = seed_demo(contacts=contacts, seed=seed, stdout=self.stdout)
        self.stdout.write(
            self.style.SUCCESS(f"Created {result['contacts']} contacts and {result['companies']} companies.")
        )
