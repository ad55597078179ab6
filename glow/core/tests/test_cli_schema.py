"""The CLI's commands come from the server's OpenAPI schema: parsed from its x-glow extensions,
cached per server, revalidated with If-None-Match, and all of it without importing Django."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from glow import cli
from glow.cli import catalogue as commands
from glow.cli import schema_cache
from glow.cli.args import help_text
from glow.core.tests.test_cli import transport


def operation(family, plural, op, *, alias_of=None, summary="", body=None, **extra) -> dict:
    item = {"operationId": f"{family}_{op}", "x-glow-family": family, "x-glow-plural": plural}
    item["x-glow-op"] = op
    if alias_of:
        item["x-glow-alias-of"] = alias_of
    if summary:
        item["description"] = summary
    if body is not None:
        item["requestBody"] = {"content": {"application/json": {"schema": body}}}
    return {**item, **extra}


# A schema in the server's shape, small enough to read: two families, an alias, a GET op.
SCHEMA = {
    "openapi": "3.0.3",
    "tags": [{"name": "persona", "description": "Simulated people learners talk to."}],
    "paths": {
        "/api/v5/artifacts/persona/search": {
            "post": operation(
                "persona",
                "personas",
                "search",
                summary="Search rows.",
                body={"$ref": "#/components/schemas/SearchRequest"},
            )
        },
        "/api/v5/artifacts/persona/watch": {
            "get": operation(
                "persona",
                "personas",
                "watch",
                summary="Follow a run.",
                parameters=[
                    {"in": "query", "name": "run_id", "schema": {"type": "string", "format": "uuid"}}
                ],
            ),
            "post": operation("persona", "personas", "watch", summary="Follow a run."),
        },
        "/api/v5/artifacts/persona/file/upload": {
            "post": {
                **operation("persona", "personas", "file/upload", summary="Upload a file."),
                "requestBody": {
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "properties": {"file": {"type": "string", "format": "binary"}},
                                "required": ["file"],
                            }
                        }
                    }
                },
            }
        },
        "/api/v5/artifacts/persona/upload": {
            "post": operation("persona", "personas", "upload", alias_of="file/upload")
        },
        "/api/v5/artifacts/attempt/start": {
            "post": operation(
                "attempt",
                "attempts",
                "start",
                summary="Start an attempt.\nLonger text.",
                body={
                    "oneOf": [
                        {"type": "object", "properties": {"home_id": {"type": "string"}},
                         "required": ["home_id", "mode"]},
                        {"type": "object", "properties": {"practice_id": {"type": "string"}},
                         "required": ["practice_id", "mode"]},
                    ],
                    "properties": {"mode": {"$ref": "#/components/schemas/ModeEnum"}},
                },
            )
        },
        "/api/v5/media/{upload_id}": {"get": {"operationId": "media_get"}},
    },
    "components": {
        "schemas": {
            "SearchRequest": {
                "type": "object",
                "properties": {
                    "search": {"type": "string", "description": "Words in the  title."},
                    "page_size": {"type": "integer"},
                    "ids": {"type": "array", "items": {"type": "string"}},
                    "id": {"type": "string", "readOnly": True},
                },
                "required": ["page_size"],
            },
            "ModeEnum": {"enum": ["text", "audio"], "type": "string"},
        }
    },
}  # fmt: skip
BASE = "http://glow.test/api/v5/artifacts"


def test_the_schema_becomes_families_ops_aliases_and_fields():
    catalogue = commands.from_schema(SCHEMA)
    assert catalogue.ops == {
        "attempt": ["start"],
        "persona": ["search", "watch", "file/upload", "upload"],
    }
    assert catalogue.plurals == {"persona": "personas", "attempt": "attempts"}
    assert catalogue.aliases == {"persona": {"upload": "file/upload"}}
    assert catalogue.canonical_ops("persona") == ["search", "watch", "file/upload"]
    assert catalogue.summaries["attempt"]["start"] == "Start an attempt."
    assert catalogue.descriptions == {"persona": "Simulated people learners talk to."}
    search = catalogue.info("persona", "search")
    assert search.fields == (
        commands.Field("search", "string", False, "Words in the title."),
        commands.Field("page_size", "integer", True),
        commands.Field("ids", "list", False),
    )
    assert catalogue.info("persona", "watch").methods == ("get", "post")
    assert catalogue.info("persona", "watch").fields == (commands.Field("run_id", "uuid"),)
    assert catalogue.info("persona", "upload").upload  # the alias reads as its op
    start = {item.name: item for item in catalogue.info("attempt", "start").fields}
    # Each form requires mode; home_id and practice_id are each required in one form only.
    assert start["mode"] == commands.Field("mode", "one of text, audio", True)
    assert not start["home_id"].required and not start["practice_id"].required


def test_the_help_texts_read_the_parsed_schema():
    catalogue = commands.from_schema(SCHEMA)
    overview = help_text([], catalogue)
    assert "  personas (persona)\n    search watch file/upload\n" in overview
    family = help_text(["personas"], catalogue)
    assert "Simulated people learners talk to." in family
    assert "  file/upload | upload  Upload a file." in family
    upload = help_text(["persona", "upload"], catalogue)
    assert "usage: glow personas upload --file PATH [--body JSON]" in upload
    assert "  file: file (--file) (required)" in upload
    search = help_text(["personas", "search"], catalogue)
    assert "POST persona/search" in search
    assert "  page_size: integer (required)" in search
    assert "GET/POST persona/watch" in help_text(["personas", "watch"], catalogue)


def test_the_catalogue_survives_its_cache_format():
    catalogue = commands.from_schema(SCHEMA)
    again = commands.Catalogue.from_json(json.loads(json.dumps(catalogue.to_json())))
    assert again == catalogue


# -- the per-server cache and its ETag -----------------------------------------------------


class SchemaServer:
    """An httpx handler serving SCHEMA with an ETag, answering 304 to a matching If-None-Match."""

    def __init__(self, schema=SCHEMA, etag='"v1"') -> None:
        self.schema, self.etag, self.requests = schema, etag, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v5/schema":
            if request.headers.get("if-none-match") == self.etag:
                return httpx.Response(304, headers={"etag": self.etag})
            return httpx.Response(200, json=self.schema, headers={"etag": self.etag})
        return httpx.Response(200, json={"ok": True})


def glow(*argv, server, env):
    out, err, requests = io.StringIO(), io.StringIO(), []
    code = cli.run(
        list(argv),
        env=env,
        stdin=io.StringIO(),
        stdout=out,
        stderr=err,
        transport=transport(server, requests),
    )
    return code, out.getvalue(), err.getvalue(), requests


@pytest.fixture
def env(tmp_path):
    return {"GLOW_INSTANCE_URL": BASE, "GLOW_TOKEN": "k", "XDG_CACHE_HOME": str(tmp_path)}


def test_the_schema_is_fetched_once_then_revalidated_with_its_etag(env, tmp_path):
    server = SchemaServer()
    code, out, _, first = glow("--help", server=server, env=env)
    assert code == 0 and "personas (persona)" in out
    (fetch,) = first
    assert str(fetch.url) == "http://glow.test/api/v5/schema?format=json"
    assert "if-none-match" not in fetch.headers
    (cached,) = (tmp_path / "glow").iterdir()
    assert json.loads(cached.read_text())["etag"] == '"v1"'

    server.schema = {"paths": {}}  # were the body read again, no op would be left
    code, out, _, second = glow("personas", "search", server=server, env=env)
    assert code == 0
    revalidate, call = second
    assert revalidate.headers["if-none-match"] == '"v1"'
    assert call.url.path == "/api/v5/artifacts/persona/search"


def test_a_new_etag_replaces_the_cached_commands(env):
    glow("--help", server=SchemaServer(), env=env)
    renamed = json.loads(json.dumps(SCHEMA).replace('"personas"', '"people"'))
    code, out, _, _ = glow("--help", server=SchemaServer(renamed, etag='"v2"'), env=env)
    assert code == 0 and "people (persona)" in out and "personas" not in out


def test_the_cache_is_per_server(env, tmp_path):
    other = {**env, "GLOW_INSTANCE_URL": "http://other.test:8001/api/v5/artifacts"}
    glow("--help", server=SchemaServer(), env=env)
    renamed = json.loads(json.dumps(SCHEMA).replace('"personas"', '"people"'))
    glow("--help", server=SchemaServer(renamed, etag='"v1"'), env=other)
    assert len(list((tmp_path / "glow").iterdir())) == 2
    assert schema_cache.cache_path(BASE, env) != schema_cache.cache_path(
        other["GLOW_INSTANCE_URL"], env
    )
    # Each server's 304 answers with its own commands.
    _, first, _, _ = glow("--help", server=SchemaServer(), env=env)
    _, second, _, _ = glow("--help", server=SchemaServer(), env=other)
    assert "personas (persona)" in first and "people (persona)" in second


def test_an_unreachable_server_falls_back_to_the_cache(env):
    glow("--help", server=SchemaServer(), env=env)

    def down(request):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    code, out, err, _ = glow("--help", server=down, env=env)
    assert code == 0 and "personas (persona)" in out
    assert "did not answer ([Errno 111] Connection refused); using the ops cached" in err


def test_help_without_a_server_says_how_to_set_one(tmp_path):
    code, out, err, requests = glow(
        "--help", server=SchemaServer(), env={"XDG_CACHE_HOME": str(tmp_path)}
    )
    assert code == 2 and requests == []
    assert out.startswith("usage: glow <family> <op>")
    assert "glow: no server: set GLOW_INSTANCE_URL (or pass --url)" in err


def test_help_with_an_unreachable_server_and_no_cache_names_the_error(env):
    def down(request):
        raise httpx.ConnectError("[Errno 111] Connection refused")

    code, out, err, _ = glow("--help", server=down, env=env)
    assert code == 1 and out.startswith("usage: glow")
    assert (
        "glow: cannot read the ops from http://glow.test/api/v5/schema?format=json: "
        "[Errno 111] Connection refused" in err
    )


def test_a_server_without_glow_ops_is_explained(env):
    code, _, err, _ = glow("--help", server=SchemaServer({"paths": {}}), env=env)
    assert code == 1 and "lists no Glow ops" in err


# -- the installed command, on a real socket -------------------------------------------------


@pytest.fixture
def schema_http_server():
    """SCHEMA over real HTTP, with ETag and 304, on a free loopback port."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("If-None-Match"))
            if self.headers.get("If-None-Match") == '"v1"':
                self.send_response(304)
                self.send_header("ETag", '"v1"')
                self.end_headers()
                return
            body = json.dumps(SCHEMA).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/v5/artifacts", seen
    server.shutdown()
    server.server_close()


