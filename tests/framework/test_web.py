"""/healthz, the OpenAPI schema (every op of every family, with bodies) and the local docs page."""

from __future__ import annotations

import re
import socket

import pytest
from django.test import Client
from drf_spectacular.drainage import GENERATOR_STATS
from rest_framework.serializers import Serializer

from glow.core.ops import resolve as resolve_shape
from glow.core.registry import op_table, registry
from glow.core.routers import viewset_class


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.django_db
def test_healthz_reports_the_database(client, settings):
    settings.CELERY_BROKER_URL = ""
    settings.REDIS_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert "broker" not in body["checks"]


@pytest.mark.django_db
def test_healthz_is_503_when_the_broker_is_down(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    settings.REDIS_URL = ""
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is False and body["checks"]["broker"]["error"]


def test_docs_page_loads_swagger_ui_from_our_own_static_files(client, settings):
    settings.WHITENOISE_USE_FINDERS = True
    response = client.get("/api/v5/docs/try")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets), assets
    assert all(a.startswith("/") and not a.startswith("//") for a in assets), assets
    assert "cdn" not in html.lower()
    for asset in assets:
        assert Client().get(asset).status_code == 200, asset


@pytest.fixture(scope="module")
def schema() -> dict:
    """Fetched once over HTTP (generation takes a second); warnings are kept for the last test."""
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        # secure: module scope runs outside the autouse settings override of SSL redirects.
        response = Client().get("/api/v5/schema", {"format": "json"}, secure=True)
    assert response.status_code == 200
    document = response.json()
    document["x-warnings"] = dict(GENERATOR_STATS._warn_cache)
    document["x-errors"] = dict(GENERATOR_STATS._error_cache)
    return document


def resolve(document: dict, node: dict) -> dict:
    while "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def takes_fields(spec, family: str) -> bool:
    """An op whose request shape has no fields (drafts, refresh) rightly documents no body."""
    shape = resolve_shape(spec.request, registry.get(family))
    return not (isinstance(shape, type) and issubclass(shape, Serializer) and not shape().fields)


@pytest.mark.parametrize("family", [f.name for f in registry.families()])
def test_schema_lists_every_op_of_every_family_with_its_bodies(schema, family):
    prefix = f"/api/v5/artifacts/{family}/"
    documented = sorted(path[len(prefix) :] for path in schema["paths"] if path.startswith(prefix))
    assert documented == op_table()[family]

    ops = {}
    for spec in viewset_class(registry.get(family)).op_specs():
        for name in (spec.name, *spec.aliases):
            ops[name] = spec
    for name, spec in ops.items():
        item = schema["paths"][prefix + name]
        for verb in spec.methods:
            operation = item[verb]
            where = f"{verb.upper()} {prefix}{name}"
            if verb == "post" and takes_fields(spec, family):
                assert operation.get("requestBody", {}).get("content"), f"{where}: no request body"
            ok = operation["responses"].get("200") or operation["responses"].get("201")
            assert ok and ok.get("content"), f"{where}: no response body"
            assert "404" in operation["responses"] and "400" in operation["responses"], where


def test_schema_bodies_name_the_fields_clients_send_and_read(schema):
    for family in registry.families():
        if family.model is None or "get" not in op_table()[family.name]:
            continue
        get = schema["paths"][f"/api/v5/artifacts/{family.name}/get"]["post"]
        request = resolve(schema, get["requestBody"]["content"]["application/json"]["schema"])
        assert family.id_field in request["properties"], family.name
        # The server refuses keys it does not know; the schema says so.
        assert request["additionalProperties"] is False, family.name
    search = schema["paths"]["/api/v5/artifacts/persona/search"]["post"]
    response = resolve(schema, search["responses"]["200"]["content"]["application/json"]["schema"])
    assert {"actor_name", "personas", "total_count", "department_filter"} <= set(
        response["properties"]
    )
    assert {"ApiKeyHeader", "ApiKeyBearer"} <= set(schema["components"]["securitySchemes"])


def test_schema_documents_the_bodies_ops_really_answer(schema):
    """What schemathesis's response_schema_conformance holds the live server to (test_schema_fuzz)."""
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"detail", "code", "fields"}
    assert error["additionalProperties"] is False
    for path, item in schema["paths"].items():
        for verb, operation in item.items():
            statuses = operation["responses"]
            # Only uploads answer 201 (invocation/create answers 200 like every other op).
            assert ("201" in statuses) == ("upload" in operation["operationId"]), f"{verb} {path}"
            if path.endswith("/watch"):
                assert list(statuses["200"]["content"]) == ["text/event-stream"], path
    for family in registry.families():
        if family.output_serializer is not None:
            # A rendered row has every field: none may read as optional.
            row = schema["components"]["schemas"][family.output_serializer.__name__]
            assert set(row["required"]) == set(row["properties"]), family.name
    questions = schema["components"]["schemas"]["ScenarioOut"]["properties"]["questions"]
    assert questions["items"] == {"$ref": "#/components/schemas/QuestionOut"}  # StoredJSONField
    blank_or_uri = schema["components"]["schemas"]["ModelOut"]["properties"]["base_url"]["oneOf"]
    assert {"type": "string", "maxLength": 0} in blank_or_uri
    get = schema["paths"]["/api/v5/artifacts/attempt/get"]["post"]["responses"]["200"]
    answer = resolve(schema, get["content"]["application/json"]["schema"])
    assert [ref["$ref"].rsplit("/", 1)[-1] for ref in answer["oneOf"]] == [
        "AttemptGetResponse",
        "AttemptDeniedResponse",
    ]


def test_schema_generates_without_warnings_or_errors(schema):
    """Two components with one name, an op id used twice, or an enum named by a hash suffix
    (which changes whenever its choices do, breaking generated clients) make the schema wrong."""
    problems = [*schema["x-errors"], *schema["x-warnings"]]
    assert not problems, "\n".join(problems)
