"""The retention playbook that ships with Safar: templates in en, fa, ar and he, and the
workflows that send them. Installing is idempotent; what a marketer edited is left alone."""

import json
from datetime import time

from django.db import transaction
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from crm import services as crm_services
from crm.models import Segment
from journeys import selectors as journey_selectors

from . import choices
from .models import MessageTemplate, Workflow, WorkflowStep

TEMPLATES = [
    # slug, name, channel, subject per language, body per language
    ("welcome", "Welcome", "email",
     {"en": "Welcome, {first_name}!", "fa": "{first_name}، خوش آمدید!", "ar": "مرحبًا بك يا {first_name}!",
      "he": "ברוכים הבאים, {first_name}!"},
     {"en": "Hello {first_name},\n\nThank you for joining us. We are glad you are here.\n\n{site_url}",
      "fa": "سلام {first_name}،\n\nاز پیوستن شما سپاسگزاریم. خوشحالیم که اینجا هستید.\n\n{site_url}",
      "ar": "مرحبًا {first_name}،\n\nشكرًا لانضمامك إلينا. يسعدنا وجودك معنا.\n\n{site_url}",
      "he": "שלום {first_name},\n\nתודה שהצטרפת אלינו. שמחים שאת/ה כאן.\n\n{site_url}"}),
    ("onboarding-day-1", "Onboarding day 1: who we are", "email",
     {"en": "Who we are, and why us", "fa": "ما که هستیم و چرا ما", "ar": "من نحن ولماذا نحن", "he": "מי אנחנו ולמה אנחנו"},
     {"en": "Hello {first_name},\n\nHere is who we are and what we stand for: quality, fair prices and real people "
            "who answer when you write.",
      "fa": "سلام {first_name}،\n\nما که هستیم و به چه پایبندیم: کیفیت، قیمت منصفانه و آدم‌های واقعی که پاسخ می‌دهند.",
      "ar": "مرحبًا {first_name}،\n\nإليك من نحن وبماذا نؤمن: الجودة والأسعار العادلة وأشخاص حقيقيون يردون عليك.",
      "he": "שלום {first_name},\n\nהנה מי אנחנו ובמה אנחנו מאמינים: איכות, מחיר הוגן ואנשים אמיתיים שעונים."}),
    ("onboarding-day-3", "Onboarding day 3: our product categories", "email",
     {"en": "Explore our product categories", "fa": "دسته‌بندی محصولات ما را ببینید", "ar": "تعرّف على فئات منتجاتنا",
      "he": "גלו את קטגוריות המוצרים שלנו"},
     {"en": "Hello {first_name},\n\nHave a look at our categories and find what suits you.\n\n{site_url}",
      "fa": "سلام {first_name}،\n\nنگاهی به دسته‌بندی‌های ما بیندازید و آنچه مناسب شماست پیدا کنید.\n\n{site_url}",
      "ar": "مرحبًا {first_name}،\n\nألقِ نظرة على فئاتنا واعثر على ما يناسبك.\n\n{site_url}",
      "he": "שלום {first_name},\n\nהציצו בקטגוריות שלנו ומצאו את מה שמתאים לכם.\n\n{site_url}"}),
    ("purchase-guide", "Onboarding: purchase guide", "email",
     {"en": "How to choose and buy", "fa": "راهنمای انتخاب و خرید", "ar": "دليل الاختيار والشراء", "he": "מדריך לבחירה ולרכישה"},
     {"en": "Hello {first_name},\n\nOur short guide to choosing, paying and delivery.",
      "fa": "سلام {first_name}،\n\nراهنمای کوتاه ما برای انتخاب، پرداخت و ارسال.",
      "ar": "مرحبًا {first_name}،\n\nدليلنا المختصر للاختيار والدفع والتوصيل.",
      "he": "שלום {first_name},\n\nהמדריך הקצר שלנו לבחירה, תשלום ומשלוח."}),
    ("promo-sms", "Promotion (SMS)", "sms", {},
     {"en": "{first_name}, this week's offer is waiting for you: {site_url}",
      "fa": "{first_name}، پیشنهاد ویژه این هفته منتظر شماست: {site_url}",
      "ar": "{first_name}، عرض هذا الأسبوع بانتظارك: {site_url}",
      "he": "{first_name}, המבצע של השבוע מחכה לך: {site_url}"}),
    ("promo-push", "Promotion (push)", "push", {},
     {"en": "New deals today, {first_name}!", "fa": "{first_name}، تخفیف‌های تازه امروز!",
      "ar": "عروض جديدة اليوم يا {first_name}!", "he": "מבצעים חדשים היום, {first_name}!"}),
    ("promo-email", "Monthly promotion", "email",
     {"en": "This month's offers", "fa": "پیشنهادهای این ماه", "ar": "عروض هذا الشهر", "he": "המבצעים של החודש"},
     {"en": "Hello {first_name},\n\nThis month's best offers, picked for you.\n\n{site_url}",
      "fa": "سلام {first_name}،\n\nبهترین پیشنهادهای این ماه، برای شما.\n\n{site_url}",
      "ar": "مرحبًا {first_name}،\n\nأفضل عروض هذا الشهر، اخترناها لك.\n\n{site_url}",
      "he": "שלום {first_name},\n\nהמבצעים הטובים של החודש, במיוחד בשבילך.\n\n{site_url}"}),
    ("newsletter", "Newsletter", "email",
     {"en": "Our news", "fa": "تازه‌های ما", "ar": "أخبارنا", "he": "החדשות שלנו"},
     {"en": "Hello {first_name},\n\nWhat is new with us this fortnight.\n\n{site_url}",
      "fa": "سلام {first_name}،\n\nتازه‌های این دو هفته.\n\n{site_url}",
      "ar": "مرحبًا {first_name}،\n\nالجديد لدينا في هذين الأسبوعين.\n\n{site_url}",
      "he": "שלום {first_name},\n\nמה חדש אצלנו בשבועיים האחרונים.\n\n{site_url}"}),
    ("repurchase", "Repurchase reminder", "email",
     {"en": "Time for a refill?", "fa": "وقت خرید دوباره است؟", "ar": "هل حان وقت الشراء مجددًا؟", "he": "הגיע הזמן לחדש?"},
     {"en": "Hello {first_name},\n\nIt has been a month since your order. Ready for the next one?\n\n{site_url}",
      "fa": "سلام {first_name}،\n\nیک ماه از سفارش شما گذشته است. آماده سفارش بعدی هستید؟\n\n{site_url}",
      "ar": "مرحبًا {first_name}،\n\nمرّ شهر على طلبك. هل أنت مستعد للطلب التالي؟\n\n{site_url}",
      "he": "שלום {first_name},\n\nעבר חודש מההזמנה שלך. מוכנים להזמנה הבאה?\n\n{site_url}"}),
    ("referral-reminder", "Referral program reminder", "email",
     {"en": "Invite a friend, get a reward", "fa": "دوستانتان را دعوت کنید و هدیه بگیرید",
      "ar": "ادعُ صديقًا واحصل على مكافأة", "he": "הזמינו חבר וקבלו פרס"},
     {"en": "Hello {first_name},\n\nShare your link and get a reward for each friend who joins: {referral_link}\n"
            "Your code: {referral_code}",
      "fa": "سلام {first_name}،\n\nلینک خود را به اشتراک بگذارید و برای هر دوستی که بپیوندد هدیه بگیرید: {referral_link}\n"
            "کد شما: {referral_code}",
      "ar": "مرحبًا {first_name}،\n\nشارك رابطك واحصل على مكافأة عن كل صديق ينضم: {referral_link}\nرمزك: {referral_code}",
      "he": "שלום {first_name},\n\nשתפו את הקישור שלכם וקבלו פרס על כל חבר שמצטרף: {referral_link}\n"
            "הקוד שלכם: {referral_code}"}),
]  # fmt: skip

