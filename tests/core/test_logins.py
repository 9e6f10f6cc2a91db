"""Logins: lockout after failed attempts on the admin form and the token endpoint, a rate limit
per address, and API tokens that expire and that their owner can list and revoke."""

from datetime import timedelta

import pytest
from axes.models import AccessFailureLog
from django.core.cache import cache
from django.utils import timezone
from knox.models import AuthToken

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"


@pytest.fixture(autouse=True)
def empty_counters():
    cache.clear()
    yield
    cache.clear()


def admin_login(client, username, password):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def token_login(api, username, password):
    return api(None).post("/api/v1/auth/token/", {"username": username, "password": password}, format="json")


def test_the_admin_locks_a_user_out_after_five_wrong_passwords_even_for_the_right_one(client, dave, bob):
    for _ in range(4):
        assert admin_login(client, "dave", "wrong").status_code == 200  # the form again, with its error
    assert admin_login(client, "dave", "wrong").status_code == 429  # the fifth locks

    locked = admin_login(client, "dave", PASSWORD)

    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert int(locked["Retry-After"]) == 15 * 60
    assert "_auth_user_id" not in client.session
    # another person at the same address is not locked out
    assert admin_login(client, "bob", PASSWORD).status_code == 302
    # every failure is on record, for the managers to see
    assert AccessFailureLog.objects.filter(username="dave").count() >= 5


def test_a_lockout_ends_after_the_cool_off(client, dave, settings):
    for _ in range(5):
        admin_login(client, "dave", "wrong")
    assert admin_login(client, "dave", PASSWORD).status_code == 429

    from axes.models import AccessAttempt

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert admin_login(client, "dave", PASSWORD).status_code == 302


def test_the_token_endpoint_locks_out_with_a_json_429(api, dave):
    for _ in range(4):
        response = token_login(api, "dave", "wrong")
        assert response.status_code == 400
        assert "non_field_errors" in response.json()
    assert token_login(api, "dave", "wrong").status_code == 429  # the fifth locks

    locked = token_login(api, "dave", PASSWORD)

    assert locked.status_code == 429
    assert locked["Content-Type"].startswith("application/json")
    assert "Too many failed logins" in locked.json()["detail"]
    assert locked["Retry-After"] == str(15 * 60)


def test_the_token_endpoint_is_rate_limited_per_address_whatever_the_user(api, db):
    statuses = [token_login(api, f"nobody{i}", "wrong").status_code for i in range(11)]

    assert statuses[:10] == [400] * 10
    assert statuses[10] == 429


def test_a_token_expires(api, dave):
    issued = token_login(api, "dave", PASSWORD).json()
    assert timezone.now() + timedelta(days=29) < timezone.datetime.fromisoformat(issued["expiry"])
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {issued['token']}")
    assert client.get("/api/v1/contacts/").status_code == 200

    AuthToken.objects.filter(token_key=issued["id"]).update(expiry=timezone.now() - timedelta(seconds=1))

    assert client.get("/api/v1/contacts/").status_code == 401


def test_a_user_lists_and_revokes_their_own_tokens_and_no_one_elses(api, dave, bob):
    laptop = token_login(api, "dave", PASSWORD).json()
    phone = token_login(api, "dave", PASSWORD).json()
    bobs = token_login(api, "bob", PASSWORD).json()
    client = api(None)
    client.credentials(HTTP_AUTHORIZATION=f"Token {laptop['token']}")

    listed = client.get("/api/v1/auth/tokens/").json()
    assert {t["id"] for t in listed} == {laptop["id"], phone["id"]}
    assert [t["current"] for t in listed if t["id"] == laptop["id"]] == [True]
    # the stored row holds a digest, never the token itself
    assert not AuthToken.objects.filter(digest=laptop["token"]).exists()

    assert client.delete(f"/api/v1/auth/tokens/{bobs['id']}/").status_code == 404
    assert client.delete(f"/api/v1/auth/tokens/{phone['id']}/").status_code == 204
    other = api(None)
    other.credentials(HTTP_AUTHORIZATION=f"Token {phone['token']}")
    assert other.get("/api/v1/contacts/").status_code == 401
    # revoking the token in use ends this session too
    assert client.delete(f"/api/v1/auth/tokens/{laptop['id']}/").status_code == 204
    assert client.get("/api/v1/auth/tokens/").status_code == 401


def test_managers_see_the_failed_logins_and_may_lift_a_lockout(client, dave, alice):
    for _ in range(5):
        admin_login(client, "alice", "wrong")
    client.force_login(dave)

    attempts = client.get("/admin/axes/accessattempt/")
    failures = client.get("/admin/axes/accessfailurelog/")

    assert attempts.status_code == 200 and "alice" in attempts.content.decode()
    assert failures.status_code == 200
    assert dave.has_perm("axes.delete_accessattempt")
    assert not alice.has_perm("axes.view_accessattempt")
