"""The server's commands, cached on disk per server and revalidated with the schema's ETag.

A run asks the server `If-None-Match: <etag>` and, on 304, reads the compact catalogue kept
beside the tag (milliseconds, not the multi-megabyte schema). A server that cannot be reached
leaves the cached catalogue in use; with none cached the error says how to point `glow` at one."""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from glow.cli.catalogue import Catalogue, from_schema
from glow.cli.errors import Failure, NoAnswerInTime, Unreachable
from glow.cli.http import Request, Transport, api_failure

# Bumped when the cached catalogue's shape changes: an older file is then ignored.
CACHE_FORMAT = 1
SCHEMA_TIMEOUT = 60.0  # a cold server renders its schema in a few seconds


def schema_url(base_url: str) -> str:
    """/api/v5/artifacts -> /api/v5/schema?format=json (any other base: the host's /api/v5)."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path
    if path.endswith("/artifacts"):
        path = path.removesuffix("/artifacts") + "/schema"
    else:
        path = "/api/v5/schema"
    return urlunsplit((parts.scheme, parts.netloc, path, "format=json", ""))


def cache_dir(env: Mapping[str, str]) -> Path:
    root = env.get("XDG_CACHE_HOME") or os.path.join(env.get("HOME") or "~", ".cache")
    return Path(root).expanduser() / "glow"


def cache_path(base_url: str, env: Mapping[str, str]) -> Path:
    """One file per server: its host and a checksum of its schema URL name it (zlib: hashlib's
    import would cost every run milliseconds)."""
    digest = f"{zlib.crc32(schema_url(base_url).encode()):08x}"
    host = urlsplit(base_url).hostname or "server"
    return cache_dir(env) / f"{host}-{digest}.json"


def read_cache(path: Path) -> tuple[str | None, Catalogue | None]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != CACHE_FORMAT:
            return None, None
        return data.get("etag"), Catalogue.from_json(data["catalogue"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, None


def write_cache(path: Path, etag: str | None, catalogue: Catalogue) -> None:
    """Written to a temporary file and renamed: two runs at once never read half a file."""
    payload = {"format": CACHE_FORMAT, "etag": etag, "catalogue": catalogue.to_json()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(payload, separators=(",", ":")), encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass  # a read-only home: every run fetches the schema, slower but right


def load(
    base_url: str, *, token: str, env: Mapping[str, str], transport: Transport, user_agent: str
) -> tuple[Catalogue, str | None]:
    """The server's catalogue and, when the server could not be asked, why (the cache served)."""
    path = cache_path(base_url, env)
    etag, cached = read_cache(path)
    headers = {"Accept": "application/json", "User-Agent": user_agent}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if etag and cached is not None:
        headers["If-None-Match"] = etag
    url = schema_url(base_url)
    try:
        with transport(
            Request("GET", url, headers=headers, read_timeout=SCHEMA_TIMEOUT)
        ) as response:
            if response.status == 304 and cached is not None:
                return cached, None
            if response.status != 200:
                reason = api_failure(response)
                raise Failure(f"cannot read the ops from {url}: {reason}")
            try:
                catalogue = from_schema(response.json())
            except ValueError as exc:
                raise Failure(f"the schema at {url} is not JSON ({exc}).") from exc
            if not catalogue.ops:
                raise Failure(f"the schema at {url} lists no Glow ops (no x-glow-family).")
            write_cache(path, response.headers.get("etag"), catalogue)
            return catalogue, None
    except (Unreachable, NoAnswerInTime, OSError) as exc:
        if cached is None:
            raise Failure(f"cannot read the ops from {url}: {exc}") from exc
        return cached, f"{url} did not answer ({exc}); using the ops cached in {path}."
