"""Recompute the analytics summaries (touches, attribution credits) from the ledgers."""

from django.core.management.base import BaseCommand

from journeys import summaries


class Command(BaseCommand):
    help = "Recompute contact touch summaries and attribution credits from the event and stage ledgers."

    def add_arguments(self, parser):
        parser.add_argument("--chunk", type=int, default=2000, help="Enrollments per transaction.")

    def handle(self, *args, chunk, **options):
        result = summaries.summaries_rebuild(chunk=chunk, stdout=self.stdout)
        self.stdout.write(
            self.style.SUCCESS(
                "Touch summaries of {contacts} contacts; credits for {conversions} conversions "
                "of {enrollments} enrollments.".format(**result)
            )
        )
