"""History import, POST /api/v1/transitions/backfill/ (issue 17): one transaction per request with
per-item results, idempotency keys, contacts created as events do, history merged into the ledger
in time order, a bounded number of queries, and live events on the same contacts meanwhile.

Runs on SQLite and PostgreSQL; the concurrency test needs PostgreSQL (row locks)."""

import itertools
import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from crm.models import Contact
from journeys import services
from journeys.models import Enrollment, Event, StageTransition
from journeys.signals import stage_changed
from tests.factories import ContactFactory, EnrollmentFactory, JourneyFactory, StageRuleFactory, UserFactory

URL = "/api/v1/transitions/backfill/"


def ago(days: float):
    return timezone.now() - timedelta(days=days)


def iso(days: float) -> str:
    return ago(days).isoformat()


def ledger(enrollment) -> list[StageTransition]:
    return list(
        StageTransition.objects.filter(enrollment=enrollment)
        .select_related("from_stage", "to_stage")
        .order_by("at", "id")
    )


def assert_chain(enrollment) -> list[StageTransition]:
    """The ledger in time order is one unbroken chain, flagged where it goes back, and the
    enrollment mirrors its latest row and its earliest time."""
    rows = ledger(enrollment)
    assert rows and rows[0].from_stage_id is None
    for previous, row in itertools.pairwise(rows):
        assert row.from_stage_id == previous.to_stage_id, (previous, row)
        assert row.is_backward == (row.to_stage.order < row.from_stage.order), row
    enrollment.refresh_from_db()
    assert (enrollment.stage_id, enrollment.stage_entered_at) == (rows[-1].to_stage_id, rows[-1].at)
    assert enrollment.enrolled_at == rows[0].at
    return rows


@pytest.fixture
def manager_api(api, dave):
    return api(dave)


@pytest.fixture
def funnel(db):
    return JourneyFactory(slug="funnel", stages=["lead", "trial", "customer", "fan"])


def move(contact, stage, days, **extra) -> dict:
    return {"contact": contact, "journey": "funnel", "stage": stage, "at": iso(days), **extra}


# --- merged in time order -----------------------------------------------------------------------------------


def test_history_older_than_the_current_stage_is_merged_in_its_place(manager_api, funnel, dave):
    # given Sara, enrolled as a lead 30 days ago and a customer since 5 days ago
    stages = {s.slug: s for s in funnel.stages.all()}
    enrollment = EnrollmentFactory(
        contact=ContactFactory(email="sara@example.com"), journey=funnel, stage=stages["lead"], at=ago(30)
    )
    customer = services.enrollment_move(enrollment=enrollment, stage=stages["customer"], reason="paid", at=ago(5))
    sara = {"email": "sara@example.com"}

    # when her history from the old CRM arrives: a trial between, and a fan period before she was a lead
    response = manager_api.post(URL, [move(sara, "trial", 20), move(sara, "fan", 40)], format="json")

    # then both are stored in their place in time
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == ["stored", "stored"]
    rows = assert_chain(enrollment)
    assert [(r.from_stage and r.from_stage.slug, r.to_stage.slug, r.is_backward) for r in rows] == [
        (None, "fan", False),
        ("fan", "lead", True),  # the stored first row now comes from the imported stage before it
        ("lead", "trial", False),
        ("trial", "customer", False),  # was lead -> customer
    ]
    # and the stored rows kept their facts: the customer move is the same row, at the same time
    assert rows[3].pk == customer.pk and rows[3].at == customer.at and rows[3].source == "manual"
    # and she is still a customer since 5 days ago, enrolled since the earliest move
    assert enrollment.stage.slug == "customer"


def test_a_backfilled_move_newer_than_the_latest_becomes_the_current_stage(manager_api, funnel):
    enrollment = EnrollmentFactory(journey=funnel, at=ago(10))

    response = manager_api.post(URL, [move({"id": enrollment.contact_id}, "fan", 1)], format="json")

    assert response.status_code == 200, response.content
    rows = assert_chain(enrollment)
    assert [r.to_stage.slug for r in rows] == ["lead", "fan"]
    assert enrollment.status == "completed"  # fan is the journey's last stage


