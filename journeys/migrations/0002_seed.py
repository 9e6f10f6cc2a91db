"""The two journeys the product ships with, their touchpoints and the rules that move contacts.
Businesses edit them in the admin; this runs once."""

from django.db import migrations

LIFECYCLE = [
    # slug, name, expected days in stage, target conversion to the next stage (%), goal
    ("awareness", "Awareness", 14, 30, False),
    ("consideration", "Consideration", 14, 40, False),
    ("purchase", "Purchase", 30, 60, True),
    ("retention", "Retention", 90, 20, False),
    ("advocacy", "Advocacy", None, None, False),
]
B2B_SAAS = [
    ("awareness", "Awareness", 21, 25, False),
    ("consideration", "Consideration (trial)", 14, 30, False),
    ("purchase", "Purchase", 14, 80, True),
    ("adoption", "Adoption", 30, 70, False),
    ("retention", "Retention", 180, 25, False),
    ("expansion", "Expansion", 180, 20, False),
    ("advocacy", "Advocacy", None, None, False),
]
TOUCHPOINTS = [
    # slug, name, channel, usual lifecycle stage, goal
    ("instagram-ad", "Instagram ad", "social", "awareness", "Reach new people and bring them to the site"),
    ("search-ad", "Search ad", "ads", "awareness", "Catch people searching for what we sell"),
    ("blog-post", "Blog post", "website", "awareness", "Answer questions and build trust"),
    ("referral-link", "Referral link", "referral", "awareness", "Turn customers' friends into visitors"),
    ("product-page", "Product page", "website", "consideration", "Show the product and its price"),
    ("pricing-page", "Pricing page", "website", "consideration", "Help compare plans"),
    ("newsletter", "Newsletter", "email", "consideration", "Keep subscribers interested"),
    ("cart", "Shopping cart", "website", "consideration", "Lead to checkout"),
    ("checkout", "Checkout", "website", "purchase", "Complete the order"),
    ("store-visit", "Store visit", "store", "purchase", "Sell in person"),
    ("onboarding-email", "Onboarding email", "email", "retention", "Get new customers started"),
    ("mobile-app", "Mobile app", "app", "retention", "Bring customers back"),
    ("sms-promotion", "SMS promotion", "sms", "retention", "Bring customers back to buy again"),
    ("push-promotion", "Push promotion", "push", "retention", "Bring customers back to buy again"),
    ("support-call", "Support call", "support", "retention", "Solve problems on the first call"),
    ("review-site", "Review site", "website", "advocacy", "Collect public reviews"),
    ("nps-survey", "NPS survey", "survey", "advocacy", "Learn who would recommend us"),
]
RULES = {
    # journey: [(event type, property match, stage slug, forward only)]
    "lifecycle": [
        ("page_view", {}, "awareness", True),
        ("ad_click", {}, "awareness", True),
        ("signup", {}, "consideration", True),
        ("product_view", {}, "consideration", True),
        ("cart_add", {}, "consideration", True),
        ("purchase", {}, "purchase", True),
        ("purchase", {"repeat": True}, "retention", True),
        ("review", {}, "advocacy", True),
        ("referral", {}, "advocacy", True),
    ],
    "b2b-saas": [
        ("page_view", {}, "awareness", True),
        ("ad_click", {}, "awareness", True),
        ("signup", {}, "consideration", True),
        ("purchase", {}, "purchase", True),
        ("feature_used", {}, "adoption", True),
        ("purchase", {"renewal": True}, "retention", True),
        ("upgrade", {}, "expansion", True),
        ("referral", {}, "advocacy", True),
        ("review", {}, "advocacy", True),
    ],
}


def seed(apps, schema_editor):
    Journey = apps.get_model("journeys", "Journey")
    Stage = apps.get_model("journeys", "Stage")
    Touchpoint = apps.get_model("journeys", "Touchpoint")
    StageRule = apps.get_model("journeys", "StageRule")
    journeys = {
        "lifecycle": (
            "Customer lifecycle",
            "From first contact to loyal advocate: awareness, consideration, purchase, retention, advocacy.",
            LIFECYCLE,
        ),
        "b2b-saas": (
            "B2B / SaaS",
            "A subscription journey that adds adoption after the purchase and expansion after retention. "
            "Turn it on for a subscription business: while both are active, rules move contacts in both.",
            B2B_SAAS,
        ),
    }
    stages = {}
    for slug, (name, description, stage_rows) in journeys.items():
        journey, _created = Journey.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "is_active": slug == "lifecycle"}
        )
        for order, (stage_slug, stage_name, days, target, goal) in enumerate(stage_rows, start=1):
            stages[slug, stage_slug], _ = Stage.objects.get_or_create(
                journey=journey,
                slug=stage_slug,
                defaults={
                    "name": stage_name,
                    "order": order,
                    "expected_days": days,
                    "target_conversion": target,
                    "is_goal": goal,
                },
            )
        for event_type, match, stage_slug, forward_only in RULES[slug]:
            StageRule.objects.get_or_create(
                journey=journey,
                event_type=event_type,
                property_match=match,
                stage=stages[slug, stage_slug],
                defaults={"forward_only": forward_only},
            )
    for slug, name, channel, stage_slug, goal in TOUCHPOINTS:
        Touchpoint.objects.get_or_create(
            slug=slug,
            defaults={"name": name, "channel": channel, "stage": stages["lifecycle", stage_slug], "goal": goal},
        )


class Migration(migrations.Migration):
    dependencies = [("journeys", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
