"""The `glow` command, on the standard library only: it learns its families and ops from the
server's OpenAPI schema (cached per server, revalidated by ETag) and never imports Django.

Modules: `catalogue` (schema -> commands, words -> op), `schema_cache` (per-server cache),
`args` (options, help, request bodies), `http` (http.client transport, error messages),
`sse` (the event-stream parser the tests and benches share), `watch` (following a run),
`output` (stdout/stderr), `app` (the command itself)."""

from glow.cli.app import main, run, version

__all__ = ["main", "run", "version"]