DAY = 24 * 60
# slug, name, trigger, trigger detail, goal stage, exit event, re-entry, steps [(kind, value, wait_until)]
WORKFLOWS = [
    ("welcome", "Welcome", choices.Trigger.EVENT, "signup", None, "", choices.Reentry.NEVER,
     [("send", "welcome", None)]),
    ("onboarding", "Onboarding: day 1, day 3, purchase guide", choices.Trigger.EVENT, "signup", "purchase", "",
     choices.Reentry.NEVER,
     [("wait", DAY, "10:00"), ("send", "onboarding-day-1", None), ("wait", 2 * DAY, "10:00"),
      ("send", "onboarding-day-3", None), ("wait", 2 * DAY, "10:00"), ("send", "purchase-guide", None)]),
    ("promo-sms", "Promotions by SMS (twice a month)", choices.Trigger.SCHEDULE, None, None, "",
     choices.Reentry.ANY_TIME, [("send", "promo-sms", None)]),
    ("promo-push", "Promotions by push (twice a week)", choices.Trigger.SCHEDULE, None, None, "",
     choices.Reentry.ANY_TIME, [("send", "promo-push", None)]),
    ("promo-email", "Monthly promotion email", choices.Trigger.SCHEDULE, None, None, "", choices.Reentry.ANY_TIME,
     [("send", "promo-email", None)]),
    ("newsletter", "Newsletter (every two weeks)", choices.Trigger.SCHEDULE, None, None, "", choices.Reentry.ANY_TIME,
     [("send", "newsletter", None)]),
    # Another purchase during the wait ends the run: no reminder after a repurchase.
    ("repurchase", "Repurchase reminder", choices.Trigger.EVENT, "purchase", None, "purchase",
     choices.Reentry.AFTER_EXIT, [("wait", 30 * DAY, "10:00"), ("send", "repurchase", None)]),
    ("referral", "Referral program reminders", choices.Trigger.STAGE_ENTERED, "retention", None, "",
     choices.Reentry.NEVER,
     [("wait", 7 * DAY, "11:00"), ("send", "referral-reminder", None), ("wait", 30 * DAY, "11:00"),
      ("send", "referral-reminder", None)]),
]  # fmt: skip