def test_moves_sent_newest_first_are_chained_oldest_first(manager_api, funnel):
    contact = ContactFactory(external_id="shop-7")
    ref = {"external_id": "shop-7"}

    items = [move(ref, "customer", 3), move(ref, "lead", 9), move(ref, "trial", 6)]

    response = manager_api.post(URL, items, format="json")

    assert response.status_code == 200, response.content
    enrollment = Enrollment.objects.get(contact=contact, journey=funnel)
    assert [r.to_stage.slug for r in assert_chain(enrollment)] == ["lead", "trial", "customer"]
    assert enrollment.enrolled_at.isoformat() == items[1]["at"]


def test_a_move_next_to_the_same_stage_is_rejected_and_one_at_the_same_time_is_a_duplicate(manager_api, funnel):
    # given a lead since 10 days ago, a trial since 5
    enrollment = EnrollmentFactory(journey=funnel, at=ago(10))
    trial = services.enrollment_move(
        enrollment=enrollment, stage=funnel.stages.get(slug="trial"), reason="x", at=ago(5)
    )
    ref = {"id": enrollment.contact_id}

    response = manager_api.post(
        URL,
        [
            move(ref, "lead", 12),  # lead before lead: not a move
            move(ref, "trial", 7),  # trial right before trial: not a move
            {**move(ref, "trial", 0), "at": trial.at.isoformat()},  # the same fact again
        ],
        format="json",
    )

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "rejected", "duplicate"]
    assert [list(r.get("errors", {})) for r in results] == [["stage"], ["stage"], []]
    assert results[2]["id"] == trial.pk
    assert len(assert_chain(enrollment)) == 2


def test_imported_history_starts_no_workflow_or_survey(manager_api, funnel):
    # stage_changed starts workflows and sends surveys: years-old moves must not
    heard = []

    def receiver(sender, transition, **kwargs):
        heard.append(transition)

    stage_changed.connect(receiver, dispatch_uid="test_backfill_heard")
    try:
        response = manager_api.post(URL, [move({"email": "new@example.com"}, "trial", 400)], format="json")
    finally:
        stage_changed.disconnect(dispatch_uid="test_backfill_heard")

    assert response.status_code == 200, response.content
    assert heard == []


# --- idempotency -----------------------------------------------------------------------------------------------


def test_a_retried_request_stores_nothing_twice_and_answers_duplicate(manager_api, funnel):
    # given a request of moves with idempotency keys, of known and new people, stored once
    ContactFactory(email="sara@example.com")
    items = [
        move({"email": "sara@example.com"}, "lead", 9, idempotency_key="crm-1"),
        move({"email": "sara@example.com"}, "trial", 8, idempotency_key="crm-2"),
        move({"email": "nima@example.com"}, "customer", 7, idempotency_key="crm-3"),
    ]
    first = manager_api.post(URL, items, format="json").json()
    assert first["stored"] == 3

    # when the client, unsure what happened, sends it again
    response = manager_api.post(URL, items, format="json")

    # then every move is a duplicate pointing at what was stored, and nothing is stored again
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["stored"], body["duplicates"], body["rejected"]) == (0, 3, 0)
    assert [r["id"] for r in body["results"]] == [r["id"] for r in first["results"]]
    assert StageTransition.objects.count() == 3
    assert Contact.objects.filter(email="nima@example.com").count() == 1
    assert set(StageTransition.objects.values_list("idempotency_key", flat=True)) == {"crm-1", "crm-2", "crm-3"}


