from django.core.management.base import BaseCommand

from insights.churn import churn_recompute


class Command(BaseCommand):
    help = "Recompute every contact's churn risk now (the daily beat task does the same)."

    def handle(self, *args, **options):
        self.stdout.write(self.style.SUCCESS(f"Scored {churn_recompute()} contacts."))
