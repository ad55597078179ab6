"""Abuse limits and browser security: throttles with Retry-After, 413 bodies, CSP, login lockout."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from django.core.cache import cache
from django.test import Client

from glow.core.throttling import scope_of

pytestmark = pytest.mark.django_db


def test_reads_over_the_rate_answer_429_with_retry_after(admin_client, settings):
    settings.GLOW_THROTTLE_RATES = {**settings.GLOW_THROTTLE_RATES, "read": "3/min"}
    statuses = [admin_client.op("persona/search").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = admin_client.op("persona/search")
    assert limited.json()["code"] == "throttled"
    assert int(limited["Retry-After"]) > 0


def test_throttles_count_per_api_key(org_admin, make_client, settings):
    settings.GLOW_THROTTLE_RATES = {**settings.GLOW_THROTTLE_RATES, "read": "2/min"}
    first, second = make_client(org_admin), make_client(org_admin)
    assert [first.op("persona/search").status_code for _ in range(3)] == [200, 200, 429]
    assert second.op("persona/search").status_code == 200


class _View:
    """Just enough of a viewset for the throttle to read which op is called."""

    def __init__(self, op_name: str):
        self.action = op_name.replace("/", "_")
        self.op_name = op_name

    def spec(self, action):
        return SimpleNamespace(name=self.op_name)


@pytest.mark.parametrize(
    ("op_name", "scope"),
    [
        ("generate", "generate"),
        ("message", "ai"),
        ("audio/frame", "ai"),
        ("search", "read"),
        ("get", "read"),
    ],
)
def test_generation_and_ai_ops_have_their_own_buckets(op_name, scope):
    assert scope_of(_View(op_name)) == scope


def test_oversized_json_body_answers_413_in_the_error_shape(admin_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = json.dumps({"search": "x" * 5000})
    response = admin_client.post(
        "/api/v5/artifacts/persona/search", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_staff_and_admin_pages_carry_a_content_security_policy(org_admin):
    browser = Client()
    response = browser.get("/admin/login/")
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_login_locks_after_repeated_failures_even_with_the_right_password(org_admin, settings):
    settings.GLOW_LOGIN_MAX_FAILURES = 3
    org_admin.user.is_staff = True
    org_admin.user.save()
    username = org_admin.user.username
    browser = Client()
    for _ in range(3):
        assert not browser.login(username=username, password="wrong")
    assert not browser.login(username=username, password="pw-for-tests")
    # Never cache.clear(): in the services profile the cache shares Redis with the broker.
    cache.delete(f"login-failures:{username}")
    assert browser.login(username=username, password="pw-for-tests")


# A Redis that refuses connections at once: the cache of a production profile whose Redis is down.
UNREACHABLE_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
    }
}


def test_signing_in_works_while_the_cache_is_unreachable(org_admin, settings, caplog):
    settings.CACHES = UNREACHABLE_CACHE
    settings.GLOW_LOGIN_MAX_FAILURES = 1
    org_admin.user.is_staff = True
    org_admin.user.save()
    browser = Client()

    wrong = browser.post(
        "/admin/login/", {"username": org_admin.user.username, "password": "wrong"}
    )
    right = browser.post(
        "/admin/login/", {"username": org_admin.user.username, "password": "pw-for-tests"}
    )

    assert wrong.status_code == 200  # the form again, with its error: not a 500
    assert right.status_code == 302  # no lockout is known, so none is enforced
    assert "Cache unavailable" in caplog.text
