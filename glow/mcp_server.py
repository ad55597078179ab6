"""Glow's MCP server: every JSON op of the API as a Model Context Protocol tool.

The tools are read from the same registry and OpenAPI schema that mount the API and drive the
CLI: one tool per canonical op (`attempt_start`, `simulation_search`, ...), its input schema the
op's request schema. A tool call is the API call itself, made in-process (or to
GLOW_INSTANCE_URL) with the caller's API key and `X-MCP: 1`, so authentication, role and
organization scoping, errors and the MCP marking on the Session and Runs are exactly the API's.
In-process, the key's role is also asked of each op's declaration (`op_allows`, the API's own
gate): tools/list offers only the ops the role may call, and a call to another answers 403
without a request.

Two transports:
- stdio: `glow mcp` (the key from GLOW_TOKEN or --token), for agents that spawn their tools;
- streamable HTTP at /mcp under glow.asgi, each request carrying its own key
  (`Authorization: Bearer <key>` or `X-Api-Key`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any

import httpx

API_PREFIX = "/api/v5/artifacts/"
SERVER_NAME = "glow"
INSTRUCTIONS = (
    "Glow: practise hard conversations against AI-simulated people. Tools are Glow's API ops, "
    "named <family>_<op>. Typical agent flow: simulation_search or home_search to find an "
    "entry, attempt_start with its id (home_id or practice_id), attempt_message to reply, "
    "attempt_end and attempt_complete to be graded, attempt_get to read the grade; test_start "
    "runs a benchmark grid and benchmark_get reads it. Errors come back as the API's JSON "
    "shape {detail, code, fields}; another organization's ids answer not found."
)
# Ops that move bytes or hold a stream open: an MCP tool answers one JSON value.
BYTE_OPS = ("download", "preview", "upload", "watch", "audio/frame")


@dataclass(frozen=True)
class ToolSpec:
    name: str  # the OpenAPI operationId: "attempt_start"
    path: str  # under /api/v5/artifacts/: "attempt/start"
    description: str
    input_schema: dict
    family: str = ""  # "attempt"
    op: str = ""  # "start"


def _is_json_op(op_name: str) -> bool:
    return not any(op_name == word or op_name.endswith(word) for word in BYTE_OPS)


def _with_defs(schema: dict, components: Mapping[str, dict]) -> dict:
    """The request schema with every component it references copied into `$defs`."""
    needed: dict[str, dict] = {}

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                node["$ref"] = f"#/$defs/{name}"
                if name not in needed and name in components:
                    needed[name] = json.loads(json.dumps(components[name]))
                    walk(needed[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    root = json.loads(json.dumps(schema))
    walk(root)
    if root.get("$ref"):  # MCP wants an object schema at the root, not a bare reference
        name = root["$ref"].rsplit("/", 1)[1]
        root = dict(needed.pop(name))
        walk(root)
    root.setdefault("type", "object")
    root.setdefault("properties", {})
    if needed:
        root["$defs"] = needed
    return root


@cache
def tool_specs() -> tuple[ToolSpec, ...]:
    """One tool per canonical JSON op of every registered family (Django must be set up)."""
    from drf_spectacular.generators import SchemaGenerator

    from glow.core.registry import registry
    from glow.core.routers import viewset_class

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema.get("components", {}).get("schemas", {})
    tools = []
    for family in registry.families():
        for spec in viewset_class(family).op_specs():
            if "post" not in spec.methods or not _is_json_op(spec.name):
                continue
            operation = (
                schema["paths"].get(f"{API_PREFIX}{family.name}/{spec.name}", {}).get("post")
            )
            if operation is None:
                continue
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            request_schema = (body or {}).get("schema", {"type": "object"})
            tools.append(
                ToolSpec(
                    name=operation["operationId"],
                    path=f"{family.name}/{spec.name}",
                    description=(operation.get("description") or spec.summary).strip(),
                    input_schema=_with_defs(request_schema, components),
                    family=family.name,
                    op=spec.name,
                )
            )
    return tuple(sorted(tools, key=lambda tool: tool.name))


@cache
def _by_name() -> dict[str, ToolSpec]:
    return {tool.name: tool for tool in tool_specs()}


# -- calling the API ------------------------------------------------------------------------


class Dispatcher:
    """POSTs a tool's arguments to its op, as the API client the key belongs to, marked MCP."""

    def __init__(self, base_url: str | None = None, *, app=None) -> None:
        self.local = not base_url
        if base_url:  # a remote Glow: the same calls over the network
            self.base_url = base_url.rstrip("/") + "/"
            transport = None
        else:  # this process's own Django, through its full ASGI stack (middleware included)
            from django.conf import settings
            from django.core.asgi import get_asgi_application

            host = next((h for h in settings.ALLOWED_HOSTS if h not in ("*", "")), "localhost")
            scheme = "https" if getattr(settings, "SECURE_SSL_REDIRECT", False) else "http"
            self.base_url = f"{scheme}://{host.lstrip('.')}{API_PREFIX}"
            transport = httpx.ASGITransport(app=app or get_asgi_application())
        self.http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(300.0, connect=10.0),
            headers={"X-MCP": "1", "Accept": "application/json", "User-Agent": "glow-mcp"},
        )

    async def call(self, tool: ToolSpec, arguments: dict, key: str) -> tuple[int, Any]:
        response = await self.http.post(
            self.base_url + tool.path,
            json=arguments,
            headers={"Authorization": f"Bearer {key}"},
        )
        try:
            payload = response.json()
        except ValueError:
            payload = {"detail": response.text[:2000] or response.reason_phrase}
        return response.status_code, payload

    async def actor(self, key: str):
        """The key's profile when the API is this process's (else None: the remote API alone
        decides); None too for a key the API would refuse, so that it answers the 401."""
        if not self.local:
            return None
        from asgiref.sync import sync_to_async

        return await sync_to_async(_actor_for_key)(key)

    async def aclose(self) -> None:
        await self.http.aclose()


