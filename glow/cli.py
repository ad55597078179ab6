"""The `glow` command: every registered op from the shell, plus `generate --wait` and `watch`."""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
GENERATE, WATCH = "generate", "watch"
# Positional words an op takes after its name; every other op takes its input from --body.
POSITIONALS = {GENERATE: ("modality", "title"), WATCH: ("run_id",)}
# django-eventstream's own frames: connection bookkeeping, not events of the run.
TRANSPORT_EVENTS = frozenset({"stream-open", "keep-alive", "stream-reset"})
DOT_SECONDS = 3.0
RESUME_DELAY, RESUME_WINDOW = 1.0, 15.0  # seconds between and for reconnect attempts
LINE_BREAK = re.compile(r"\r\n|\r|\n")


class UsageError(Exception):
    """The command line is wrong: exit 2."""


class Failure(Exception):
    """The server, the network or the run said no: exit 1."""


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("glow")
    except PackageNotFoundError:
        return "0"


# -- the op catalogue, read from the server's registry ------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """Families and their ops as the router mounts them: {singular: [ops]} plus the CLI words."""

    ops: Mapping[str, list[str]]
    plurals: Mapping[str, str]
    summaries: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    aliases: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # alias -> op
    descriptions: Mapping[str, str] = field(default_factory=dict)

    def canonical_ops(self, family: str) -> list[str]:
        """Ops without their second spellings (file_download beside file/download)."""
        aliases = self.aliases.get(family, {})
        return [op for op in self.ops[family] if op not in aliases]

    def family(self, word: str) -> str:
        for name, plural in self.plurals.items():
            if word in (name, plural):
                return name
        words = sorted({*self.plurals, *self.plurals.values()})
        raise UsageError(
            f"unknown family {word!r}.{did_you_mean(word, words)} `glow --help` lists them."
        )


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=3, cutoff=0.6)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(choice) for choice in close) + "?"


def load_catalogue() -> Catalogue:
    """Boot Django just far enough to read the registry: no database connection is opened."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "glow.settings")
    import django
    from django.apps import apps

    try:
        if not apps.ready:
            django.setup()
        from glow.core.registry import op_table, registry
        from glow.core.routers import viewset_class

        table = op_table()
    except Exception as exc:
        raise Failure(f"cannot load the op registry from glow.settings: {exc!r}")
    families = {family.name: family for family in registry.families()}
    summaries, aliases = {}, {}
    for name, family in families.items():
        specs = viewset_class(family).op_specs()
        summaries[name] = {spec.name: spec.summary for spec in specs}
        aliases[name] = {alias: spec.name for spec in specs for alias in spec.aliases}
    return Catalogue(
        ops=table,
        plurals={name: family.plural for name, family in families.items()},
        summaries=summaries,
        aliases=aliases,
        descriptions={name: family.description for name, family in families.items()},
    )


@dataclass(frozen=True)
class Target:
    family: str  # singular, as in the URL
    op: str  # as mounted, slashes kept: "audio/start"
    args: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"{self.family}/{self.op}"


def resolve(words: list[str], catalogue: Catalogue) -> Target:
    """`attempts start`, `attempt audio/start` or `attempts audio start` -> Target."""
    if not words:
        raise UsageError("name a family and an op, e.g. `glow attempts start`.")
    family = catalogue.family(words[0])
    ops = catalogue.ops[family]
    plural = catalogue.plurals[family]
    rest = words[1:]
    if not rest:
        raise UsageError(f"name an op of {plural}: `glow {plural} --help` lists them.")
    matches = [k for k in range(len(rest), 0, -1) if "/".join(rest[:k]) in ops]
    if not matches:
        word = "/".join(rest)
        hint = did_you_mean(word, ops) or did_you_mean(rest[0], ops)
        raise UsageError(
            f"unknown op {rest[0]!r} for {plural}.{hint} `glow {plural} --help` lists them."
        )
    longest = matches[0]
    for shorter in matches[1:]:
        shorter_op = "/".join(rest[:shorter])
        if len(rest) - shorter <= len(POSITIONALS.get(shorter_op, ())):
            raise UsageError(
                f"ambiguous: {'/'.join(rest[:longest])!r} or {shorter_op!r} with arguments; "
                "write the op with slashes."
            )
    op = "/".join(rest[:longest])
    args = tuple(rest[longest:])
    allowed = POSITIONALS.get(op, ())
    if len(args) > len(allowed):
        extra = args[len(allowed)]
        raise UsageError(
            f"unexpected argument {extra!r} after `{plural} {op}`."
            f"{did_you_mean('/'.join(rest), ops)} Pass input with --body."
        )
    return Target(family=family, op=op, args=args)


# -- the command line ---------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(message)


def parser() -> Parser:
    p = Parser(prog="glow", add_help=False, allow_abbrev=False)
    p.add_argument("words", nargs="*")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("--version", action="store_true")
    p.add_argument("--url", help="the /api/v5/artifacts base (default: $GLOW_INSTANCE_URL)")
    p.add_argument("--token", help="API key (default: $GLOW_TOKEN)")
    p.add_argument("--body", help="JSON object, @file, or - for stdin")
    p.add_argument("--file", help="upload this file as multipart form data")
    p.add_argument("--file-type", help="the uploaded file's MIME type (default: guessed)")
    p.add_argument("-o", "--output", help="write the response body to this file")
    p.add_argument("--wait", action="store_true", help="generate: follow the run to its end")
    p.add_argument("--group", help="watch: every event of this group")
    p.add_argument("--instructions", action="append", help="generate: an instruction (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


USAGE = """usage: glow <family> <op> [args] [--body JSON | --body @file | --body -] [options]

