"""Business calendars for the weekends our customers keep, a default SLA policy, a support team
and a few canned replies. Managers edit them in the admin; this runs once."""

from datetime import time

from django.db import migrations

CALENDARS = [
    # name, time zone, working days (0 = Monday), start, end
    ("Monday to Friday (UTC)", "UTC", [0, 1, 2, 3, 4], time(9), time(17)),
    ("Iran (Saturday to Wednesday)", "Asia/Tehran", [5, 6, 0, 1, 2], time(9), time(17)),
    ("Israel (Sunday to Thursday)", "Asia/Jerusalem", [6, 0, 1, 2, 3], time(9), time(17)),
    ("Gulf (Sunday to Thursday)", "Asia/Riyadh", [6, 0, 1, 2, 3], time(9), time(17)),
]
# Business minutes: first response, next response, resolution.
TARGETS = {
    "urgent": (30, 60, 4 * 60),
    "high": (60, 2 * 60, 8 * 60),
    "normal": (4 * 60, 8 * 60, 3 * 8 * 60),
    "low": (8 * 60, 16 * 60, 5 * 8 * 60),
}
CANNED = [
    ("Thanks, looking into it", "en", "Hello {first_name}, thank you for writing to us. We are looking into ticket #{ticket} and will get back to you soon."),
    ("Thanks, looking into it", "fa", "سلام {first_name}، از پیام شما سپاسگزاریم. درخواست شماره {ticket} را بررسی می‌کنیم و به‌زودی پاسخ می‌دهیم."),
    ("Thanks, looking into it", "ar", "مرحبًا {first_name}، شكرًا لتواصلك معنا. نحن نراجع التذكرة رقم {ticket} وسنعود إليك قريبًا."),
    ("Thanks, looking into it", "he", "שלום {first_name}, תודה שפנית אלינו. אנחנו בודקים את פנייה מספר {ticket} ונחזור אליך בקרוב."),
    ("Solved, anything else?", "en", "Hello {first_name}, we believe ticket #{ticket} is solved. If anything is still wrong, just reply and we will reopen it."),
]  # fmt: skip


def seed(apps, schema_editor):
    BusinessCalendar = apps.get_model("tickets", "BusinessCalendar")
    SLAPolicy = apps.get_model("tickets", "SLAPolicy")
    SLATarget = apps.get_model("tickets", "SLATarget")
    Team = apps.get_model("tickets", "Team")
    CannedReply = apps.get_model("tickets", "CannedReply")
    calendars = {}
    for name, zone, days, start, end in CALENDARS:
        calendars[name], _ = BusinessCalendar.objects.get_or_create(
            name=name, defaults={"timezone": zone, "work_days": days, "start_time": start, "end_time": end}
        )
    policy, created = SLAPolicy.objects.get_or_create(
        name="Standard", defaults={"calendar": calendars["Monday to Friday (UTC)"], "is_default": True}
    )
    if created:
        for priority, (first, following, resolution) in TARGETS.items():
            SLATarget.objects.create(
                policy=policy,
                priority=priority,
                first_response_minutes=first,
                next_response_minutes=following,
                resolution_minutes=resolution,
            )
    Team.objects.get_or_create(name="Support")
    for title, language, body in CANNED:
        CannedReply.objects.get_or_create(title=title, language=language, defaults={"body": body})


class Migration(migrations.Migration):
    dependencies = [("tickets", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
