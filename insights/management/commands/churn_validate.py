from django.core.management.base import BaseCommand, CommandError

from insights.churn import churn_validate


class Command(BaseCommand):
    help = "Score contacts as of N days ago and report how well the score separates those who went quiet (AUC)."

    def add_arguments(self, parser):
        parser.add_argument("--horizon", type=int, default=60, help="Days between the scoring date and today.")

    def handle(self, *args, horizon, **options):
        if horizon < 1:
            raise CommandError("--horizon must be at least 1.")
        result = churn_validate(horizon_days=horizon)
        for key, value in result.items():
            self.stdout.write(f"{key}: {value}")
