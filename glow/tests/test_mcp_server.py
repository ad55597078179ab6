"""The MCP server in-process: tools generated from the API's ops, calls scoped like the API."""

from __future__ import annotations

import pytest
from mcp import Client

from attempts.models import Attempt
from glow.accounts.services import api_key_create
from glow.mcp_server import Dispatcher, build_server, tool_specs
from system.models import Run, Session

# The in-process dispatch runs the API in another thread: it must see committed rows.
pytestmark = pytest.mark.django_db(transaction=True)

TEXT = "I hear you. What worries you most? The next step is that we meet on Friday to plan."


def test_tools_are_the_api_ops_with_their_request_schemas():
    tools = {tool.name: tool for tool in tool_specs()}
    for name in (
        "simulation_search",
        "attempt_start",
        "attempt_message",
        "attempt_get",
        "attempt_complete",
        "test_start",
        "benchmark_get",
    ):
        assert name in tools, name
    start = tools["attempt_start"]
    assert start.path == "attempt/start"
    assert {"home_id", "practice_id"} <= set(start.input_schema["properties"])
    assert start.input_schema["type"] == "object"
    # Bytes and streams are not tools; their JSON neighbours are.
    assert not any(name.endswith(("_download", "_watch", "_upload")) for name in tools)


async def call(client, name, **arguments):
    result = await client.call_tool(name, arguments)
    return result.is_error, result.structured_content


async def test_an_agent_starts_an_attempt_replies_completes_and_reads_its_grade(
    learner, outsider, home
):
    key = await _key(learner)
    server = build_server(Dispatcher(), fixed_key=key)
    async with Client(server) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert "attempt_start" in listed
        error, started = await call(client, "attempt_start", home_id=str(home.pk))
        assert not error, started
        attempt_id, chat_id = started["attempt_id"], started["attempt_chat_id"]
        error, reply = await call(
            client, "attempt_message", attempt_id=attempt_id, chat_id=chat_id, message=TEXT
        )
        assert not error, reply
        error, ended = await call(
            client, "attempt_end", attempt_id=attempt_id, chat_id=chat_id, grade=True
        )
        assert not error, ended
        error, completed = await call(client, "attempt_complete", attempt_id=attempt_id)
        assert not error, completed
        error, bundle = await call(client, "attempt_get", attempt_id=attempt_id)
        assert not error, bundle
        assert bundle["attempt"]["status"] == "completed"
        assert completed["score"] is not None
        assert bundle["attempt"]["score_percent"] == f"{completed['score']}%"
    attempt = await Attempt.objects.aget(pk=attempt_id)
    assert attempt.profile_id == learner.pk
    # Recorded as an MCP client, like any API call with X-MCP.
    assert await Run.objects.filter(mcp=True).aexists()
    assert await Session.objects.filter(profile=learner, client_kind="mcp").aexists()

    outsider_server = build_server(Dispatcher(), fixed_key=await _key(outsider))
    async with Client(outsider_server) as client:
        error, body = await call(client, "attempt_get", attempt_id=attempt_id)
        assert error and body["code"] == "not_found"
        error, body = await call(client, "attempt_start", home_id=str(home.pk))
        assert error and body["code"] == "not_found"


async def test_a_wrong_key_answers_unauthenticated(home):
    server = build_server(Dispatcher(), fixed_key="glow_nope.wrong")
    async with Client(server) as client:
        error, body = await call(client, "simulation_search")
        assert error and body["code"] in {"invalid_api_key", "authentication_failed"}


async def _key(profile):
    from asgiref.sync import sync_to_async

    return (await sync_to_async(api_key_create)(profile=profile)).plaintext


async def test_a_learner_is_offered_and_may_call_only_the_ops_its_role_may(learner, instructor):
    """The API's op declarations gate MCP too: a staff op is neither listed nor called."""
    server = build_server(Dispatcher(), fixed_key=await _key(learner))
    async with Client(server) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert "attempt_start" in listed and "simulation_search" in listed
        assert not {"test_start", "attempt_review", "persona_publish"} & listed
        error, body = await call(client, "test_start")
        assert error and body["code"] == "permission_denied"
    staff_server = build_server(Dispatcher(), fixed_key=await _key(instructor))
    async with Client(staff_server) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert {"test_start", "attempt_review", "persona_publish"} <= listed
        assert "model_publish" not in listed  # admins only
