"""Rules a request shape declares once (GivenRule, text patterns) are both enforced and in the
schema: a body the schema calls valid is one the server takes."""

from __future__ import annotations

import re
import uuid

import pytest

from attempts.serializers import AttemptStartRequest
from glow.core.docs import full_schema

OP = "/api/v5/artifacts/"


def component(name: str) -> dict:
    return full_schema()["components"]["schemas"][name]


def test_exactly_one_of_is_a_oneof_of_required_keys_and_the_example_keeps_it():
    start = component("AttemptStartRequestRequest")
    assert [branch["required"] for branch in start["oneOf"]] == [["home_id"], ["practice_id"]]
    assert start["example"] == {"home_id": start["example"]["home_id"]}  # one id, not both
    assert AttemptStartRequest.given_rules[0].message in start["description"]
    # No body at all breaks the rule too, so the body is required.
    assert full_schema()["paths"][f"{OP}attempt/start"]["post"]["requestBody"]["required"] is True


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"home_id": str(uuid.uuid4()), "practice_id": str(uuid.uuid4())}, 400),
        ({"home_id": None, "practice_id": None}, 400),
        ({}, 400),
        ({"home_id": str(uuid.uuid4()), "practice_id": None}, 404),  # valid: an unknown home
    ],
)
def test_attempt_start_takes_exactly_one_id(admin_client, body, status):
    response = admin_client.post(f"{OP}attempt/start", body, format="json")
    assert response.status_code == status, response.json()
    if status == 400:
        assert set(response.json()["fields"]) == {"home_id", "practice_id"}


def test_publish_names_a_row_only_with_its_version(admin_client):
    publish = component("PersonaPublishRequestRequest")
    assert {"required": ["data", "version", "persona_id"]}.items() <= {
        "required": publish["anyOf"][2]["required"]
    }.items()
    row = str(uuid.uuid4())
    refused = admin_client.post(
        f"{OP}persona/publish", {"persona_id": row, "data": {}}, format="json"
    )
    assert refused.status_code == 400 and "draft_id" in refused.json()["fields"]
    taken = admin_client.post(
        f"{OP}persona/publish", {"persona_id": row, "data": {}, "version": 1}, format="json"
    )
    assert taken.status_code == 404


def test_archive_names_rows_or_all(admin_client):
    archive = component("PersonaArchiveRequestRequest")
    assert [b["required"] for b in archive["anyOf"]] == [["persona_ids"], ["ids"], ["all"]]
    assert (
        admin_client.post(f"{OP}persona/archive", {"all": False}, format="json").status_code == 400
    )
    assert (
        admin_client.post(f"{OP}persona/archive", {"all": True}, format="json").status_code == 200
    )


@pytest.mark.parametrize("text", ["   ", "a\x00b", ""])
def test_a_text_the_pattern_refuses_is_one_the_server_refuses(admin_client, text):
    title = component("PersonaTitleRequestRequest")["properties"]["title"]
    assert re.search(title["pattern"], text) is None
    response = admin_client.post(
        f"{OP}persona/title", {"persona_id": str(uuid.uuid4()), "title": text}, format="json"
    )
    assert response.status_code == 400 and "title" in response.json()["fields"]


def test_an_upload_is_a_binary_multipart_file_of_the_types_the_op_stores():
    paths = full_schema()["paths"]
    audio = paths[f"{OP}attempt/audio_upload"]["post"]["requestBody"]["content"]
    assert list(audio) == ["multipart/form-data"]
    assert audio["multipart/form-data"]["encoding"]["file"]["contentType"].split(", ") == [
        "audio/mpeg",
        "audio/ogg",
        "audio/wav",
        "audio/webm",
    ]
    body = component("AttemptUploadRequestRequest")["properties"]["file"]
    # The server refuses an empty file.
    assert body == {"type": "string", "format": "binary", "minLength": 1}


