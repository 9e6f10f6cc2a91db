"""Customer texts are analysed after their commit by a task; a sweep finds what was missed; a
rebuild re-reads everything and keeps a manager's correction; erasure drops the words."""

from unittest import mock

import pytest
from django.core.management import call_command
from django.utils import timezone

from crm import services as crm_services
from surveys import services as survey_services
from surveys.models import Survey
from tests.factories import ContactFactory
from tests.surveys.test_summaries import sent
from tickets import services as ticket_services
from voc import services, tasks
from voc.models import Analysis, AnalysisTheme, Correction, Theme, ThemeTerm

pytestmark = pytest.mark.django_db


@pytest.fixture
def nps(db):
    return Survey.objects.create(name="NPS", kind="nps", question={"en": "How likely?"}, is_active=True)


def answer(nps, contact, score, comment, capture):
    with capture(execute=True):
        return survey_services.response_submit(invitation=sent(nps, contact), score=score, comment=comment)


def test_a_survey_comment_is_analysed_after_its_commit(nps, django_capture_on_commit_callbacks):
    contact = ContactFactory(language="fa")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = survey_services.response_submit(
            invitation=sent(nps, contact), score=3, comment="پشتیبانی عالی بود ولی ارسال افتضاح بود"
        )
        assert not Analysis.objects.exists()  # nothing before the commit
    for callback in callbacks:
        callback()
    analysis = Analysis.objects.get(source="response", source_id=response.pk)
    assert (analysis.sentiment, analysis.themes) == ("negative", {"support": "positive", "delivery": "negative"})
    assert analysis.contact_id == contact.pk and analysis.language == "fa" and analysis.score == 3
    assert set(AnalysisTheme.objects.values_list("theme__key", "sentiment")) == {
        ("support", "positive"),
        ("delivery", "negative"),
    }


def test_an_answer_without_a_comment_stores_nothing(nps, django_capture_on_commit_callbacks):
    answer(nps, ContactFactory(), 9, "", django_capture_on_commit_callbacks)
    assert not Analysis.objects.exists()


def test_a_customers_ticket_and_reply_are_analysed_but_not_the_agents(bob, django_capture_on_commit_callbacks):
    sara = ContactFactory(language="en", email="sara@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        ticket = ticket_services.ticket_open_from_customer(
            email="sara@example.com",
            name="Sara",
            subject="Card",
            body="I was charged twice, refund please",
            via="email",
        )
    with django_capture_on_commit_callbacks(execute=True):
        comment = ticket_services.ticket_customer_reply(
            ticket=ticket, contact=sara, body="Thanks, the agent was very helpful", via="email"
        )
        ticket_services.ticket_comment(ticket=ticket, author=bob, body="Terrible news, sorry")
    rows = {(a.source, a.source_id): a for a in Analysis.objects.all()}
    assert set(rows) == {("ticket", ticket.pk), ("ticket_comment", comment.pk)}
    assert rows["ticket", ticket.pk].sentiment == "negative"
    assert "payment" in rows["ticket", ticket.pk].themes
    assert rows["ticket_comment", comment.pk].sentiment == "positive"


def test_the_sweep_analyses_what_a_broker_that_was_down_left_out(nps, django_capture_on_commit_callbacks):
    contact = ContactFactory()
    with mock.patch.object(tasks.analyse_task, "delay", side_effect=ConnectionError("broker down")):
        response = answer(nps, contact, 10, "Fast delivery, thanks!", django_capture_on_commit_callbacks)
    assert not Analysis.objects.exists()  # the answer was kept; the analysis waits for the sweep
    assert tasks.sweep_task() == 1
    assert Analysis.objects.get(source_id=response.pk).themes == {"delivery": "positive"}
    assert tasks.sweep_task() == 0  # nothing twice


def test_a_correction_is_kept_across_a_rebuild_and_a_new_word_is_found(nps, dave, django_capture_on_commit_callbacks):
    contact = ContactFactory()
    first = answer(nps, contact, 7, "The zipper broke after a day", django_capture_on_commit_callbacks)
    second = answer(nps, ContactFactory(), 7, "The zipper is sturdy", django_capture_on_commit_callbacks)
    analysis = Analysis.objects.get(source_id=first.pk)
    assert "quality" not in analysis.themes
    # a manager corrects the first; then a word is added to the dictionary and everything is rebuilt
    services.correction_record(analysis=analysis, sentiment="negative", themes=["quality", "nonsense"], actor=dave)
    ThemeTerm.objects.create(theme=Theme.objects.get(key="quality"), language="en", term="zipper")
    call_command("voc_rebuild", verbosity=0)
    corrected = Analysis.objects.get(source_id=first.pk)
    assert (corrected.sentiment, corrected.themes, corrected.corrected) == ("negative", {"quality": "negative"}, True)
    assert Correction.objects.get(source_id=first.pk).corrected_by == dave
    rebuilt = Analysis.objects.get(source_id=second.pk)
    assert (rebuilt.sentiment, rebuilt.themes, rebuilt.corrected) == ("positive", {"quality": "positive"}, False)


def test_a_comment_emptied_since_loses_its_analysis_on_rebuild(nps, django_capture_on_commit_callbacks):
    response = answer(nps, ContactFactory(), 2, "awful", django_capture_on_commit_callbacks)
    type(response).objects.filter(pk=response.pk).update(comment="")
    assert services.analyses_rebuild() == 0
    assert not Analysis.objects.exists()


