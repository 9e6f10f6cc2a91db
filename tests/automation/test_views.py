"""Public endpoints: one-click unsubscribe (RFC 8058), the delivery webhook and the referral link."""

import hashlib
import hmac
import json
import time

import pytest
from django.test import Client

from automation import services
from automation.models import Message
from core import webhooks
from crm.models import Consent
from tests.factories import ContactFactory

from .conftest import consent

pytestmark = pytest.mark.django_db
HOOK = "/hooks/delivery/"


def path_of(url: str) -> str:
    return url.split("127.0.0.1:8000", 1)[-1]


@pytest.fixture
def subscriber(db):
    contact = ContactFactory(language="fa")
    consent(contact)
    return contact


def latest_consent(contact):
    return Consent.objects.filter(contact=contact, channel="email").order_by("-occurred_at", "-id").first()


def test_get_shows_a_confirmation_and_changes_nothing(client, subscriber):
    response = client.get(path_of(services.unsubscribe_url(subscriber, "email")))
    assert response.status_code == 200
    assert b'<form method="post">' in response.content
    assert b'dir="rtl"' in response.content  # in the contact's language
    assert response["Referrer-Policy"] == "no-referrer"
    assert latest_consent(subscriber).status == "granted"


def test_one_click_post_without_cookies_or_csrf_unsubscribes(subscriber):
    client = Client(enforce_csrf_checks=True)
    url = path_of(services.unsubscribe_url(subscriber, "email"))
    response = client.post(url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    latest = latest_consent(subscriber)
    assert (latest.status, latest.source) == ("withdrawn", "unsubscribe")
    # a second click changes nothing more
    assert client.post(url).status_code == 200
    assert Consent.objects.filter(contact=subscriber, status="withdrawn").count() == 1


@pytest.mark.parametrize("tamper", ["other-contact", "other-channel", "bad-signature", "garbage"])
def test_a_tampered_link_is_404_and_unsubscribes_nobody(client, subscriber, tamper):
    other = ContactFactory()
    consent(other)
    token = path_of(services.unsubscribe_url(subscriber, "email")).split("/")[2]
    value, signature = token.rsplit(":", 1)
    forged = {
        "other-contact": f"{other.pk}:email:{signature}",
        "other-channel": f"{subscriber.pk}:sms:{signature}",
        "bad-signature": f"{value}:{signature[:-2]}xx",
        "garbage": "nonsense",
    }[tamper]
    assert client.post(f"/u/{forged}/").status_code == 404
    assert client.get(f"/u/{forged}/").status_code == 404
    assert latest_consent(subscriber).status == "granted"
    assert latest_consent(other).status == "granted"


def sign(body: bytes, secret="hook-secret", timestamp=None) -> str:
    return webhooks.sign(body, secret=secret, timestamp=timestamp)


@pytest.fixture
def sent_sms(db, settings):
    settings.AUTOMATION_WEBHOOK_SECRET = "hook-secret"
    return Message.objects.create(
        contact=ContactFactory(), channel="sms", status="sent", provider_id="prov-1", idempotency_key="k"
    )


def test_webhook_with_a_good_signature_updates_the_message(client, sent_sms):
    body = json.dumps({"provider_id": "prov-1", "status": "delivered"}).encode()
    response = client.post(HOOK, body, content_type="application/json", HTTP_X_SAFAR_SIGNATURE=sign(body))
    assert (response.status_code, response.json()) == (200, {"updated": 1})
    sent_sms.refresh_from_db()
    assert sent_sms.status == "delivered"


@pytest.mark.parametrize("signature", [None, "", "0" * 64, "wrong-secret"])
def test_webhook_with_a_bad_or_missing_signature_is_403(client, sent_sms, signature):
    body = json.dumps({"provider_id": "prov-1", "status": "failed"}).encode()
    headers = {}
    if signature is not None:
        headers["HTTP_X_SAFAR_SIGNATURE"] = sign(body, "other") if signature == "wrong-secret" else signature
    assert client.post(HOOK, body, content_type="application/json", **headers).status_code == 403
    sent_sms.refresh_from_db()
    assert sent_sms.status == "sent"


def test_webhook_refuses_everything_without_a_secret(client, sent_sms, settings):
    settings.AUTOMATION_WEBHOOK_SECRET = ""
    body = json.dumps({"provider_id": "prov-1", "status": "delivered"}).encode()
    response = client.post(HOOK, body, content_type="application/json", HTTP_X_SAFAR_SIGNATURE=sign(body, ""))
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"not json", "detail"),
        (b'{"status": "delivered"}', "detail"),
        (b'{"provider_id": "prov-1", "status": "opened"}', "status"),
    ],
)
def test_webhook_bad_payloads_are_400(client, sent_sms, payload, field):
    response = client.post(HOOK, payload, content_type="application/json", HTTP_X_SAFAR_SIGNATURE=sign(payload))
    assert response.status_code == 400
    assert field in response.json()
    sent_sms.refresh_from_db()
    assert sent_sms.status == "sent"


def test_a_captured_report_cannot_be_replayed_nor_sent_late(client, sent_sms):
    body = json.dumps({"provider_id": "prov-1", "status": "delivered"}).encode()
    signature = sign(body)
    assert client.post(HOOK, body, content_type="application/json", HTTP_X_SAFAR_SIGNATURE=signature).status_code == 200

    again = client.post(HOOK, body, content_type="application/json", HTTP_X_SAFAR_SIGNATURE=signature)
    late = sign(body, timestamp=int(time.time()) - 301)
    stale = client.post(HOOK, body, content_type="application/json", HTTP_X_SAFAR_SIGNATURE=late)

    assert (again.status_code, again.json()["code"]) == (409, "replayed")
    assert (stale.status_code, stale.json()["code"]) == (403, "expired")


def test_an_old_style_signature_of_the_body_alone_is_refused(client, sent_sms):
    body = json.dumps({"provider_id": "prov-1", "status": "failed"}).encode()
    bare = hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
    assert client.post(HOOK, body, content_type="application/json", HTTP_X_SAFAR_SIGNATURE=bare).status_code == 403
    sent_sms.refresh_from_db()
    assert sent_sms.status == "sent"


def test_webhook_is_post_only(client):
    assert client.get(HOOK).status_code == 405


def test_referral_link_redirects_to_the_landing_page_with_the_code(client, settings):
    settings.AUTOMATION_REFERRAL_LANDING_URL = "https://shop.example/join"
    contact = ContactFactory()
    response = client.get(path_of(services.referral_link(contact)))
    assert response.status_code == 302
    assert response["Location"] == f"https://shop.example/join?ref={contact.referral_code}"
    assert response["Referrer-Policy"] == "no-referrer"
    assert client.get("/r/NOSUCHCODE/").status_code == 404
