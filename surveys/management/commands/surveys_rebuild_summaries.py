"""Recompute the survey results' summaries from the answers and invitations."""

from django.core.management.base import BaseCommand, CommandError

from surveys import summaries
from surveys.models import Survey


class Command(BaseCommand):
    help = "Recompute the survey results' summaries (answers per day, group and score; invitations sent per day)."

    def add_arguments(self, parser):
        parser.add_argument("--survey", type=int, help="Only this survey (its id); all surveys when left out.")

    def handle(self, *args, survey=None, **options):
        if survey is not None and not Survey.objects.filter(pk=survey).exists():
            raise CommandError(f"No survey with id {survey}.")
        result = summaries.rebuild(survey_id=survey)
        self.stdout.write(self.style.SUCCESS("{results} result rows and {sends} send rows written.".format(**result)))