def test_erasing_a_contact_drops_their_words_and_keeps_the_counts(nps, dave, django_capture_on_commit_callbacks):
    contact = ContactFactory()
    answer(nps, contact, 2, "Delivery was awful, my address is 12 Rose St", django_capture_on_commit_callbacks)
    crm_services.contact_erase(contact=contact, actor=dave)
    analysis = Analysis.objects.get()
    assert analysis.excerpt == ""
    assert analysis.sentiment == "negative" and AnalysisTheme.objects.count() == 1


def test_a_theme_that_doubles_its_share_notifies_its_owner_once_a_week(dave):
    from datetime import timedelta

    from django.utils import timezone

    from core.models import Notification

    now = timezone.now()

    def comment(n, text, days_ago):
        services.analyses_store(
            source="ticket",
            items=[
                {
                    "source_id": n,
                    "contact_id": None,
                    "language": "en",
                    "channel": "email",
                    "stage_id": None,
                    "score": None,
                    "scale_min": None,
                    "scale_max": None,
                    "text": text,
                    "written_at": now - timedelta(days=days_ago),
                }
            ],
        )

    # the month before: 2 of 20 comments about delivery; the last week: 6 of 10
    for n in range(20):
        comment(n, "Delivery was late" if n < 2 else "The price is fine", days_ago=10 + n)
    for n in range(20, 30):
        comment(n, "Delivery was late again" if n < 26 else "The app is fine", days_ago=1)
    Theme.objects.filter(key__in=["delivery", "app"]).update(owner=dave)
    assert services.theme_jumps_notify(now=now) == ["delivery"]  # app: 4 comments, under the minimum
    note = Notification.objects.get(user=dave, kind="voc_jump")
    assert "Delivery" in note.title and "6" in note.title and "60%" in note.body
    assert services.theme_jumps_notify(now=now + timedelta(days=1)) == []  # not again this week
    Theme.objects.filter(key="delivery").update(owner=None)
    assert services.theme_jumps_notify(now=now + timedelta(days=8)) == []  # nobody to tell


def test_frequent_words_no_theme_covers_are_suggested_and_a_manager_decides(dave, client):
    from voc.models import ThemeSuggestion

    texts = [
        "The gift wrap was missing from the box",
        "No gift wrap this time, where is it?",
        "I asked for gift wrap for my sister",
        "gift wrap forgotten again",
        "The delivery was late",
        "Great support, thank you",
    ] + [f"The delivery of order {n} was fine" for n in range(10)]
    services.analyses_store(
        source="ticket",
        items=[
            {
                "source_id": n,
                "contact_id": None,
                "language": "en",
                "channel": "email",
                "stage_id": None,
                "score": None,
                "scale_min": None,
                "scale_max": None,
                "text": text,
                "written_at": timezone.now(),
            }
            for n, text in enumerate(texts, start=1)
        ],
    )
    assert services.theme_suggestions_refresh() >= 1
    phrases = list(ThemeSuggestion.objects.filter(language="en").values_list("phrase", flat=True))
    assert phrases[0] == "gift wrap"
    assert not {"the", "delivery", "was", "late", "great"} & set(phrases)  # function, theme, sentiment words
    # a manager accepts it as a new theme in the admin; the dictionary then finds it
    suggestion = ThemeSuggestion.objects.get(language="en", phrase="gift wrap")
    client.force_login(dave)
    response = client.post(
        "/admin/voc/themesuggestion/",
        {"action": "accept_as_new_theme", "_selected_action": [suggestion.pk]},
    )
    assert response.status_code == 302
    theme = Theme.objects.get(terms__term="gift wrap")
    from voc import dictionary
    from voc.analysis import analyse

    assert theme.key in analyse("Gift wrap was forgotten", "en", dictionary=dictionary.for_language("en")).themes
    # a rejected word is not suggested again
    other = ThemeSuggestion.objects.exclude(pk=suggestion.pk).filter(status="pending").first()
    if other is not None:
        services.theme_suggestion_decide(suggestion=other, accept=False, actor=dave)
        services.theme_suggestions_refresh()
        assert ThemeSuggestion.objects.get(language="en", phrase=other.phrase).status == "rejected"


def test_corrections_teach_words_the_lexicon_lacks(dave, django_capture_on_commit_callbacks):
    from voc import dictionary
    from voc.analysis import analyse
    from voc.models import LearnedWeight

    def item(n, text):
        return {
            "source_id": n,
            "contact_id": None,
            "language": "en",
            "channel": "email",
            "stage_id": None,
            "score": None,
            "scale_min": None,
            "scale_max": None,
            "text": text,
            "written_at": timezone.now(),
        }

    texts = ["The box came soggy", "Soggy packaging again", "Everything soggy, the courier left it in rain"]
    services.analyses_store(source="ticket", items=[item(n, t) for n, t in enumerate(texts, start=1)])
    assert analyse("soggy cookies", "en", dictionary=dictionary.for_language("en")).sentiment == "neutral"
    for analysis in Analysis.objects.all():
        with django_capture_on_commit_callbacks(execute=True):  # the learning task runs after commit
            services.correction_record(analysis=analysis, sentiment="negative", themes=["delivery"], actor=dave)
    assert LearnedWeight.objects.get(language="en", word="soggy").weight < -0.5
    assert analyse("soggy cookies", "en", dictionary=dictionary.for_language("en")).sentiment == "negative"
    assert not LearnedWeight.objects.filter(word__in=["the", "courier"]).exists()  # function and known words
