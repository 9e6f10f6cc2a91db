from django.core.management.base import BaseCommand

from tickets.models import BusinessCalendar
from tickets.recompute import tickets_sla_recompute


class Command(BaseCommand):
    help = "Recompute the SLA due times of the open tickets (of one calendar, or of every calendar)."

    def add_arguments(self, parser):
        parser.add_argument("--calendar", type=int, help="a calendar id (default: every calendar)")

    def handle(self, *args, calendar=None, **options):
        ids = [calendar] if calendar else list(BusinessCalendar.objects.values_list("pk", flat=True))
        for calendar_id in ids:
            totals = tickets_sla_recompute(calendar_id=calendar_id)
            self.stdout.write(f"calendar {calendar_id}: {totals}")