def test_glow_help_imports_neither_django_nor_drf_nor_celery(schema_http_server, tmp_path):
    url, seen = schema_http_server
    script = Path(sys.executable).parent / "glow"
    env = {**os.environ, "GLOW_INSTANCE_URL": url, "XDG_CACHE_HOME": str(tmp_path)}
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    for _ in range(2):  # the first fetches the schema, the second revalidates it
        shown = subprocess.run([str(script), "--help"], env=env, capture_output=True, text=True)
        assert shown.returncode == 0 and "personas (persona)" in shown.stdout
        imported = {
            line.rsplit("|", 1)[-1].strip()
            for line in shown.stderr.splitlines()
            if line.startswith("import time:")
        }
        assert "glow.cli" in imported
        heavy = {name for name in imported if name.split(".")[0] in HEAVY}
        assert heavy == set()
    assert seen == [None, '"v1"']


HEAVY = {"django", "rest_framework", "drf_spectacular", "celery", "httpx", "kombu"}


def test_the_version_the_cli_sends_is_the_installed_packages():
    from importlib.metadata import version

    assert cli.version() == version("glow")


def test_a_refused_schema_shows_the_servers_error(env):
    def refuse(request):
        return httpx.Response(401, json={"detail": "Invalid API key.", "code": "invalid_api_key"})

    code, _, err, _ = glow("--help", server=refuse, env=env)
    assert code == 1
    assert "cannot read the ops from http://glow.test/api/v5/schema?format=json" in err
    assert "Invalid API key. (invalid_api_key, HTTP 401)" in err and "check GLOW_TOKEN" in err