def test_the_same_key_with_another_move_is_rejected(manager_api, funnel):
    ref = {"email": "sara@example.com"}
    manager_api.post(URL, [move(ref, "lead", 9, idempotency_key="crm-1")], format="json")

    trial = move(ref, "trial", 5, idempotency_key="crm-2")

    response = manager_api.post(
        URL,
        [
            move(ref, "trial", 9, idempotency_key="crm-1"),  # another stage under a stored key
            trial,
            move(ref, "customer", 4, idempotency_key="crm-2"),  # another move under a key of this batch
            trial,  # the same move again in this batch
        ],
        format="json",
    )

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "stored", "rejected", "duplicate"]
    assert "idempotency_key" in results[0]["errors"] and "idempotency_key" in results[2]["errors"]
    assert results[3]["id"] == results[1]["id"]
    assert [r.to_stage.slug for r in ledger(Enrollment.objects.get(contact__email="sara@example.com"))] == [
        "lead",
        "trial",
    ]


# --- contacts ----------------------------------------------------------------------------------------------------


def test_contacts_are_found_and_created_as_events_do(manager_api, funnel):
    # given a contact known by phone
    known = ContactFactory(phone="+989121234567")
    items = [
        move({"phone": "0912 123 4567"}, "lead", 5),  # national format, found
        move({"email": "New@Example.com", "first_name": "Nima", "language": "fa"}, "lead", 5),
        move({"email": "new@example.com"}, "trial", 4),  # the same new person: one contact
        move({"external_id": "erp-42"}, "lead", 3),
        {**move({"email": "ghost@example.com"}, "lead", 3), "create_contact": False},
    ]

    response = manager_api.post(URL, items, format="json")

    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["stored"] * 4 + ["rejected"]
    assert "contact" in results[4]["errors"]
    assert results[0]["contact"] == known.pk
    nima = Contact.objects.get(email="new@example.com")
    assert (nima.first_name, nima.language, nima.source) == ("Nima", "fa", "import")
    assert results[1]["contact"] == results[2]["contact"] == nima.pk
    assert Contact.objects.filter(external_id="erp-42", source="import").exists()
    assert not Contact.objects.filter(email="ghost@example.com").exists()


# --- one transaction ---------------------------------------------------------------------------------------------