# django-celery-beat crontabs for the scheduled workflows: minute, hour, day of week, day of month.
SCHEDULES = {
    "promo-sms": ("0", "11", "*", "1,15"),
    "promo-push": ("0", "18", "tue,fri", "*"),
    "promo-email": ("0", "10", "*", "5"),
    "newsletter": ("0", "9", "thu", "1-7,15-21"),
}


@transaction.atomic
def install_playbook() -> dict[str, int]:
    made = {"templates": 0, "workflows": 0}
    templates = {}
    for slug, name, channel, subject, body in TEMPLATES:
        templates[slug], created = MessageTemplate.objects.get_or_create(
            slug=slug, defaults={"name": name, "channel": channel, "subject": subject, "body": body}
        )
        made["templates"] += created
    everyone = Segment.objects.filter(name="Everyone").first() or crm_services.segment_create(
        actor=None, name="Everyone", filters={}, description="All contacts; consent decides who gets what."
    )
    for slug, name, trigger, detail, goal, exit_event, reentry, steps in WORKFLOWS:
        if Workflow.objects.filter(slug=slug).exists():
            continue
        workflow = Workflow.objects.create(
            slug=slug,
            name=name,
            trigger=trigger,
            trigger_event=detail if trigger == choices.Trigger.EVENT else "",
            trigger_stage=(
                journey_selectors.stage_by_slug(journey_slug="lifecycle", stage_slug=detail)
                if trigger == choices.Trigger.STAGE_ENTERED
                else None
            ),
            segment=everyone if trigger == choices.Trigger.SCHEDULE else None,
            goal_stage=journey_selectors.stage_by_slug(journey_slug="lifecycle", stage_slug=goal) if goal else None,
            exit_event=exit_event,
            reentry=reentry,
        )
        for order, (kind, value, until) in enumerate(steps, start=1):
            step = WorkflowStep(workflow=workflow, order=order, kind=kind)
            if kind == "wait":
                step.wait_minutes = value
                step.wait_until = time.fromisoformat(until) if until else None
            elif kind == "send":
                step.template = templates[value]
            step.save()
        made["workflows"] += 1
    return made


@transaction.atomic
def setup_periodic_tasks() -> int:
    """One django-celery-beat task per scheduled workflow; idempotent, and edits in the admin survive."""
    made = 0
    for slug, (minute, hour, day_of_week, day_of_month) in SCHEDULES.items():
        workflow = Workflow.objects.filter(slug=slug).first()
        if workflow is None:
            continue
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week=day_of_week, day_of_month=day_of_month, month_of_year="*"
        )
        _task, created = PeriodicTask.objects.get_or_create(
            name=f"automation: {workflow.name}",
            defaults={
                "task": "automation.start_scheduled",
                "crontab": crontab,
                "args": json.dumps([workflow.pk]),
            },
        )
        made += created
    return made