options:
  --url URL            the /api/v5/artifacts base (default: $GLOW_INSTANCE_URL)
  --token TOKEN        API key sent as a Bearer token (default: $GLOW_TOKEN)
  --body JSON          request body: a JSON object, @file, or - to read stdin
  --file PATH          upload a file (multipart, with --body fields as form fields)
  --file-type MIME     its MIME type (default: from its name; audio ops read webm/ogg as audio)
  -o, --output PATH    write the response body to PATH (downloads)
  --wait               generate: follow the run, exit 0 on complete, 1 on error
  --group ID           watch: follow every run of a group
  --instructions TEXT  generate: an instruction (repeatable)
  -q, --quiet          no progress messages on stderr
  --version            print the version

  glow <family> generate [<modality> [<title>]] [--instructions TEXT] [--wait]
  glow <family> watch <run_id> | watch --group <group_id>
  glow mcp [--token KEY] [--url URL]   serve every op as an MCP tool over stdio

Exit status: 0 success, 1 API, network or generation failure, 2 usage error, 130 interrupted.
"""


def help_text(words: list[str], catalogue: Catalogue) -> str:
    if not words:
        lines = [USAGE, "families and their ops (`glow <family> --help` describes each op):"]
        for name in sorted(catalogue.ops):
            plural = catalogue.plurals[name]
            heading = plural if plural == name else f"{plural} ({name})"
            lines.append(f"  {heading}")
            lines.append(wrap(" ".join(catalogue.canonical_ops(name)), indent=4))
        return "\n".join(lines) + "\n"
    family = catalogue.family(words[0])
    plural = catalogue.plurals[family]
    if len(words) > 1:
        return op_help(resolve(words, catalogue), plural)
    lines = [f"usage: glow {plural} <op> [--body JSON]", ""]
    if catalogue.descriptions.get(family):
        lines += [catalogue.descriptions[family], ""]
    lines.append(f"ops (POST {family}/<op>):")
    aliases = catalogue.aliases.get(family, {})
    names = {
        op: " | ".join([op, *sorted(a for a, target in aliases.items() if target == op)])
        for op in catalogue.canonical_ops(family)
    }
    width = max(len(name) for name in names.values())
    for op, name in names.items():
        summary = catalogue.summaries.get(family, {}).get(op, "")
        lines.append(f"  {name.ljust(width)}  {summary}".rstrip())
    return "\n".join(lines) + "\n"


OP_USAGE = {
    GENERATE: "[<modality> [<title>]] [--instructions TEXT]... [--wait] [--body JSON]",
    WATCH: "<run_id> [--body JSON]  |  --group <group_id>",
}


def op_help(target: Target, plural: str) -> str:
    from rest_framework import serializers

    from glow.core.ops import resolve as resolve_shape
    from glow.core.registry import registry
    from glow.core.routers import viewset_class

    family = registry.get(target.family)
    spec = next(
        spec for spec in viewset_class(family).op_specs() if target.op in (spec.name, *spec.aliases)
    )
    shape = resolve_shape(spec.request, family)
    fields = {
        name: item for name, item in (shape().fields if shape else {}).items() if not item.read_only
    }
    uploads = any(isinstance(item, serializers.FileField) for item in fields.values())
    usage = OP_USAGE.get(target.op) or ("--file PATH [--body JSON]" if uploads else "[--body JSON]")
    lines = [
        f"usage: glow {plural} {target.op} {usage}",
        "",
        spec.summary,
        "",
        f"{'/'.join(spec.methods).upper()} {target.path}",
    ]
    if fields:
        lines += ["", "body fields:"]
        for name, item in fields.items():
            text = f"  {name}: {field_kind(item)}" + (" (required)" if item.required else "")
            lines.append(text + (f"  {item.help_text}" if item.help_text else ""))
    return "\n".join(lines) + "\n"


def field_kind(item) -> str:
    from rest_framework import serializers

    if isinstance(item, serializers.ChoiceField):
        return "one of " + ", ".join(str(choice) for choice in item.choices)
    if isinstance(item, serializers.FileField):
        return "file (--file)"
    if isinstance(item, (serializers.ListField, serializers.ListSerializer)):
        return "list"
    if isinstance(item, (serializers.Serializer, serializers.DictField, serializers.JSONField)):
        keys = ", ".join(getattr(item, "fields", {}))
        return f"object {{{keys}}}" if keys else "object"
    # A project's own field subclass reads as the DRF field it refines (StrictUUID -> uuid).
    builtin = next(k for k in type(item).__mro__ if k.__module__.startswith("rest_framework"))
    return builtin.__name__.removesuffix("Field").lower() or "value"


def wrap(text: str, *, indent: int, width: int = 96) -> str:
    import textwrap

    pad = " " * indent
    # Op names keep their hyphens whole (end-all, use-previous): a break there names no op.
    return textwrap.fill(
        text, width=width, initial_indent=pad, subsequent_indent=pad, break_on_hyphens=False
    )


def read_body(raw: str | None, stdin: IO[str]) -> dict:
    if raw is None:
        return {}
    if raw == "-":
        text, source = stdin.read(), "stdin"
    elif raw.startswith("@"):
        path = Path(raw[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --body file {str(path)!r}: {exc.strerror or exc}.")
        source = str(path)
    else:
        text, source = raw, "--body"
    try:
        body = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        )
    if not isinstance(body, dict):
        raise UsageError(f"{source} must be a JSON object, not {type(body).__name__}.")
    return body


@dataclass(frozen=True)
class Request:
    target: Target
    body: dict
    stream: bool = False  # watch: GET with the body as query parameters


def build_request(target: Target, options: argparse.Namespace, stdin: IO[str]) -> Request:
    body = read_body(options.body, stdin)
    if options.wait and target.op != GENERATE:
        raise UsageError("--wait only applies to generate.")
    if options.group and target.op != WATCH:
        raise UsageError("--group only applies to watch.")
    if options.instructions and target.op != GENERATE:
        raise UsageError("--instructions only applies to generate.")
    if target.op == GENERATE:
        body.update(zip(POSITIONALS[GENERATE], target.args, strict=False))
        if options.instructions:
            body["instructions"] = list(options.instructions)
    if target.op == WATCH:
        if target.args:
            body["run_id"] = target.args[0]
        if options.group:
            body["group_id"] = options.group
        if not body.get("run_id") and not body.get("group_id"):
            raise UsageError("watch needs a run_id or --group <group_id>.")
        return Request(target=target, body=body, stream=True)
    return Request(target=target, body=body)


# -- talking to the server ----------------------------------------------------------------


class Api:
    def __init__(self, base_url: str, token: str, *, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"glow-cli/{version()}",
                "Accept": "application/json",
            },
            # Reads are slow for exports and generation triggers under load; connects are not.
            timeout=httpx.Timeout(300.0, connect=10.0),
            transport=transport,
        )

    def url(self, target: Target) -> str:
        return f"{self.base_url}/{target.path}"

    def post(
        self, target: Target, body: dict, *, upload: Path | None = None, mime_type: str = ""
    ) -> httpx.Response:
        if upload is None:
            return self.http.post(self.url(target), json=body)
        form = {
            key: value if isinstance(value, str) else json.dumps(value)
            for key, value in body.items()
        }
        with upload.open("rb") as handle:
            return self.http.post(
                self.url(target), data=form, files={"file": (upload.name, handle, mime_type)}
            )

    def stream(self, target: Target, params: dict, last_event_id: str | None):
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        # The server sends a keep-alive every 20 s: a minute of silence is a dead connection.
        return self.http.stream(
            "GET",
            self.url(target),
            params={key: stringify(value) for key, value in params.items()},
            headers=headers,
            timeout=httpx.Timeout(60.0, connect=10.0),
        )

    def close(self) -> None:
        self.http.close()


def stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def api_failure(response: httpx.Response) -> Failure:
    """The server's error shape {detail, code, fields, ...} as one readable message."""
    status = f"HTTP {response.status_code}"
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or "detail" not in data:
        message = f"{status} {response.reason_phrase}"
        text = response.text.strip()[:300]
        if "html" in response.headers.get("content-type", ""):
            message += " (a web page, not Glow's API)"
        elif text:
            message += f": {text}"
        if response.status_code == 404:
            message += (
                f"\n  is --url/GLOW_INSTANCE_URL the /api/v5/artifacts base? ({response.url})"
            )
        return Failure(message)
    code = data.get("code")
    lines = [f"{data['detail']} ({code}, {status})" if code else f"{data['detail']} ({status})"]
    for name, messages in (data.get("fields") or {}).items():
        lines.append(f"  {name}: {format_messages(messages)}")
    for key, value in data.items():
        if key not in {"detail", "code", "fields"}:
            lines.append(f"  {key}: {format_messages(value)}")
    if response.status_code == 401:
        lines.append("  check GLOW_TOKEN or --token (manage.py createapikey <username> makes one)")
    return Failure("\n".join(lines))


