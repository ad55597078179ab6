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