def test_watch_over_get_keeps_its_rule_in_one_exploded_query_parameter(admin_client):
    get = full_schema()["paths"][f"{OP}persona/watch"]["get"]
    [query] = [p for p in get["parameters"] if p["in"] == "query"]
    assert query["style"] == "form" and query["explode"] is True
    assert [b["required"] for b in query["schema"]["anyOf"]] == [["run_id"], ["group_id"]]
    # No null in a query string: "run_id=null" is text, refused as a UUID.
    assert not any(p.get("nullable") for p in query["schema"]["properties"].values())
    assert admin_client.get(f"{OP}persona/watch").status_code == 400


def test_publish_data_is_the_family_write_shape_whole_to_create_partial_to_edit():
    branches = component("PersonaPublishRequestRequest")["anyOf"]
    datas = [branch["properties"].get("data") for branch in branches]
    whole, patched = (
        {"$ref": "#/components/schemas/PersonaWriteRequest"},
        {"$ref": "#/components/schemas/PatchedPersonaWriteRequest"},
    )
    assert datas == [None, whole, patched, patched]
    assert component("PersonaWriteRequest")["required"] == ["title"]
    assert "required" not in component("PatchedPersonaWriteRequest")
    # A draft holds edits: the partial shape.
    assert component("PersonaDraftRequestRequest")["properties"]["data"] == patched
    # Tests and attempts come from their start ops: publish only edits one.
    for name in ("Test", "Attempt"):
        rule = component(f"{name}PublishRequestRequest")["anyOf"]
        assert [branch["required"] for branch in rule] == [
            ["draft_id"],
            ["data", "version", f"{name.lower()}_id"],
            ["data", "version", "id"],
        ]


def test_publish_without_an_id_of_a_family_that_starts_its_rows_is_refused(admin_client):
    response = admin_client.post(f"{OP}test/publish", {"data": {}}, format="json")
    assert response.status_code == 400 and "draft_id" in response.json()["fields"]


def test_a_fields_own_regex_is_its_pattern():
    name = component("ToolWriteRequest")["properties"]["name"]
    assert name["pattern"] == "^[-a-zA-Z0-9_]+$"


def test_filters_say_their_type_and_choices():
    search = component("AttemptSearchRequestRequest")["properties"]
    assert search["target_profile_id"] == {"type": "string", "format": "uuid", "nullable": True}
    refs = [ref["$ref"].rsplit("/", 1)[-1] for ref in search["status"]["oneOf"]]
    assert refs == ["AttemptStatusEnum", "BlankEnum", "NullEnum"]


def test_a_decimal_as_text_has_a_digit_and_no_sign_when_negatives_are_refused(admin_client):
    pattern = component("TestFeedbackRequestRequest")["properties"]["score"]["pattern"]
    assert pattern == "^[0-9]{1,8}(?:\\.[0-9]{1,2})?$"
    for text in ("", "-1", ".", "123456789"):
        assert not re.match(pattern, text)
    assert re.match(pattern, "12.5")


def test_a_map_says_how_many_keys_it_takes(admin_client):
    chat_map = component("AttemptUsePreviousRequestRequest")["properties"]["previous_chat_map"]
    assert (chat_map["minProperties"], chat_map["maxProperties"]) == (1, 200)
    body = {"attempt_id": str(uuid.uuid4())}
    empty = admin_client.post(
        f"{OP}attempt/use-previous", {**body, "previous_chat_map": {}}, format="json"
    )
    assert empty.status_code == 400
    # Keys are chat ids of the attempt, which the op checks (OpenAPI 3.0 cannot constrain keys):
    # any key the schema allows reaches it, and an unknown attempt answers 404.
    odd = {**body, "previous_chat_map": {"not-a-chat": str(uuid.uuid4())}}
    assert admin_client.post(f"{OP}attempt/use-previous", odd, format="json").status_code == 404


def test_an_optional_id_given_as_blank_is_absent(admin_client):
    # `given` counts "" as not given, so the rule's "no id" branch allows it: publish creates.
    body = {"data": {"title": "Blank id"}, "id": "", "persona_id": None}
    response = admin_client.post(f"{OP}persona/publish", body, format="json")
    assert response.status_code == 200 and response.json()["title"] == "Blank id"


