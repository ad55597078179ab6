"""One error shape everywhere: {"detail", "code", "fields"} for 400, 401, 404, 405, 409, 422 and 500."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.test import RequestFactory
from rest_framework import exceptions as drf

from glow import urls
from glow.core import errors

pytestmark = pytest.mark.django_db


def assert_shape(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) >= {"detail", "code", "fields"}
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["fields"], dict)
    if code:
        assert body["code"] == code
    return body


@pytest.mark.parametrize(
    "path",
    ["/api/v5/nothing-here", "/api/v4/artifacts/persona/get", "/api/v5/artifacts/persona/nope"],
)
def test_unknown_api_paths_answer_json_404(admin_client, client, path):
    assert_shape(admin_client.post(path, {}, format="json"), 404, "not_found")
    assert_shape(client.get(path), 404, "not_found")


def test_a_get_on_a_post_op_is_405_in_the_shape(admin_client):
    assert_shape(admin_client.get("/api/v5/artifacts/persona/search"), 405)


def test_malformed_json_and_non_object_bodies_are_400(admin_client):
    response = admin_client.post(
        "/api/v5/artifacts/persona/search", "{not json", content_type="application/json"
    )
    assert_shape(response, 400)
    response = admin_client.post(
        "/api/v5/artifacts/persona/search", "[1, 2]", content_type="application/json"
    )
    assert_shape(response, 400, "invalid_body")


def test_missing_and_ill_typed_fields_are_named(admin_client):
    body = assert_shape(admin_client.op("persona/draft", {"data": "text"}), 400, "invalid")
    assert set(body["fields"]) == {"version", "data"}
    assert body["detail"].startswith(("version", "data"))


def test_the_handler_renders_domain_errors_with_their_extras():
    context = {"request": None, "view": None}
    for exc, status in (
        (errors.ApplicationError("Bad.", fields={"x": ["No."]}), 400),
        (errors.NotFound("Gone."), 404),
        (errors.PermissionDenied("Not you."), 403),
        (
            errors.ConflictError("Stale.", code="version_conflict", extra={"current_version": 3}),
            409,
        ),
        (errors.StateError("Completed already."), 422),
    ):
        response = errors.exception_handler(exc, context)
        assert response.status_code == status
        assert response.data["detail"] == exc.detail and response.data["code"] == exc.code
        assert response.data["fields"] == exc.fields
    conflict = errors.exception_handler(
        errors.ConflictError("Stale.", extra={"current_version": 3}), context
    )
    assert conflict.data["current_version"] == 3


def test_the_handler_maps_django_and_drf_errors_into_the_shape():
    context = {"request": None, "view": None}
    response = errors.exception_handler(DjangoValidationError({"title": ["Too long."]}), context)
    assert response.status_code == 400
    assert response.data == {
        "detail": "title: Too long.",
        "code": "invalid",
        "fields": {"title": ["Too long."]},
    }
    response = errors.exception_handler(drf.Throttled(wait=7), context)
    assert response.status_code == 429 and response.data["retry_after"] == 7
    response = errors.exception_handler(drf.NotAuthenticated(), context)
    assert response.data["code"] == "not_authenticated"


def test_server_errors_under_api_answer_json_and_elsewhere_html():
    factory = RequestFactory()
    response = urls.handler500(factory.get("/api/v5/artifacts/persona/get"))
    assert response.status_code == 500
    assert json.loads(response.content) == {
        "detail": "The server could not complete the request.",
        "code": "server_error",
        "fields": {},
    }
    page = urls.handler500(factory.get("/admin/"))
    assert page.status_code == 500 and not page["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("method", ["trace", "get", "put", "patch", "delete"])
def test_an_op_answers_405_to_methods_it_does_not_take(admin_client, method):
    """An op named like an HTTP verb (invocation/trace) must not run for that verb."""
    response = getattr(admin_client, method)("/api/v5/artifacts/invocation/trace")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_an_unknown_op_answers_the_json_404_to_every_method_with_csrf_on(org_admin):
    """No CSRF page before routing: an API key client (or a browser session) posting to an op
    that does not exist learns it does not exist."""
    from django.test import Client

    from glow.accounts.services import api_key_create

    key = api_key_create(profile=org_admin).plaintext
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(org_admin.user)
    for client, headers in ((Client(enforce_csrf_checks=True), {"HTTP_X_API_KEY": key}),
                            (browser, {})):  # fmt: skip
        url = "/api/v5/artifacts/attempt/no-such-op"
        assert_shape(client.get(url, **headers), 404, "not_found")
        for method in ("post", "put", "patch", "delete"):
            response = getattr(client, method)(
                url, data="{}", content_type="application/json", **headers
            )
            assert_shape(response, 404, "not_found")


def test_an_unknown_body_field_answers_400_naming_it_with_the_closest_one(admin_client):
    """A typo must never widen a search: `test_id` is not `test_ids`."""
    response = admin_client.post(
        "/api/v5/artifacts/test/archive",
        {"all": True, "test_id": "0190a5c4-0000-7000-8000-000000000000", "archived": True},
        format="json",
    )
    body = assert_shape(response, 400, "unknown_field")
    assert "did you mean 'test_ids'" in body["fields"]["test_id"][0]
    response = admin_client.post(
        "/api/v5/artifacts/attempt/search", {"page_sise": 5}, format="json"
    )
    body = assert_shape(response, 400, "unknown_field")
    assert "did you mean 'page_size'" in body["fields"]["page_sise"][0]
    response = admin_client.post(
        "/api/v5/artifacts/persona/search", {"zzz": 1, "qqq": 2}, format="json"
    )
    body = assert_shape(response, 400, "unknown_field")
    assert set(body["fields"]) == {"zzz", "qqq"}
    # Documented aliases are not unknown: `id` for `persona_id`, `page` beside `page_offset`.
    assert (
        admin_client.post(
            "/api/v5/artifacts/persona/search", {"page": 0}, format="json"
        ).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v5/artifacts/invocation/trace", ["POST", "OPTIONS"]),
        ("/api/v5/artifacts/persona/search", ["POST", "OPTIONS"]),
        ("/api/v5/artifacts/persona/watch", ["GET", "POST", "HEAD", "OPTIONS"]),
    ],
)
@pytest.mark.parametrize("method", ["TRACE", "PUT", "DELETE"])
def test_a_405_allows_only_the_methods_the_op_is_mounted_for(admin_client, path, allowed, method):
    """The Allow header is what a client may retry with: never TRACE (the `trace` op is a POST).
    OPTIONS answers with the same header."""
    response = admin_client.generic(method, path)
    assert response.status_code == 405
    assert sorted(response["Allow"].split(", ")) == sorted(allowed)
    options = admin_client.options(path)
    assert options.status_code == 200
    assert sorted(options["Allow"].split(", ")) == sorted(allowed)
