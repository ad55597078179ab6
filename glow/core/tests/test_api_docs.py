"""The API docs page: one family's ops at a time, aliases folded into their op, the full schema
still served whole for clients and the CLI."""

from __future__ import annotations

import json

from django.test import Client

from glow.core.docs import docs_families, full_schema
from glow.core.registry import registry

ARTIFACTS = "/api/v5/artifacts/"


def family_document(name: str) -> dict:
    response = Client().get(f"/api/v5/schema/{name}", secure=True)
    assert response.status_code == 200
    return json.loads(response.content)


def refs(node) -> set[str]:
    found = set()
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.add(node["$ref"])
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def test_a_family_document_holds_that_familys_ops_once_each_and_resolves_on_its_own():
    document = family_document("attempt")
    assert document["paths"]
    assert all(path.startswith(f"{ARTIFACTS}attempt/") for path in document["paths"])
    # An alias is named under its op, not repeated as a path.
    assert f"{ARTIFACTS}attempt/file_download" not in document["paths"]
    download = document["paths"][f"{ARTIFACTS}attempt/file/download"]["post"]
    assert download["x-glow-aliases"] == [f"{ARTIFACTS}attempt/file_download"]
    assert "file_download" in download["description"]
    for ref in refs(document):
        section, name = ref.removeprefix("#/components/").split("/")
        assert name in document["components"][section], ref


def test_the_full_schema_keeps_every_alias_path_marked_as_an_alias():
    paths = full_schema()["paths"]
    alias = paths[f"{ARTIFACTS}attempt/file_download"]["post"]
    assert alias["x-glow-alias-of"] == "file/download"
    assert alias["x-glow-family"] == "attempt" and alias["x-glow-op"] == "file_download"
    folded = sum(len(family_document(name)["paths"]) for name in ("attempt", "persona"))
    whole = [p for p in paths if p.startswith((f"{ARTIFACTS}attempt/", f"{ARTIFACTS}persona/"))]
    assert folded < len(whole)


def test_the_picker_offers_every_family_and_marks_the_one_shown(client):
    response = client.get("/api/v5/docs", {"family": "persona"})
    assert response.status_code == 200
    html = response.content.decode()
    for family in registry.families():
        assert family.name in docs_families()
        assert f'href="/api/v5/docs?family={family.name}"' in html
    assert 'href="/api/v5/docs?family=persona" aria-current="page"' in html
    assert 'href="/api/v5/docs/try?family=persona"' in html  # Swagger UI, to try requests


def test_the_reference_page_is_drawn_on_the_server_with_fields_rules_aliases_and_answers(client):
    """No script runs before a reader sees an op: the page is the family's slice as HTML."""
    html = client.get("/api/v5/docs", {"family": "attempt"}).content.decode()
    assert "<script" not in html
    start = html[html.index("<code>/api/v5/artifacts/attempt/start</code>") :]
    start = start[: start.index("</section>")]
    assert "<code>home_id</code>" in start and "<code>practice_id</code>" in start
    assert "Give exactly one of home_id or practice_id." in start  # the rule, said once
    assert "<td>422</td>" in start and "<td>403</td>" in start  # every status it answers
    download = html[html.index("<code>/api/v5/artifacts/attempt/file/download</code>") :]
    assert "<code>/api/v5/artifacts/attempt/file_download</code>" in download.split("</section>")[0]
    assert html.count("<code>/api/v5/artifacts/attempt/file_download</code>") == 1  # not a path
    archive = client.get("/api/v5/docs", {"family": "persona"}).content.decode()
    assert "<code>search</code>" in archive
    assert "string or string" not in archive  # branches differing only in a pattern read as one


def test_swagger_ui_stays_one_link_away_on_the_familys_document(client):
    response = client.get("/api/v5/docs/try", {"family": "persona"})
    assert response.status_code == 200
    html = response.content.decode()
    assert '"/api/v5/schema/persona"' in html  # what Swagger UI loads
    assert 'href="/api/v5/docs/try?family=attempt"' in html


def test_an_unknown_family_answers_404_with_the_picker(client):
    for url in ("/api/v5/docs", "/api/v5/docs/try"):
        page = client.get(url, {"family": "nope"})
        assert page.status_code == 404
        assert "No family named nope" in page.content.decode()
    assert client.get("/api/v5/schema/nope").json()["code"] == "not_found"


def test_the_description_shows_the_op_path_as_code_not_as_html():
    """Swagger UI reads it as Markdown: a bare <family> was an HTML tag, shown as artifacts//."""
    text = full_schema()["info"]["description"]
    assert "`/api/v5/artifacts/{family}/{op}`" in text and "<family>" not in text


def test_every_familys_reference_page_draws_each_op_once(client):
    for family in docs_families():
        response = client.get("/api/v5/docs", {"family": family})
        assert response.status_code == 200, family
        html = response.content.decode()
        methods = {"get", "post", "put", "patch", "delete"}
        operations = sum(
            len(methods & item.keys()) for item in family_document(family)["paths"].values()
        )
        assert html.count('<section class="op"') == operations, family