def _actor_for_key(key: str):
    """The profile of a valid key, authenticated exactly as the API does."""
    from types import SimpleNamespace

    from rest_framework.exceptions import AuthenticationFailed

    from glow.accounts.auth import ApiKeyAuthentication

    request = SimpleNamespace(META={"HTTP_X_API_KEY": key}, _request=SimpleNamespace())
    try:
        found = ApiKeyAuthentication().authenticate(request)
    except AuthenticationFailed:
        return None
    return getattr(found[0], "profile", None) if found else None


def allowed(tool: ToolSpec, actor) -> bool:
    """The API's role gate for this tool's op; an unknown actor (a remote API) is not judged."""
    from glow.core.routers import op_allows

    return actor is None or op_allows(tool.family, tool.op, actor)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key of an HTTP request to /mcp, as the API reads it."""
    key = headers.get("x-api-key")
    if key:
        return key.strip()
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _version() -> str:
    # Read here, not from glow.cli: the CLI launches this server, so asking it back would be a cycle.
    try:
        return metadata.version("glow")
    except metadata.PackageNotFoundError:
        return "0"


def _result(status: int, payload: Any):
    import mcp.types as types

    text = json.dumps(payload, indent=2, default=str)
    if status >= 400:
        detail = payload.get("detail") if isinstance(payload, dict) else None
        prefix = {404: "not found", 401: "unauthenticated", 403: "forbidden"}.get(status, "error")
        text = f"{status} {prefix}: {detail or ''}\n{text}"
    return types.CallToolResult(
        content=[types.TextContent(text=text)],
        structured_content=payload if isinstance(payload, dict) else {"result": payload},
        is_error=status >= 400,
    )


def build_server(dispatcher: Dispatcher, *, fixed_key: str | None = None):
    """The lowlevel MCP server: tools from the registry, each call an API request.

    With `fixed_key` (stdio) every call uses it; otherwise (HTTP) the key of the request that
    carries the call.
    """
    import mcp.types as types
    from mcp.server.lowlevel import Server

    def key_of(ctx) -> str | None:
        if fixed_key is not None:
            return fixed_key
        request = getattr(ctx, "request", None)
        return presented_key(request.headers) if request is not None else None

    async def list_tools(ctx, params) -> types.ListToolsResult:
        key = key_of(ctx)
        actor = await dispatcher.actor(key) if key else None
        return types.ListToolsResult(
            tools=[
                types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
                for t in tool_specs()
                if allowed(t, actor)
            ]
        )

    async def call_tool(ctx, params) -> types.CallToolResult:
        tool = _by_name().get(params.name)
        if tool is None:
            return _result(404, {"detail": f"Unknown tool {params.name!r}.", "code": "not_found"})
        key = key_of(ctx)
        if not key:
            return _result(401, {"detail": "No API key.", "code": "not_authenticated"})
        if not allowed(tool, await dispatcher.actor(key)):
            return _result(
                403,
                {
                    "detail": f"Your role may not call {tool.path}.",
                    "code": "permission_denied",
                    "fields": {},
                },
            )
        status, payload = await dispatcher.call(tool, dict(params.arguments or {}), key)
        return _result(status, payload)

    return Server(
        SERVER_NAME,
        version=_version(),
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


# -- streamable HTTP under the ASGI app -------------------------------------------------------


def http_app(django_app=None):
    """A Starlette app answering /mcp; glow.asgi routes /mcp and the lifespan to it.

    Stateless JSON mode: every POST carries its own key and is served on its own, so any web
    process can answer any request (no sticky sessions). Requests without a key answer 401
    before MCP sees them; a wrong key answers the API's 401 inside the tool result.
    """
    from mcp.server.transport_security import TransportSecuritySettings

    server = build_server(Dispatcher(app=django_app))
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        # The key is the credential (no cookies), so a rebinding attacker gains nothing.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            if not presented_key(headers):
                body = json.dumps(
                    {
                        "detail": "Send an API key (Authorization: Bearer).",
                        "code": "not_authenticated",
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b'Bearer realm="mcp"'),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return guarded


# -- stdio: `glow mcp` ------------------------------------------------------------------------


def main(argv: list[str], env: Mapping[str, str]) -> int:
    parser = argparse.ArgumentParser(
        prog="glow mcp",
        description="Serve Glow's ops as MCP tools over stdio (for agent clients).",
    )
    parser.add_argument("--token", help="API key (default: $GLOW_TOKEN)")
    parser.add_argument(
        "--url",
        help="a remote Glow's /api/v5/artifacts base (default: $GLOW_INSTANCE_URL; unset: "
        "serve this installation's database in-process)",
    )
    options = parser.parse_args(argv)
    token = options.token or env.get("GLOW_TOKEN", "")
    if not token:
        sys.stderr.write("glow mcp: no API key: set GLOW_TOKEN or pass --token.\n")
        return 2
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
    import anyio
    import django

    django.setup()
    tool_specs()  # build the schema before serving: the first tools/list should not wait

    async def serve() -> None:
        from mcp.server.stdio import stdio_server

        dispatcher = Dispatcher(options.url or env.get("GLOW_INSTANCE_URL") or None)
        server = build_server(dispatcher, fixed_key=token)
        try:
            async with stdio_server() as (read_stream, write_stream):
                await server.run(read_stream, write_stream, server.create_initialization_options())
        finally:
            await dispatcher.aclose()

    anyio.run(serve)
    return 0
