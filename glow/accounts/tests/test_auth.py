"""API keys: stored hashed, accepted as X-Api-Key or Bearer, refused (401) when revoked, expired or wrong."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from glow.accounts.auth import ApiKeyAuthentication, is_mcp, presented_key
from glow.accounts.models import ApiKey
from glow.accounts.services import api_key_create, api_key_revoke
from glow.accounts.tests.factories import ProfileFactory, UserFactory

pytestmark = pytest.mark.django_db

OP = "/api/v5/artifacts/persona/search"


def post(key: str | None = None, *, header: str = "x-api-key", **extra):
    client = APIClient()
    if key is not None and header == "x-api-key":
        extra["HTTP_X_API_KEY"] = key
    elif key is not None:
        extra["HTTP_AUTHORIZATION"] = f"{header} {key}"
    return client.post(OP, {}, format="json", **extra)


def assert_401(response, code: str) -> None:
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == code and body["detail"] and body["fields"] == {}
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_only_the_hash_and_a_prefix_are_stored(learner):
    created = api_key_create(profile=learner, name="laptop")
    plaintext = created.plaintext
    row = ApiKey.objects.get(pk=created.api_key.pk)
    assert row.hashed_key == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext.startswith(f"glow_{row.prefix}_") and len(row.prefix) == 8
    secret = plaintext.split("_", 2)[2]
    assert len(secret) >= 40
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM accounts_apikey")
        stored = " ".join(str(value) for record in cursor.fetchall() for value in record)
    assert secret not in stored and plaintext not in stored
    assert row.prefix in stored


def test_createapikey_prints_the_key_alone_on_its_last_line(learner):
    out, err = StringIO(), StringIO()
    call_command("createapikey", learner.user.username, "--name", "cli", stdout=out, stderr=err)
    key = out.getvalue().strip().splitlines()[-1]
    assert key.startswith("glow_") and " " not in key
    row = ApiKey.objects.get(profile=learner)
    assert row.name == "cli" and row.hashed_key == hashlib.sha256(key.encode()).hexdigest()
    assert post(key).status_code == 200
    with pytest.raises(CommandError):
        call_command("createapikey", "nobody-by-that-name", stdout=StringIO(), stderr=StringIO())


def test_x_api_key_and_bearer_both_authenticate_and_record_use(learner):
    key = api_key_create(profile=learner).plaintext
    first = post(key)
    assert first.status_code == 200, first.content
    assert first.json()["actor_name"] == learner.name
    assert post(key, header="Bearer").status_code == 200
    assert post(key, header="bearer").status_code == 200
    assert ApiKey.objects.get(profile=learner).last_used_at is not None


def test_no_key_wrong_key_revoked_and_expired_answer_401_in_the_error_shape(learner):
    assert_401(post(), "not_authenticated")
    key = api_key_create(profile=learner)
    prefix = key.api_key.prefix
    assert_401(post(f"glow_{prefix}_not-the-secret"), "invalid_api_key")
    assert_401(post("glow_00000000_unknown"), "invalid_api_key")
    assert_401(post("not-even-shaped-like-a-key"), "invalid_api_key")
    assert_401(post("x" * 5000, header="Bearer"), "invalid_api_key")

    api_key_revoke(api_key=key.api_key)
    assert_401(post(key.plaintext), "revoked_api_key")
    assert_401(post(key.plaintext, header="Bearer"), "revoked_api_key")

    expired = api_key_create(profile=learner, expires_at=timezone.now() - timedelta(seconds=1))
    assert_401(post(expired.plaintext), "expired_api_key")
    later = api_key_create(profile=learner, expires_at=timezone.now() + timedelta(days=1))
    assert post(later.plaintext).status_code == 200


def test_a_disabled_user_or_a_user_without_profile_is_refused(learner):
    key = api_key_create(profile=learner).plaintext
    learner.user.is_active = False
    learner.user.save()
    assert_401(post(key), "inactive")

    client = APIClient()
    client.force_login(UserFactory())
    response = client.post(OP, {}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "permission_denied"


def test_django_session_login_works_for_the_api(learner):
    client = APIClient()
    client.force_login(learner.user)
    response = client.post(OP, {}, format="json")
    assert response.status_code == 200 and response.json()["actor_name"] == learner.name


def test_key_headers_and_the_mcp_flag_are_parsed():
    factory = APIRequestFactory()
    assert presented_key(factory.post("/", HTTP_X_API_KEY=" k1 ")) == "k1"
    assert presented_key(factory.post("/", HTTP_AUTHORIZATION="Bearer k2")) == "k2"
    assert presented_key(factory.post("/", HTTP_AUTHORIZATION="Basic abc")) is None
    assert presented_key(factory.post("/", HTTP_AUTHORIZATION="Bearer ")) is None
    assert is_mcp(factory.post("/", HTTP_X_MCP="1"))
    assert is_mcp(factory.post("/", HTTP_X_MCP="true"))
    assert not is_mcp(factory.post("/", HTTP_X_MCP="0"))
    assert not is_mcp(factory.post("/"))


def test_the_mcp_flag_is_available_on_an_authenticated_request(learner):
    key = api_key_create(profile=learner).plaintext
    raw = APIRequestFactory().post("/", HTTP_X_API_KEY=key, HTTP_X_MCP="1")
    user, api_key = ApiKeyAuthentication().authenticate(Request(raw))
    assert user == learner.user and api_key.profile == learner
    assert raw.glow_mcp is True and raw.glow_auth == "api_key"


def test_admin_shows_a_new_keys_secret_once(org_admin):
    superuser = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    client = APIClient()
    client.force_login(superuser)
    profile = ProfileFactory(organization=org_admin.organization)
    response = client.post(
        "/admin/accounts/apikey/add/",
        {"profile": str(profile.pk), "name": "from admin", "expires_at_0": "", "expires_at_1": ""},
        follow=True,
    )
    assert response.status_code == 200
    shown = [str(m) for m in response.context["messages"]]
    secret_message = next(message for message in shown if "glow_" in message)
    plaintext = secret_message.split(": ", 1)[1].strip()
    row = ApiKey.objects.get(profile=profile)
    assert row.name == "from admin"
    assert row.hashed_key == hashlib.sha256(plaintext.encode()).hexdigest()
    assert post(plaintext).status_code == 200
    change = client.get(f"/admin/accounts/apikey/{row.pk}/change/")
    assert plaintext not in change.content.decode()
