"""The `glow` command: every op the server's schema lists, plus `generate --wait` and `watch`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

from glow.cli import schema_cache
from glow.cli.args import USAGE, Call, build_call, help_text, parser
from glow.cli.catalogue import GENERATE, WATCH, Catalogue, resolve
from glow.cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Dropped,
    Failure,
    NoAnswerInTime,
    Unreachable,
    UsageError,
)
from glow.cli.http import Request, Response, Transport, api_failure, multipart, send, with_query
from glow.cli.output import Console
from glow.cli.watch import follow

STREAM_READ_TIMEOUT = 60.0  # the server sends a keep-alive every 20 s: a silent minute is dead


def version() -> str:
    from glow import __version__

    return __version__


class Api:
    def __init__(self, base_url: str, token: str, *, transport: Transport = send) -> None:
        self.base_url = base_url.rstrip("/")
        self.transport = transport
        self.headers = {
            "Authorization": f"Bearer {token}",
            "User-Agent": f"glow-cli/{version()}",
            "Accept": "application/json",
        }

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path}"

    def post(self, path: str, body: dict, *, upload: Path | None = None, mime_type: str = ""):
        if upload is None:
            content, kind = json.dumps(body).encode(), "application/json"
        else:
            content, kind = multipart(body, upload, mime_type)
        headers = {**self.headers, "Content-Type": kind}
        response = self.transport(Request("POST", self.url(path), headers, content))
        response.read()  # whole: the connection closes once the body is in
        return response

    def stream(self, path: str, params: dict, last_event_id: str | None) -> Response:
        headers = {**self.headers, "Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        url = with_query(self.url(path), params)
        return self.transport(Request("GET", url, headers, read_timeout=STREAM_READ_TIMEOUT))


def upload_type(path: Path, op: str) -> str:
    """The file's MIME type by its name; audio ops read containers shared with video as audio."""
    import mimetypes

    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    major, _, minor = guessed.partition("/")
    if op.startswith("audio") and major == "video" and minor in {"webm", "ogg", "mp4"}:
        return f"audio/{minor}"
    return guessed


def execute(call: Call, options: argparse.Namespace, api: Api, console: Console) -> int:
    target = call.target
    if call.stream:
        return follow(api, target.path, call.body, console, until_end=bool(call.body.get("run_id")))
    upload, mime_type = None, ""
    if options.file:
        upload = Path(options.file).expanduser()
        if not upload.is_file():
            raise UsageError(f"--file {options.file!r} is not a readable file.")
        mime_type = options.file_type or upload_type(upload, target.op)
    response = api.post(target.path, call.body, upload=upload, mime_type=mime_type)
    if response.status >= 400:
        raise api_failure(response)
    data: Any = None
    if options.output:
        Path(options.output).expanduser().write_bytes(response.content)
        console.note(f"wrote {len(response.content)} bytes to {options.output}.")
    elif "json" in response.headers.get("content-type", ""):
        data = response.json() if response.content else None
        if data is not None:
            console.result(data)
    else:
        if console.pretty:
            kind = response.headers.get("content-type", "no content type")
            raise UsageError(f"the answer is {kind}, {len(response.content)} bytes: pass -o FILE.")
        console.raw(response.content)
    if not (options.wait and target.op == GENERATE):
        return EXIT_OK
    run_id = data.get("run_id") if isinstance(data, dict) else None
    if not run_id:
        raise Failure("generate answered without a run_id; nothing to wait for.")
    console.note(f"waiting for run {run_id} (group {data.get('group_id')})")
    return follow(api, f"{target.family}/{WATCH}", {"run_id": run_id}, console, until_end=True)


NO_SERVER = (
    "no server: set GLOW_INSTANCE_URL (or pass --url) to the /api/v5/artifacts base of a Glow "
    "server, e.g. export GLOW_INSTANCE_URL=http://127.0.0.1:8000/api/v5/artifacts"
)


def run(
    argv: list[str],
    *,
    env: Mapping[str, str],
    stdin: IO[str],
    stdout: IO[str],
    stderr: IO[str],
    catalogue: Catalogue | None = None,
    transport: Transport = send,
) -> int:
    """The whole command, with its surroundings passed in (tests pass a catalogue, a transport)."""
    if argv[:1] == ["mcp"]:  # `glow mcp`: serve the ops as MCP tools over stdio
        from glow.mcp_server import main as mcp_main

        return mcp_main(argv[1:], env)
    console = Console(stdout, stderr, quiet=False)
    base_url = ""
    try:
        options = parser().parse_intermixed_args(argv)
        console.progress = not options.quiet
        if options.version:
            stdout.write(f"glow {version()}\n")
            return EXIT_OK
        base_url = options.url or env.get("GLOW_INSTANCE_URL", "")
        token = options.token or env.get("GLOW_TOKEN", "")
        if catalogue is None:
            catalogue = server_catalogue(base_url, token, options, env, console, transport)
            if catalogue is None:
                return EXIT_USAGE if not base_url else EXIT_FAILED
        if options.help:
            stdout.write(help_text(options.words, catalogue))
            return EXIT_OK
        if not options.words:
            stderr.write(help_text([], catalogue))
            return EXIT_USAGE
        call = build_call(resolve(options.words, catalogue), options, stdin)
        check_server(base_url)
        if not token:
            raise UsageError("no API key: set GLOW_TOKEN or pass --token.")
        return execute(call, options, Api(base_url, token, transport=transport), console)
    except UsageError as exc:
        console.error(str(exc))
        return EXIT_USAGE
    except Failure as exc:
        console.error(str(exc))
        return EXIT_FAILED
    except NoAnswerInTime as exc:
        console.error(f"{base_url} did not answer in time ({exc}).")
        return EXIT_FAILED
    except (Unreachable, Dropped) as exc:
        console.error(f"cannot reach {base_url}: {exc}.")
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.error("interrupted.")
        return EXIT_INTERRUPTED


def check_server(base_url: str) -> None:
    if not base_url:
        raise UsageError(NO_SERVER)
    if not base_url.startswith(("http://", "https://")):
        raise UsageError("--url/GLOW_INSTANCE_URL must start with http:// or https://.")


def server_catalogue(base_url, token, options, env, console, transport) -> Catalogue | None:
    """The server's commands; None (with the usage and the reason printed) when there are none."""
    try:
        check_server(base_url)
        catalogue, stale = schema_cache.load(
            base_url,
            token=token,
            env=env,
            transport=transport,
            user_agent=f"glow-cli/{version()}",
        )
    except (UsageError, Failure) as exc:
        if options.help or not options.words:
            (console.stdout if options.help else console.stderr).write(USAGE)
        console.error(str(exc))
        return None
    if stale:
        console.note(stale)
    return catalogue


def main() -> int:
    import os
    import sys

    return run(sys.argv[1:], env=os.environ, stdin=sys.stdin, stdout=sys.stdout, stderr=sys.stderr)