def _json_schema(node):
    """A component as JSON Schema, for jsonschema: refs into the document, the key rule OpenAPI
    3.0 spells `x-propertyNames`, and `nullable` as a null branch."""
    if isinstance(node, list):
        return [_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _json_schema(value) for key, value in node.items()}
    if "x-propertyNames" in node:
        node["propertyNames"] = node.pop("x-propertyNames")
    if "$ref" in node:
        node["$ref"] = "#/definitions/" + node["$ref"].rsplit("/", 1)[-1]
    if node.pop("nullable", False):
        node = {"anyOf": [node, {"type": "null"}]}
    return node


def accepts(schema: dict, value) -> bool:
    import jsonschema

    definitions = _json_schema(full_schema()["components"]["schemas"])
    checker = jsonschema.Draft7Validator.FORMAT_CHECKER
    validator = jsonschema.Draft7Validator(
        {**_json_schema(schema), "definitions": definitions}, format_checker=checker
    )
    return validator.is_valid(value)


@pytest.mark.parametrize(
    ("shape", "key"),
    [
        ("EvalWriteRequest", "settings"),
        ("ToolWriteRequest", "json_schema"),
        ("ArtifactGenerateConfigRequest", "params"),
    ],
)
def test_free_form_json_takes_any_json_but_u0000_in_keys_or_text(shape, key):
    schema = component(shape)["properties"][key]
    assert accepts(schema, {"a": {"b c": [1, 2.5, "x", None, True, {}]}, "": ""})
    # jsonb cannot hold U+0000; OpenAPI 3.0 has no keyword for keys, so an extension states it.
    assert not accepts(schema, {"a\x00": 1})
    assert not accepts(schema, {"a": ["\x00"]})
    assert not accepts(schema, {"a": {"b\x00": None}})


@pytest.mark.parametrize("data", [{"a\x00": 1}, {"a": {"b": ["\x00"]}}, {"a": {"b\x00": 1}}])
def test_u0000_in_free_form_json_is_refused_as_the_schema_says(admin_client, data):
    body = {"data": {"title": "Eval", "rubric": str(uuid.uuid4()), "settings": data}}
    response = admin_client.post(f"{OP}eval/publish", body, format="json")
    assert response.status_code == 400 and "data" in response.json()["fields"]
    generate = {"title": "Persona", "config": {"params": data}}
    response = admin_client.post(f"{OP}persona/generate", generate, format="json")
    assert response.status_code == 400 and "config" in response.json()["fields"]


DEFAULTS = [None, "text", "2024-02-29", "2024-02-30", 3, 2.5, True, [], {"a": 1}]


@pytest.mark.parametrize("kind", ["string", "integer", "number", "boolean", "date"])
def test_a_new_fields_default_is_of_its_type_as_the_model_checks_it(kind):
    from glow.catalog.models import field_problems

    [branch] = [
        branch
        for branch in component("InputFieldWriteRequest")["oneOf"]
        if branch["properties"]["type"] == {"allOf": [{"enum": [kind]}]}
    ]
    for value in DEFAULTS:
        fits = not field_problems(kind=kind, enum_values=[], default=value)
        assert accepts(branch["properties"]["default"], value) == fits, (kind, value)
    # Only an enum lists values.
    assert not accepts(branch["properties"]["enum_values"], ["a"])


def test_a_field_created_without_a_type_is_text_and_an_enum_lists_its_values(admin_client):
    whole = component("InputFieldWriteRequest")
    body = {"title": "Grade", "name": "grade", "default": 5}
    assert not accepts(whole, body)  # no type: a string field, so a number is no default
    response = admin_client.post(f"{OP}field/publish", {"data": body}, format="json")
    assert response.status_code == 400 and "default" in str(response.json()["fields"])
    listed = {**body, "type": "enum", "enum_values": ["a", "b"], "default": None}
    assert accepts(whole, listed)
    response = admin_client.post(f"{OP}field/publish", {"data": listed}, format="json")
    assert response.status_code == 200, response.json()
    assert not accepts(whole, {**listed, "enum_values": []})
    dated = {**body, "type": "date", "default": "2024-02-29"}
    assert accepts(whole, dated)
    response = admin_client.post(f"{OP}field/publish", {"data": dated}, format="json")
    assert response.status_code == 200, response.json()
