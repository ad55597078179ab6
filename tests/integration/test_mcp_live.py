"""The mcp SDK's own client against the real `glow mcp` process (stdio) and /mcp under uvicorn."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters

from attempts.models import Attempt
from glow.accounts.services import api_key_create
from system.models import Session

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

GLOW = Path(sys.executable).parent / "glow"
TEXT = "I hear you. What worries you most? The next step is that we meet on Friday to plan."


async def call(client, name, **arguments):
    result = await client.call_tool(name, arguments)
    return result.is_error, result.structured_content


async def run_attempt(client, home) -> str:
    tools = {tool.name for tool in (await client.list_tools()).tools}
    assert {"simulation_search", "attempt_start", "attempt_get"} <= tools
    assert "test_start" not in tools  # a learner's key is offered only the ops its role may call
    error, started = await call(client, "attempt_start", home_id=str(home.pk))
    assert not error, started
    attempt_id, chat_id = started["attempt_id"], started["attempt_chat_id"]
    for name, arguments in (
        ("attempt_message", {"chat_id": chat_id, "message": TEXT}),
        ("attempt_end", {"chat_id": chat_id, "grade": True}),
        ("attempt_complete", {}),
    ):
        error, body = await call(client, name, attempt_id=attempt_id, **arguments)
        assert not error, (name, body)
    error, bundle = await call(client, "attempt_get", attempt_id=attempt_id)
    assert not error and bundle["attempt"]["status"] == "completed", bundle
    assert bundle["attempt"]["score_percent"].endswith("%")
    return attempt_id


def stdio(services_env, key) -> StdioServerParameters:
    env = {**services_env, "GLOW_TOKEN": key}
    env.pop("GLOW_INSTANCE_URL", None)  # in-process: this installation's database
    return StdioServerParameters(command=str(GLOW), args=["mcp"], env=env)


async def test_glow_mcp_over_stdio_runs_an_attempt_and_refuses_other_organizations(
    services_env, learner, outsider, home
):
    from asgiref.sync import sync_to_async

    key = (await sync_to_async(api_key_create)(profile=learner)).plaintext
    outsider_key = (await sync_to_async(api_key_create)(profile=outsider)).plaintext
    async with Client(stdio(services_env, key)) as client:
        attempt_id = await run_attempt(client, home)
    attempt = await Attempt.objects.aget(pk=attempt_id)
    assert attempt.status == "completed" and attempt.profile_id == learner.pk
    assert await Session.objects.filter(profile=learner, client_kind="mcp").aexists()

    async with Client(stdio(services_env, outsider_key)) as client:
        for name, arguments in (
            ("attempt_get", {"attempt_id": attempt_id}),
            ("attempt_start", {"home_id": str(home.pk)}),
        ):
            error, body = await call(client, name, **arguments)
            assert error and body["code"] == "not_found", body


async def test_streamable_http_under_the_asgi_app(live_server_url, learner, outsider, home):
    from asgiref.sync import sync_to_async
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    assert httpx.post(f"{live_server_url}/mcp", json={}).status_code == 401
    key = (await sync_to_async(api_key_create)(profile=learner)).plaintext
    outsider_key = (await sync_to_async(api_key_create)(profile=outsider)).plaintext

    def transport(token):
        http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
        return streamable_http_client(f"{live_server_url}/mcp", http_client=http)

    async with Client(transport(key)) as client:
        attempt_id = await run_attempt(client, home)
    async with Client(transport(outsider_key)) as client:
        error, body = await call(client, "attempt_get", attempt_id=attempt_id)
        assert error and body["code"] == "not_found", body
