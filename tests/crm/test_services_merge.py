"""contact_merge: what the winner keeps, what moves, and what is refused."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from core.exceptions import DomainError
from core.models import AuditLog
from crm import registry
from crm.models import Consent, Contact
from crm.selectors import consent_current
from crm.services import contact_create, contact_merge
from tests.factories import CompanyFactory, ConsentFactory, ContactFactory, PersonaFactory, TagFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def merge_handler():
    """Register a merge handler for one test and remove it afterwards."""
    registered = []

    def register(key, func):
        registry.merge_handlers.register(key, func)
        registered.append(key)

    yield register
    for key in registered:
        registry.merge_handlers._items.pop(key, None)


def test_winner_keeps_its_values_and_takes_the_losers_where_blank(dave):
    # given a winner with a name and email but no phone, company or time zone
    company, persona = CompanyFactory(), PersonaFactory()
    winner = contact_create(actor=dave, first_name="Sara", last_name="", email="sara@example.com", country="IR")
    loser = contact_create(
        actor=dave,
        first_name="Sarah",
        last_name="Ahmadi",
        email="sara.a@work.example",
        phone="+989121234567",
        company=company,
        persona=persona,
        timezone="Asia/Tehran",
        country="GB",
    )

    # when the loser is merged into the winner
    result = contact_merge(winner=winner, loser=loser, actor=dave)

    # then the winner's values stay and its blanks are filled
    result.refresh_from_db()
    assert result.pk == winner.pk
    assert result.first_name == "Sara"
    assert result.email == "sara@example.com"
    assert result.country == "IR"
    assert result.last_name == "Ahmadi"
    assert str(result.phone) == "+989121234567"
    assert result.company == company
    assert result.persona == persona
    assert result.timezone == "Asia/Tehran"
    assert not Contact.objects.filter(pk=loser.pk).exists()


def test_winner_takes_the_losers_unique_email_and_external_id(dave):
    # given a winner without email or external id, and a loser with both
    winner = contact_create(actor=dave, first_name="Sara")
    loser = contact_create(actor=dave, email="sara@example.com", external_id="shop-42")

    # when merged (both values are unique, so the loser must release them first)
    contact_merge(winner=winner, loser=loser, actor=dave)

    # then the winner holds them
    winner.refresh_from_db()
    assert winner.email == "sara@example.com"
    assert winner.external_id == "shop-42"
    assert Contact.objects.count() == 1


def test_merge_fills_referred_by_from_the_loser(dave):
    referrer = contact_create(actor=dave, first_name="Reza")
    winner = contact_create(actor=dave, first_name="Sara")
    loser = contact_create(actor=dave, first_name="Sara", referred_by=referrer)

    contact_merge(winner=winner, loser=loser, actor=dave)

    winner.refresh_from_db()
    assert winner.referred_by == referrer


def test_attributes_are_merged_with_the_winner_winning(dave):
    winner = contact_create(actor=dave, first_name="W", attributes={"plan": "gold", "points": 10})
    loser = contact_create(actor=dave, first_name="L", attributes={"plan": "free", "birthday": "05-01"})

    contact_merge(winner=winner, loser=loser, actor=dave)

    winner.refresh_from_db()
    assert winner.attributes == {"plan": "gold", "points": 10, "birthday": "05-01"}


def test_tags_are_unioned(dave):
    vip, newsletter, wholesale = TagFactory(name="vip"), TagFactory(name="newsletter"), TagFactory(name="wholesale")
    winner = ContactFactory(tags=[vip, newsletter])
    loser = ContactFactory(tags=[newsletter, wholesale])

    contact_merge(winner=winner, loser=loser, actor=dave)

    assert sorted(winner.tags.values_list("name", flat=True)) == ["newsletter", "vip", "wholesale"]


def test_consents_move_to_the_winner_and_keep_the_ledger(dave):
    # given the winner withdrew email marketing last month and the loser granted it yesterday
    now = timezone.now()
    winner, loser = ContactFactory(), ContactFactory()
    ConsentFactory(contact=winner, status="withdrawn", occurred_at=now - timedelta(days=30))
    granted = ConsentFactory(contact=loser, status="granted", occurred_at=now - timedelta(days=1))
    ConsentFactory(contact=loser, channel="sms", status="granted", occurred_at=now - timedelta(days=2))

    contact_merge(winner=winner, loser=loser, actor=dave)

    # then all three rows belong to the winner and the latest decides
    assert Consent.objects.filter(contact=winner).count() == 3
    assert consent_current(contact=winner)[("email", "marketing")].pk == granted.pk


def test_contacts_referred_by_the_loser_now_point_at_the_winner(dave):
    winner, loser = ContactFactory(), ContactFactory()
    friends = [ContactFactory(referred_by=loser), ContactFactory(referred_by=loser)]

    contact_merge(winner=winner, loser=loser, actor=dave)

    for friend in friends:
        friend.refresh_from_db()
        assert friend.referred_by_id == winner.pk


def test_winner_referred_by_the_loser_does_not_end_up_referring_itself(dave):
    # given the loser referred the winner (one person signed up twice, once through their own link)
    loser = ContactFactory()
    winner = ContactFactory(referred_by=loser)

    contact_merge(winner=winner, loser=loser, actor=dave)

    winner.refresh_from_db()
    assert winner.referred_by_id != winner.pk


def test_winner_referred_by_the_loser_takes_the_losers_referrer(dave):
    referrer = ContactFactory()
    loser = ContactFactory(referred_by=referrer)
    winner = ContactFactory(referred_by=loser)

    contact_merge(winner=winner, loser=loser, actor=dave)

    winner.refresh_from_db()
    assert winner.referred_by_id == referrer.pk


def test_loser_referred_by_the_winner_leaves_the_winner_without_self_referral(dave):
    winner = ContactFactory()
    loser = ContactFactory(referred_by=winner)

    contact_merge(winner=winner, loser=loser, actor=dave)

    winner.refresh_from_db()
    assert winner.referred_by is None


def test_merge_writes_an_audit_entry_with_the_loser_id(dave):
    winner = ContactFactory(phone=None)
    loser = ContactFactory(phone="+989121234567")
    ConsentFactory(contact=loser)

    contact_merge(winner=winner, loser=loser, actor=dave)

    entry = AuditLog.objects.get(action="contact.merge")
    assert entry.actor == dave
    assert entry.object_id == str(winner.pk)
    assert entry.data["loser_id"] == loser.pk
    assert "phone" in entry.data["filled"]
    assert entry.data["moved"]["crm.Consent"] == 1


def test_merge_records_the_winners_change_in_history_by_the_actor(dave):
    winner = contact_create(actor=None, first_name="Sara")
    loser = contact_create(actor=None, last_name="Ahmadi")

    contact_merge(winner=winner, loser=loser, actor=dave)

    latest = winner.history.order_by("-history_date", "-history_id").first()
    assert latest.history_type == "~"
    assert latest.last_name == "Ahmadi"
    assert latest.history_user == dave


def test_merge_keeps_the_losers_history_and_records_its_deletion(dave):
    # HistoricalContact rows point at the loser's id without a foreign key; the sweep must not break on them
    winner = contact_create(actor=dave, first_name="Sara")
    loser = contact_create(actor=dave, first_name="Sarah", email="sarah@example.com")
    loser_history_before = Contact.history.filter(id=loser.pk).count()

    contact_merge(winner=winner, loser=loser, actor=dave)

    loser_history = Contact.history.filter(id=loser.pk)
    assert loser_history.count() == loser_history_before + 1
    deletion = loser_history.order_by("-history_date", "-history_id").first()
    assert deletion.history_type == "-"
    assert deletion.history_user == dave


def test_merge_with_itself_is_a_domain_error_and_changes_nothing(dave):
    contact = ContactFactory(first_name="Sara", tags=[TagFactory(name="vip")])
    before = Contact.objects.filter(pk=contact.pk).values().get()

    with pytest.raises(DomainError) as excinfo:
        contact_merge(winner=contact, loser=contact, actor=dave)

    assert excinfo.value.code == "same_contact"
    assert Contact.objects.filter(pk=contact.pk).values().get() == before
    assert not AuditLog.objects.exists()


@pytest.mark.parametrize("erased_side", ["winner", "loser"])
def test_merge_with_an_erased_contact_is_a_domain_error_and_changes_nothing(dave, erased_side):
    live = ContactFactory(first_name="Sara", phone=None, attributes={"a": 1})
    erased = ContactFactory(first_name="", last_name="", email=None, erased_at=timezone.now())
    ConsentFactory(contact=live)
    winner, loser = (erased, live) if erased_side == "winner" else (live, erased)
    before = list(Contact.objects.order_by("pk").values())

    with pytest.raises(DomainError) as excinfo:
        contact_merge(winner=winner, loser=loser, actor=dave)

    assert excinfo.value.code == "erased"
    assert list(Contact.objects.order_by("pk").values()) == before
    assert Consent.objects.get().contact_id == live.pk
    assert not AuditLog.objects.exists()


def test_merge_with_a_contact_that_no_longer_exists_is_a_domain_error(dave):
    winner, loser = ContactFactory(), ContactFactory()
    Contact.objects.filter(pk=loser.pk).delete()

    with pytest.raises(DomainError) as excinfo:
        contact_merge(winner=winner, loser=loser, actor=dave)

    assert excinfo.value.code == "missing"


def test_a_registered_merge_handler_is_called_with_winner_loser_and_actor(dave, merge_handler):
    calls = []

    def handler(*, winner, loser, actor):
        # the loser still exists while handlers run, so they can move their rows
        calls.append((winner.pk, loser.pk, actor, Contact.objects.filter(pk=loser.pk).exists()))

    merge_handler("tests.recorder", handler)
    winner, loser = ContactFactory(), ContactFactory()

    contact_merge(winner=winner, loser=loser, actor=dave)

    assert calls == [(winner.pk, loser.pk, dave, True)]


def test_a_failing_merge_handler_rolls_the_whole_merge_back(dave, merge_handler):
    def handler(*, winner, loser, actor):
        raise DomainError("the ticket system refuses", code="refused")

    merge_handler("tests.refuser", handler)
    winner = ContactFactory(email=None)
    loser = ContactFactory(email="loser@example.com")

    with pytest.raises(DomainError):
        contact_merge(winner=winner, loser=loser, actor=dave)

    assert Contact.objects.get(pk=loser.pk).email == "loser@example.com"
    assert Contact.objects.get(pk=winner.pk).email is None
    assert not AuditLog.objects.exists()


def test_the_generic_sweep_moves_rows_of_every_model_with_a_foreign_key_to_contact(dave, merge_handler):
    # given the loser has consent rows and a referral, and no handler is registered for them
    winner, loser = ContactFactory(), ContactFactory()
    consents = [ConsentFactory(contact=loser), ConsentFactory(contact=loser, channel="push")]
    friend = ContactFactory(referred_by=loser)

    contact_merge(winner=winner, loser=loser, actor=dave)

    # then every row now points at the winner (nothing was cascaded away with the loser)
    assert set(Consent.objects.filter(contact=winner).values_list("pk", flat=True)) == {c.pk for c in consents}
    friend.refresh_from_db()
    assert friend.referred_by_id == winner.pk


# --- concurrency (PostgreSQL) --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_opposite_merges_at_once_one_wins_and_nothing_deadlocks(dave, merge_handler):
    if connection.vendor != "postgresql":
        pytest.skip("row locks are only meaningful on PostgreSQL")

    # given A and B, and a slow merge handler so the two merges overlap
    merge_handler("tests.slow", lambda **kwargs: time.sleep(0.3))
    a = ContactFactory(first_name="A", email="a@example.com", phone=None)
    b = ContactFactory(first_name="B", email="b@example.com", phone="+989121234567")
    ConsentFactory(contact=a)
    ConsentFactory(contact=b)
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def merge(name, winner, loser):
        try:
            barrier.wait(timeout=10)
            contact_merge(winner=winner, loser=loser, actor=dave)
            outcomes[name] = "ok"
        except Exception as exc:  # any error is recorded and asserted on below
            outcomes[name] = exc
        finally:
            connections.close_all()

    # when A<-B and B<-A run at the same time
    threads = [
        threading.Thread(target=merge, args=("a_wins", a, b)),
        threading.Thread(target=merge, args=("b_wins", b, a)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)

    # then exactly one succeeded and the other was refused cleanly
    assert sorted(outcomes) == ["a_wins", "b_wins"]
    succeeded = [name for name, outcome in outcomes.items() if outcome == "ok"]
    failed = [outcome for outcome in outcomes.values() if outcome != "ok"]
    assert len(succeeded) == 1, outcomes
    assert len(failed) == 1
    assert isinstance(failed[0], DomainError), repr(failed[0])
    assert failed[0].code == "missing"

    # and the data is consistent: one contact holding both consents, one audit entry
    survivor = Contact.objects.get()
    expected = a if succeeded == ["a_wins"] else b
    assert survivor.pk == expected.pk
    assert survivor.consents.count() == 2
    assert str(survivor.phone) == "+989121234567"
    assert AuditLog.objects.filter(action="contact.merge").count() == 1