def test_a_failure_mid_batch_leaves_nothing_half_written_and_the_retry_stores_all(manager_api, funnel, monkeypatch):
    # given a contact with a stored move, and a batch with new people, history and keys
    enrollment = EnrollmentFactory(contact=ContactFactory(email="sara@example.com"), journey=funnel, at=ago(10))
    items = [move({"email": f"p{i}@example.com"}, "lead", 20 - i, idempotency_key=f"k{i}") for i in range(10)]
    items.append(move({"email": "sara@example.com"}, "fan", 30, idempotency_key="k-sara"))
    contacts, transitions = Contact.objects.count(), StageTransition.objects.count()

    # when the database fails after the moves were inserted, before the enrollments were written
    def fail(enrollments):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(services, "_backfill_enrollments_save", fail)
    with pytest.raises(RuntimeError):
        manager_api.post(URL, items, format="json")

    # then nothing of it is there: no move, no contact, no enrollment, no rewritten neighbour
    assert (Contact.objects.count(), StageTransition.objects.count()) == (contacts, transitions)
    assert Enrollment.objects.filter(journey=funnel).count() == 1
    assert ledger(enrollment)[0].from_stage_id is None

    # and the retry, once the database is back, stores every move once
    monkeypatch.undo()
    response = manager_api.post(URL, items, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["stored"] == len(items)
    assert [r.to_stage.slug for r in assert_chain(enrollment)] == ["fan", "lead"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a trigger makes PostgreSQL itself fail the write")
def test_a_database_error_mid_batch_rolls_back_everything(manager_api, funnel):
    # given a stored move, and the database refusing to update enrollments (a real error of
    # PostgreSQL, after the new people, the moves and their neighbours were written)
    enrollment = EnrollmentFactory(contact=ContactFactory(email="sara@example.com"), journey=funnel, at=ago(10))
    items = [move({"email": f"p{i}@example.com"}, "lead", 20 - i, idempotency_key=f"k{i}") for i in range(5)]
    items.append(move({"email": "sara@example.com"}, "fan", 30, idempotency_key="k-sara"))
    contacts, transitions = Contact.objects.count(), StageTransition.objects.count()
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse BEFORE UPDATE ON journeys_enrollment FOR EACH ROW EXECUTE FUNCTION test_refuse()"
        )

    # when the batch is posted
    with pytest.raises(Exception, match="refused by the test"):
        manager_api.post(URL, items, format="json")

    # then nothing of it is there
    assert (Contact.objects.count(), StageTransition.objects.count()) == (contacts, transitions)
    assert ledger(enrollment)[0].from_stage_id is None

    # and once the database takes writes again, the same request stores every move once
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse ON journeys_enrollment")
    response = manager_api.post(URL, items, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["stored"] == len(items)
    assert [r.to_stage.slug for r in assert_chain(enrollment)] == ["fan", "lead"]


def test_query_count_does_not_grow_with_the_batch(manager_api, funnel):
    # given contacts with a stored move each
    for i in range(65):
        EnrollmentFactory(contact=ContactFactory(email=f"known{i}@example.com"), journey=funnel, at=ago(10))

    def batch(n: int, tag: str, first: int) -> list[dict]:
        known = [
            move({"email": f"known{first + i}@example.com"}, "trial", 20, idempotency_key=f"{tag}-k{i}")
            for i in range(n)
        ]
        new = [move({"email": f"{tag}{i}@example.com"}, "lead", 5, idempotency_key=f"{tag}-n{i}") for i in range(n)]
        return known + new

    # when a batch of 10 moves and one of 120 are imported (half of them history, half new people)
    counts = []
    for n, tag, first in ((5, "small", 0), (60, "large", 5)):
        with CaptureQueriesContext(connection) as queries:
            response = manager_api.post(URL, batch(n, tag, first), format="json")
        assert response.json()["stored"] == 2 * n, response.content
        counts.append(len(queries))

    # then they cost the same number of queries (SQLite splits bulk statements at 999 parameters)
    if connection.vendor == "postgresql":
        assert counts[1] <= counts[0], counts
    else:
        assert counts[1] <= counts[0] + 6, counts
    assert counts[0] <= 40, counts


# --- the request -------------------------------------------------------------------------------------------------


def test_bad_moves_get_field_errors_and_an_all_rejected_batch_is_400(manager_api, funnel):
    response = manager_api.post(
        URL,
        [
            {"contact": {"email": "not-an-email"}, "journey": "funnel", "stage": "lead", "at": iso(1)},
            {"contact": {"id": 1}, "journey": "funnel", "stage": "lead", "at": "yesterday", "idempotency_key": ""},
            {"journey": "funnel", "stage": "nowhere", "at": iso(1), "create_contact": "yes"},
        ],
        format="json",
    )

    assert response.status_code == 400
    results = response.json()["results"]
    assert [sorted(r["errors"]) for r in results] == [
        ["contact"],
        ["at", "idempotency_key"],
        ["contact", "create_contact", "stage"],
    ]


def test_a_body_over_the_size_limit_is_a_json_413(manager_api, funnel, settings):
    settings.JOURNEYS_MAX_BODY_BYTES = 200

    response = manager_api.post(URL, [move({"id": 1}, "lead", 1)] * 5, format="json")

    assert response.status_code == 413
    assert response.json()["limit_bytes"] == 200
    assert not StageTransition.objects.exists()


def test_the_schema_documents_the_replies(manager_api):
    response = manager_api.get("/api/schema/?format=json")
    operation = response.json()["paths"][URL]["post"]

    assert {"200", "400", "413"} <= set(operation["responses"])
    item = response.json()["components"]["schemas"]["TransitionInRequest"]["properties"]
    assert {"idempotency_key", "create_contact"} <= set(item)


# --- live events meanwhile (PostgreSQL) -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_backfill_and_live_events_on_the_same_contacts_lose_and_double_no_row():
    # given five contacts enrolled 30 days ago, and rules moving contacts back and forth on live events
    journey = JourneyFactory(stages=["a", "b", "c", "d", "e"])
    stages = {s.slug: s for s in journey.stages.all()}
    StageRuleFactory(stage=stages["b"], event_type="bf_live_b", forward_only=False)
    StageRuleFactory(stage=stages["d"], event_type="bf_live_d", forward_only=False)
    # (and five more, in no journey yet: both writers race to enroll them)
    contacts = [ContactFactory(email=f"c{i}@example.com") for i in range(10)]
    for contact in contacts[:5]:
        EnrollmentFactory(contact=contact, journey=journey, stage=stages["a"], at=ago(30))
    root = UserFactory(username="root", is_superuser=True)
    cycle = ["c", "e", "b", "d", "a"]

    def history(thread: int) -> list[dict]:
        return [
            {
                "contact": {"email": c.email},
                "journey": journey.slug,
                "stage": cycle[(thread + day) % len(cycle)],
                "at": iso(29 - thread * 6 - day * 0.5),
                "idempotency_key": f"t{thread}-c{i}-d{day}",
            }
            for i, c in enumerate(contacts)
            for day in range(10)
        ]

    def live(thread: int) -> list[dict]:
        return [
            {"contact": {"email": c.email}, "type": "bf_live_b" if (thread + n) % 2 else "bf_live_d"}
            for n in range(3)
            for c in contacts
        ]

    histories = {thread: history(thread) for thread in range(4)}  # times fixed once: retries send the same

    def post(i: int):
        client = APIClient()
        client.force_authenticate(root)
        results = []
        for _round in range(3):
            if i % 2:
                response = client.post("/api/v1/events/", live(i), format="json")
            else:
                # history threads send their batch three times (retries): stored once
                response = client.post(URL, histories[i // 2], format="json")
            results.append((response.status_code, response.json()))
        return i, results

    # when history threads and live-event threads write at once
    barrier = threading.Barrier(8)
    outcomes: list = [None] * 8

    def run(i):
        try:
            barrier.wait(timeout=10)
            outcomes[i] = post(i)
        except Exception as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # then every request was answered
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert all(status == 200 for _i, results in outcomes for status, _body in results), [
        (i, status, body if status != 200 else "") for i, results in outcomes for status, body in results
    ]
    # and each stored history move is one row, and a retry stored nothing twice: a move stored by
    # one round is a duplicate of that row in the next (a rejected one may be stored later, once
    # another thread's history changed its neighbours)
    stored_ids = set()
    for i, results in outcomes:
        if i % 2:
            continue
        ids_by_index: dict[int, int] = {}
        for _status, body in results:
            for r in body["results"]:
                if r["index"] in ids_by_index:
                    assert (r["status"], r["id"]) == ("duplicate", ids_by_index[r["index"]]), r
                elif r["status"] == "stored":
                    ids_by_index[r["index"]] = r["id"]
        stored_ids |= set(ids_by_index.values())
    imported = set(StageTransition.objects.filter(source="import").values_list("pk", flat=True))
    assert imported == stored_ids
    assert (
        not StageTransition.objects.values("idempotency_key")
        .exclude(idempotency_key=None)
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    )
    # and each live event moved a contact at most once
    assert not StageTransition.objects.exclude(event=None).values("event").annotate(n=Count("id")).filter(n__gt=1)
    assert Event.objects.count() == 4 * 3 * 3 * len(contacts)
    # and every contact is enrolled once, and every ledger is one chain in time order that its
    # enrollment mirrors
    enrollments = list(Enrollment.objects.filter(journey=journey))
    assert sorted(e.contact_id for e in enrollments) == sorted(c.pk for c in contacts)
    for enrollment in enrollments:
        assert_chain(enrollment)


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_the_same_batch_posted_twice_at_once_is_stored_once():
    # given a batch of history for new people and a known one, with keys
    journey = JourneyFactory(stages=["a", "b", "c"])
    ContactFactory(email="known@example.com")
    root = UserFactory(username="root", is_superuser=True)
    people = ["known@example.com"] + [f"new{i}@example.com" for i in range(20)]
    items = [
        {
            "contact": {"email": email},
            "journey": journey.slug,
            "stage": stage,
            "at": iso(10 - n),
            "idempotency_key": f"{email}-{stage}",
        }
        for email in people
        for n, stage in enumerate(["a", "b", "c"])
    ]

    # when a client's retry delivers it four times at once
    def post(i):
        client = APIClient()
        client.force_authenticate(root)
        response = client.post(URL, items, format="json")
        return response.status_code, response.json()

    barrier = threading.Barrier(4)
    outcomes: list = [None] * 4

    def run(i):
        try:
            barrier.wait(timeout=10)
            outcomes[i] = post(i)
        except Exception as exc:
            outcomes[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # then each move was stored by exactly one request, the others answer duplicate with its id
    assert all(not isinstance(o, Exception) and o[0] == 200 for o in outcomes), outcomes
    assert StageTransition.objects.filter(journey=journey).count() == len(items)
    assert Contact.objects.filter(email__startswith="new").count() == 20
    for index in range(len(items)):
        statuses = sorted(body["results"][index]["status"] for _status, body in outcomes)
        assert statuses == ["duplicate"] * 3 + ["stored"], (index, statuses)
        assert len({body["results"][index]["id"] for _status, body in outcomes}) == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="compares PostgreSQL's fast path with the portable one")
def test_the_postgresql_fast_path_writes_what_the_portable_path_writes(manager_api, funnel, monkeypatch):
    # given two people with the same stored ledger
    stages = {s.slug: s for s in funnel.stages.all()}
    enrollments, enrolled, paid = {}, ago(30), ago(5)
    for email in ("fast@example.com", "plain@example.com"):
        enrollment = EnrollmentFactory(
            contact=ContactFactory(email=email), journey=funnel, stage=stages["lead"], at=enrolled
        )
        services.enrollment_move(enrollment=enrollment, stage=stages["customer"], reason="paid", at=paid)
        enrollments[email] = enrollment
    times = [iso(40), iso(20), iso(2)]

    def history(email):
        ref = {"email": email}
        return [
            {**move(ref, "fan", 0, idempotency_key=f"{email}-1"), "at": times[0]},
            {**move(ref, "trial", 0, idempotency_key=f"{email}-2", reason="old CRM"), "at": times[1]},
            {**move(ref, "lead", 0, idempotency_key=f"{email}-3"), "at": times[2]},
        ]

    # when one is imported through the PostgreSQL path and the other through the portable one
    fast = manager_api.post(URL, history("fast@example.com"), format="json")
    monkeypatch.setattr(services, "_on_postgresql", lambda: False)
    plain = manager_api.post(URL, history("plain@example.com"), format="json")

    # then the replies, ledgers and enrollments are the same, column by column
    assert [r["status"] for r in fast.json()["results"]] == [r["status"] for r in plain.json()["results"]]

    def columns(enrollment):
        enrollment.refresh_from_db()
        rows = [
            (
                *(r.from_stage_id, r.to_stage_id, r.at, r.source, r.actor_id, r.reason, r.is_backward, r.event_id),
                r.rule_id,
                (r.idempotency_key or "").split("-")[-1],
            )
            for r in ledger(enrollment)
        ]
        return rows, (enrollment.stage_id, enrollment.stage_entered_at, enrollment.enrolled_at, enrollment.status)

    assert columns(enrollments["fast@example.com"]) == columns(enrollments["plain@example.com"])
    assert_chain(enrollments["fast@example.com"])


def test_moves_with_nul_text_or_non_finite_numbers_are_refused_one_by_one(manager_api, funnel):
    # The API's parsers refuse such input for a whole request; a history import answers per move.
    good = json.dumps(move({"email": "ok@example.com"}, "lead", 3))
    nul = json.dumps(move({"email": "nul@example.com"}, "lead", 3, reason="a\u0000b"))
    nan = json.dumps(move({"email": "nan@example.com"}, "lead", 3)).replace('"lead"', "NaN")

    response = manager_api.post(URL, f"[{good}, {nul}, {nan}]", content_type="application/json")

    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == ["stored", "rejected", "rejected"]
    assert set(response.json()["results"][1]["errors"]) == {"reason"}
    assert set(response.json()["results"][2]["errors"]) == {"stage"}
    assert list(StageTransition.objects.values_list("enrollment__contact__email", flat=True)) == ["ok@example.com"]
