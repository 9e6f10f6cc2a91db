"""Where the voice of the customer shows: /api/v1/voc/themes/ (managers and marketing), the
staff page (escaped, per period, with the trend), and a manager's correction in the admin."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tests.factories import ContactFactory
from voc import services
from voc.models import Analysis, Correction

pytestmark = pytest.mark.django_db


def store(text, *, language="en", days_ago=0, score=None, channel="email", source_id=None):
    store.counter = getattr(store, "counter", 0) + 1
    item = {
        "source_id": source_id or store.counter,
        "contact_id": None,
        "language": language,
        "channel": channel,
        "stage_id": None,
        "score": score,
        "scale_min": 0 if score is not None else None,
        "scale_max": 10 if score is not None else None,
        "text": text,
        "written_at": timezone.now() - timedelta(days=days_ago),
    }
    services.analyses_store(source="response", items=[item])
    return Analysis.objects.get(source="response", source_id=item["source_id"])


@pytest.fixture
def comments(db):
    # this period: delivery three times (two negative), support once; the previous period: delivery once
    store("Delivery was late and the courier rude")
    store("The parcel arrived broken, terrible delivery", days_ago=2)
    store("ارسال سریع بود، ممنون", language="fa", days_ago=3, channel="sms")
    store("The support agent was great", days_ago=5)
    store("Delivery was slow", days_ago=40)


@pytest.mark.parametrize(
    ("role", "status"), [("sales", 403), ("support", 403), ("marketing", 200), ("manager", 200), ("none", 403)]
)
def test_themes_api_is_for_managers_and_marketing(api, role_users, comments, role, status):
    assert api(role_users[role]).get("/api/v1/voc/themes/").status_code == status


def test_themes_api_needs_a_login(api, comments):
    assert api(None).get("/api/v1/voc/themes/").status_code == 401


def test_themes_api_counts_sentiment_and_trend(api, dave, comments, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        body = api(dave).get("/api/v1/voc/themes/").json()
    assert body["total"] == 4
    delivery = next(t for t in body["themes"] if t["key"] == "delivery")
    assert (delivery["count"], delivery["negative"], delivery["positive"], delivery["previous"]) == (3, 2, 1, 1)
    assert delivery["trend"] == "up" and delivery["change"] == 2.0
    support = next(t for t in body["themes"] if t["key"] == "support")
    assert (support["count"], support["positive"]) == (1, 1)
    fa = api(dave).get("/api/v1/voc/themes/", {"language": "fa"}).json()
    assert fa["total"] == 1 and next(t for t in fa["themes"] if t["key"] == "delivery")["count"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-05-01", "end": "2026-04-01"}, "start"),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "start"),
        ({"start": "yesterday"}, "start"),
        ({"language": "xx"}, "language"),
    ],
)
def test_themes_api_refuses_a_bad_query_with_field_errors(api, dave, params, field):
    response = api(dave).get("/api/v1/voc/themes/", params)
    assert response.status_code == 400
    assert field in response.json()


def test_the_page_shows_themes_and_escapes_what_customers_wrote(client, dave, comments, django_assert_max_num_queries):
    store("<script>alert('x')</script> the app is broken")
    for _ in range(5):
        store("Delivery was late again", days_ago=1)  # more comments, no more queries
    client.force_login(dave)
    # PostgreSQL: one query for every theme's examples; SQLite: one per theme (6 seeded)
    bound = 14 if connection.features.supports_slicing_ordering_in_compound else 14 + 6
    with django_assert_max_num_queries(bound):
        page = client.get("/admin/voc/themes/").content.decode()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert 'data-theme="delivery"' in page and "Delivery was late and the courier rude" in page
    assert "/admin/voc/analysis/?theme=delivery&amp;written_at__gte=" in page


def test_the_page_is_closed_to_other_roles(client, alice, bob):
    for user in (alice, bob):
        client.force_login(user)
        assert client.get("/admin/voc/themes/").status_code == 403


def test_the_page_refuses_a_bad_period_with_a_form_error(client, dave):
    client.force_login(dave)
    page = client.get("/admin/voc/themes/", {"start": "2026-05-01", "end": "2026-04-01"}).content.decode()
    assert "The start must be before the end." in page
    assert 'id="voc-themes"' not in page


def test_the_page_in_persian_names_the_themes_in_persian(client, dave, comments):
    client.force_login(dave)
    client.cookies["django_language"] = "fa"
    page = client.get("/admin/voc/themes/", headers={"accept-language": "fa"}).content.decode()
    assert "ارسال" in page and 'dir="rtl"' in page and "صدای مشتری" in page


def test_a_manager_corrects_a_comment_in_the_admin(client, dave, comments):
    analysis = Analysis.objects.get(excerpt="The support agent was great")
    client.force_login(dave)
    url = f"/admin/voc/analysis/{analysis.pk}/change/"
    assert client.get(url).status_code == 200
    response = client.post(url, {"correct_sentiment": "negative", "correct_themes": ["support", "app"]})
    assert response.status_code == 302
    analysis.refresh_from_db()
    assert analysis.corrected and analysis.sentiment == "negative"
    assert analysis.themes == {"support": "positive", "app": "negative"}
    assert Correction.objects.get(source_id=analysis.source_id).corrected_by == dave


def test_marketing_reads_comments_but_cannot_correct_them(client, carol, comments):
    analysis = Analysis.objects.first()
    client.force_login(carol)
    assert client.get("/admin/voc/analysis/").status_code == 200
    response = client.post(f"/admin/voc/analysis/{analysis.pk}/change/", {"correct_sentiment": "negative"})
    assert response.status_code == 403
    assert not Correction.objects.exists()


def test_the_360_view_shows_the_customers_recent_tone_to_managers(client, dave, alice):
    contact = ContactFactory()
    analysis = store("The parcel arrived broken, terrible delivery <b>x</b>")
    Analysis.objects.filter(pk=analysis.pk).update(contact=contact)
    client.force_login(dave)
    client.cookies["django_language"] = "fa"
    page = client.get(f"/admin/contacts/{contact.pk}/360/").content.decode()
    assert 'id="tone"' in page and "ارسال" in page and "منفی" in page
    assert "terrible delivery &lt;b&gt;x&lt;/b&gt;" in page
    client.force_login(alice)  # sales: no voc permission
    assert 'id="tone"' not in client.get(f"/admin/contacts/{contact.pk}/360/").content.decode()


def test_the_dashboard_lists_rising_themes_for_voc_readers(client, dave, alice, comments):
    client.force_login(dave)
    page = client.get("/admin/").content.decode()
    assert 'id="rising-themes"' in page and 'data-theme="delivery"' in page
    assert 'data-theme="support"' not in page  # 1 against 0: not a rise worth showing
    client.force_login(alice)
    assert 'id="rising-themes"' not in client.get("/admin/").content.decode()


def test_the_themes_table_downloads_as_csv(client, dave, comments):
    store('=HYPERLINK("x") delivery was late')
    client.force_login(dave)
    response = client.get("/admin/voc/themes/", {"export": "csv", "language": "en"})
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "theme,name,comments,positive,neutral,negative,previous_period,trend"
    assert "delivery,Delivery,3,0,0,3,1,up" in lines
    assert "HYPERLINK" not in response.content.decode()  # counts only


@pytest.mark.parametrize(("role", "status"), [("sales", 403), ("support", 403), ("marketing", 200), ("manager", 200)])
def test_analysed_comments_api_is_for_managers_and_marketing(api, role_users, comments, role, status):
    assert api(role_users[role]).get("/api/v1/voc/comments/").status_code == status


def test_analysed_comments_api_filters_by_theme_and_sentiment(api, dave, comments, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        rows = api(dave).get("/api/v1/voc/comments/", {"theme": "delivery", "sentiment": "negative"}).json()["results"]
    assert [r["excerpt"] for r in rows] == [
        "Delivery was late and the courier rude",
        "The parcel arrived broken, terrible delivery",
        "Delivery was slow",
    ]
    assert rows[0]["themes"] == {"delivery": "negative"}
    assert api(dave).get("/api/v1/voc/comments/", {"sentiment": "bad"}).status_code == 400
    assert api(None).get("/api/v1/voc/comments/").status_code == 401
