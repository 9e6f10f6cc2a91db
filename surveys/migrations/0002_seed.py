"""The surveys most businesses start with, and the rule that makes a promoter an advocate.
Inactive until a manager turns them on, so nobody is emailed by surprise."""

from django.db import migrations

SURVEYS = [
    {
        "name": "NPS after purchase",
        "kind": "nps",
        "trigger": "stage_entered",
        "stage": "purchase",
        "delay_hours": 24 * 7,
        "question": {
            "en": "How likely are you to recommend us to a friend or colleague?",
            "fa": "چقدر احتمال دارد ما را به دوست یا همکار خود پیشنهاد کنید؟",
            "ar": "ما مدى احتمال أن توصي بنا لصديق أو زميل؟",
            "he": "עד כמה סביר שתמליצו עלינו לחבר או לעמית?",
        },
        "follow_up": {
            "en": "What is the main reason for your score?",
            "fa": "دلیل اصلی امتیاز شما چیست؟",
            "ar": "ما السبب الرئيسي لتقييمك؟",
            "he": "מה הסיבה העיקרית לציון שנתתם?",
        },
    },
    {
        "name": "CSAT after a ticket",
        "kind": "csat",
        "trigger": "ticket_resolved",
        "stage": None,
        "delay_hours": 24,
        "question": {
            "en": "How satisfied are you with the help you received?",
            "fa": "از پشتیبانی که دریافت کردید چقدر راضی هستید؟",
            "ar": "ما مدى رضاك عن المساعدة التي تلقيتها؟",
            "he": "עד כמה אתם מרוצים מהעזרה שקיבלתם?",
        },
        "follow_up": {
            "en": "What could we have done better?",
            "fa": "چه کاری را می‌توانستیم بهتر انجام دهیم؟",
            "ar": "ما الذي كان بإمكاننا فعله بشكل أفضل؟",
            "he": "מה יכולנו לעשות טוב יותר?",
        },
    },
    {
        "name": "CES after onboarding",
        "kind": "ces",
        "trigger": "manual",
        "stage": None,
        "delay_hours": 0,
        "question": {
            "en": "How easy was it to get started with us?",
            "fa": "شروع کار با ما چقدر آسان بود؟",
            "ar": "ما مدى سهولة البدء معنا؟",
            "he": "כמה קל היה להתחיל לעבוד איתנו?",
        },
        "follow_up": {},
    },
]


def seed(apps, schema_editor):
    Survey = apps.get_model("surveys", "Survey")
    Stage = apps.get_model("journeys", "Stage")
    StageRule = apps.get_model("journeys", "StageRule")
    for row in SURVEYS:
        stage = Stage.objects.filter(journey__slug="lifecycle", slug=row["stage"]).first() if row["stage"] else None
        Survey.objects.get_or_create(
            name=row["name"],
            defaults={
                "kind": row["kind"],
                "trigger": row["trigger"],
                "trigger_stage": stage,
                "delay_hours": row["delay_hours"],
                "question": row["question"],
                "follow_up": row["follow_up"],
                "is_active": False,
            },
        )
    advocacy = Stage.objects.filter(journey__slug="lifecycle", slug="advocacy").first()
    if advocacy is not None:
        StageRule.objects.get_or_create(
            journey=advocacy.journey,
            event_type="survey_answer",
            property_match={"category": "promoter"},
            stage=advocacy,
            defaults={"forward_only": True},
        )


class Migration(migrations.Migration):
    dependencies = [("surveys", "0001_initial"), ("journeys", "0002_seed")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