def format_messages(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return " ".join(value)
    return value if isinstance(value, str) else json.dumps(value)


# -- Server-Sent Events -------------------------------------------------------------------


@dataclass(frozen=True)
class SSEEvent:
    event: str
    data: str
    id: str | None  # the last event id in force after this event


class SSEParser:
    """The WHATWG event-stream algorithm, fed text chunks as they arrive."""

    def __init__(self) -> None:
        self.pending = ""
        self.started = False
        self.after_cr = False  # a chunk ended in \r: a \n opening the next one ends nothing
        self.event = ""
        self.data: list[str] = []
        self.last_id: str | None = None

    def feed(self, text: str) -> list[SSEEvent]:
        if not self.started and text:
            self.started = True
            text = text.removeprefix("\ufeff")
        if self.after_cr and text:
            text = text.removeprefix("\n")
            self.after_cr = False
        lines = LINE_BREAK.split(self.pending + text)
        self.pending = lines.pop()
        if text.endswith("\r"):
            self.after_cr = True
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> SSEEvent | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event = self.data, self.event
        self.data, self.event = [], ""
        if not data:
            return None
        return SSEEvent(event=event or "message", data="\n".join(data), id=self.last_id)


def outcome(event: str, payload: Any) -> str | None:
    """Whether an event ends its run, and how: "complete", "failed", or None (it does not)."""
    if event == "stream-error":
        return "failed"
    name = event.lower().removesuffix("event").replace("_", ".")
    if "media" in name:
        return None  # media frames precede the run's own Complete/Error
    if name.endswith(("error", "failed", "cancelled", "canceled")):
        return "failed"
    if name.endswith("complete"):
        success = payload.get("success", True) if isinstance(payload, dict) else True
        return "complete" if success is not False else "failed"
    return None


class Console:
    """stdout carries results; stderr carries progress and errors."""

    def __init__(self, stdout: IO[str], stderr: IO[str], *, quiet: bool) -> None:
        self.stdout, self.stderr = stdout, stderr
        self.pretty = isatty(stdout)
        self.progress = not quiet
        self.lock = threading.Lock()
        self.dots = False

    def result(self, data: Any) -> None:
        if self.pretty:
            text = json.dumps(data, indent=2, ensure_ascii=False)
        else:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def event_line(self, data: dict) -> None:
        with self.lock:
            self.stdout.write(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n")
            self.stdout.flush()

    def note(self, text: str) -> None:
        if self.progress:
            self.error(text)

    def error(self, text: str) -> None:
        with self.lock:
            if self.dots:
                self.stderr.write("\n")
                self.dots = False
            self.stderr.write(f"glow: {text}\n")
            self.stderr.flush()

    def dot(self) -> None:
        with self.lock:
            self.stderr.write(".")
            self.stderr.flush()
            self.dots = True


def isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Ticker:
    """A dot on stderr every few seconds without events, so a long wait looks alive."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.beat = threading.Event()
        self.stopped = threading.Event()
        if console.progress and isatty(console.stderr):
            threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            if not self.beat.wait(DOT_SECONDS) and not self.stopped.is_set():
                self.console.dot()
            self.beat.clear()

    def alive(self) -> None:
        self.beat.set()

    def stop(self) -> None:
        self.stopped.set()
        self.beat.set()


def describe_progress(payload: Any) -> str | None:
    if not isinstance(payload, dict):
        return None
    if "percentage" in payload:
        done, total = payload.get("completed_resources"), payload.get("total_resources")
        counts = f" ({done}/{total})" if done is not None and total is not None else ""
        last = payload.get("last_completed_resource")
        return f"{payload['percentage']}%{counts}" + (f" {last}" if last else "")
    if "status" in payload and "modality" in payload:
        return f"{payload['modality']} {payload['status']}"
    return None


DROPS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout)


def follow(api: Api, target: Target, params: dict, console: Console, *, until_end: bool) -> int:
    """Print each event of a watch stream; with until_end, stop at the run's terminal event.

    A connection that drops mid-stream is resumed once with Last-Event-ID (the server replays
    what was missed); a server restarting meanwhile gets RESUME_WINDOW seconds to come back.
    """
    last_id: str | None = None
    resuming_until: float | None = None  # set while a resume is under way
    ticker = Ticker(console)
    try:
        while True:
            parser = SSEParser()
            parser.last_id = last_id
            answered = False
            try:
                with api.stream(target, params, last_id) as response:
                    answered = True
                    if response.status_code >= 400:
                        response.read()
                        raise api_failure(response)
                    for chunk in response.iter_text():
                        for event in parser.feed(chunk):
                            ticker.alive()
                            last_id = event.id
                            if event.event not in TRANSPORT_EVENTS:
                                resuming_until = None  # news since the drop: may resume again
                            verdict = handle_event(event, console)
                            if verdict and (until_end or event.event == "stream-error"):
                                return EXIT_OK if verdict == "complete" else EXIT_FAILED
                # The server may end a stream without a terminal event (seed 004): not a failure.
                console.note("stream closed.")
                return EXIT_OK
            except (httpx.ConnectError, *DROPS) as exc:
                if not answered:
                    # No answer at all: fatal at first, retried for a while when resuming.
                    if resuming_until is None or time.monotonic() > resuming_until:
                        raise
                    time.sleep(RESUME_DELAY)
                elif resuming_until is None:
                    resuming_until = time.monotonic() + RESUME_WINDOW
                    after = f" after event {last_id}" if last_id else ""
                    console.note(f"connection dropped; resuming{after}.")
                else:
                    raise Failure(f"the watch stream dropped again ({exc}); giving up.")
    finally:
        ticker.stop()


def handle_event(event: SSEEvent, console: Console) -> str | None:
    if event.event in TRANSPORT_EVENTS:
        return None
    try:
        payload = json.loads(event.data)
    except json.JSONDecodeError:
        payload = event.data
    console.event_line({"event": event.event, "id": event.id, "data": payload})
    verdict = outcome(event.event, payload)
    if event.event == "stream-error":
        text = payload.get("text") if isinstance(payload, dict) else payload
        console.error(f"stream error: {text}")
    elif verdict == "failed":
        message = payload.get("message") if isinstance(payload, dict) else None
        console.error(f"{event.event}: {message or 'the run failed'}")
    else:
        progress = describe_progress(payload)
        if progress:
            console.note(progress)
    return verdict


# -- entry point --------------------------------------------------------------------------


def upload_type(path: Path, op: str) -> str:
    """The file's MIME type by its name; audio ops read containers shared with video as audio."""
    import mimetypes

    guessed = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    major, _, minor = guessed.partition("/")
    if op.startswith("audio") and major == "video" and minor in {"webm", "ogg", "mp4"}:
        return f"audio/{minor}"
    return guessed


def execute(request: Request, options: argparse.Namespace, api: Api, console: Console) -> int:
    target = request.target
    if request.stream:
        return follow(
            api, target, request.body, console, until_end=bool(request.body.get("run_id"))
        )
    upload, mime_type = None, ""
    if options.file:
        upload = Path(options.file).expanduser()
        if not upload.is_file():
            raise UsageError(f"--file {options.file!r} is not a readable file.")
        mime_type = options.file_type or upload_type(upload, target.op)
    response = api.post(target, request.body, upload=upload, mime_type=mime_type)
    if response.status_code >= 400:
        raise api_failure(response)
    if options.output:
        Path(options.output).expanduser().write_bytes(response.content)
        console.note(f"wrote {len(response.content)} bytes to {options.output}.")
        data = None
    elif "json" in response.headers.get("content-type", ""):
        data = response.json() if response.content else None
        if data is not None:
            console.result(data)
    else:
        if console.pretty:
            kind = response.headers.get("content-type", "no content type")
            raise UsageError(f"the answer is {kind}, {len(response.content)} bytes: pass -o FILE.")
        console.stdout.flush()
        buffer = getattr(console.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(response.content)
            buffer.flush()
        else:
            console.stdout.write(response.text)
        data = None
    if not (options.wait and target.op == GENERATE):
        return EXIT_OK
    run_id = data.get("run_id") if isinstance(data, dict) else None
    if not run_id:
        raise Failure("generate answered without a run_id; nothing to wait for.")
    console.note(f"waiting for run {run_id} (group {data.get('group_id')})")
    watch = Target(family=target.family, op=WATCH)
    return follow(api, watch, {"run_id": run_id}, console, until_end=True)


def run(
    argv: list[str],
    *,
    env: Mapping[str, str],
    stdin: IO[str],
    stdout: IO[str],
    stderr: IO[str],
    catalogue: Catalogue | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """The whole command, with its surroundings passed in (tests pass a transport)."""
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
        catalogue = catalogue or load_catalogue()
        if options.help:
            stdout.write(help_text(options.words, catalogue))
            return EXIT_OK
        if not options.words:
            stderr.write(help_text([], catalogue))
            return EXIT_USAGE
        request = build_request(resolve(options.words, catalogue), options, stdin)
        base_url = options.url or env.get("GLOW_INSTANCE_URL", "")
        token = options.token or env.get("GLOW_TOKEN", "")
        if not base_url:
            raise UsageError("no server: set GLOW_INSTANCE_URL or pass --url.")
        if not base_url.startswith(("http://", "https://")):
            raise UsageError("--url/GLOW_INSTANCE_URL must start with http:// or https://.")
        if not token:
            raise UsageError("no API key: set GLOW_TOKEN or pass --token.")
        api = Api(base_url, token, transport=transport)
        try:
            return execute(request, options, api, console)
        finally:
            api.close()
    except UsageError as exc:
        console.error(str(exc))
        return EXIT_USAGE
    except Failure as exc:
        console.error(str(exc))
        return EXIT_FAILED
    except httpx.TimeoutException as exc:
        console.error(f"{base_url} did not answer in time ({type(exc).__name__}).")
        return EXIT_FAILED
    except httpx.TransportError as exc:
        console.error(f"cannot reach {base_url}: {exc or type(exc).__name__}.")
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.error("interrupted.")
        return EXIT_INTERRUPTED


def main() -> int:
    return run(
        sys.argv[1:],
        env=os.environ,
        stdin=sys.stdin,
        stdout=sys.stdout,
        stderr=sys.stderr,
    )
