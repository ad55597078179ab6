"""The command line: options, help texts from the catalogue, and words + options -> a request."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import IO, NamedTuple

from glow.cli.catalogue import GENERATE, POSITIONALS, WATCH, Catalogue, Target, resolve
from glow.cli.errors import UsageError


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

The families and their ops are the server's: `glow` reads them from its OpenAPI schema
(cached per server under $XDG_CACHE_HOME/glow, revalidated on each run).

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
        return op_help(resolve(words, catalogue), plural, catalogue)
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


def op_help(target: Target, plural: str, catalogue: Catalogue) -> str:
    info = catalogue.info(target.family, target.op)
    usage = OP_USAGE.get(target.op) or (
        "--file PATH [--body JSON]" if info.upload else "[--body JSON]"
    )
    summary = catalogue.summaries.get(target.family, {}).get(
        catalogue.aliases.get(target.family, {}).get(target.op, target.op), ""
    )
    lines = [
        f"usage: glow {plural} {target.op} {usage}",
        "",
        summary,
        "",
        f"{'/'.join(info.methods).upper()} {target.path}",
    ]
    if info.fields:
        lines += ["", "body fields:"]
        for item in info.fields:
            text = f"  {item.name}: {item.kind}" + (" (required)" if item.required else "")
            lines.append(text + (f"  {item.help}" if item.help else ""))
    return "\n".join(lines) + "\n"


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


class Call(NamedTuple):
    target: Target
    body: dict
    stream: bool = False  # watch: GET with the body as query parameters


def build_call(target: Target, options: argparse.Namespace, stdin: IO[str]) -> Call:
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
        return Call(target=target, body=body, stream=True)
    return Call(target=target, body=body)
