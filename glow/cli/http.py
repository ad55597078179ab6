"""HTTP for the CLI on the standard library's http.client: one request, one answer, streamed."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from glow.cli.errors import Dropped, Failure, NoAnswerInTime, Unreachable

CONNECT_TIMEOUT = 10.0
# Reads are slow for exports and generation triggers under load; connects are not.
READ_TIMEOUT = 300.0
CHUNK = 64 * 1024


class Request:
    def __init__(
        self,
        method: str,
        url: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        *,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self.method, self.url, self.headers = method, url, headers or {}
        self.body, self.read_timeout = body, read_timeout


class Response:
    """Status, headers (lower-case names) and a body read on demand, once."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str],
        chunks: Iterator[bytes],
        *,
        url: str,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.status, self.reason, self.headers, self.url = status, reason, headers, url
        self._chunks, self._close, self._content = chunks, close, None

    def iter_bytes(self) -> Iterator[bytes]:
        yield from self._chunks

    def read(self) -> bytes:
        return self.content

    @property
    def content(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self.iter_bytes())
        return self._content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


Transport = Callable[[Request], Response]


def send(request: Request) -> Response:
    """The real transport: a fresh connection per request (the CLI makes one or two)."""
    parts = urlsplit(request.url)
    if parts.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=CONNECT_TIMEOUT
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=CONNECT_TIMEOUT)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    try:
        connection.connect()
        connection.sock.settimeout(request.read_timeout)
        connection.request(
            request.method, target, body=request.body or None, headers=request.headers
        )
        answer = connection.getresponse()
    except TimeoutError as exc:
        connection.close()
        raise NoAnswerInTime(str(exc) or "timed out") from exc
    except OSError as exc:  # refused, reset, unknown host, closed without a status line
        connection.close()
        raise Unreachable(str(exc) or type(exc).__name__) from exc
    except http.client.HTTPException as exc:
        connection.close()
        raise Unreachable(str(exc) or type(exc).__name__) from exc

    def chunks() -> Iterator[bytes]:
        try:
            while chunk := answer.read1(CHUNK):
                yield chunk
        except (OSError, http.client.HTTPException) as exc:
            raise Dropped(str(exc) or type(exc).__name__) from exc
        finally:
            connection.close()

    headers = {name.lower(): value for name, value in answer.getheaders()}
    return Response(
        answer.status, answer.reason, headers, chunks(), url=request.url, close=connection.close
    )


def with_query(url: str, params: dict[str, Any]) -> str:
    if not params:
        return url
    query = urlencode({key: stringify(value) for key, value in params.items()})
    return f"{url}{'&' if '?' in url else '?'}{query}"


def stringify(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def multipart(fields: dict[str, Any], upload: Path, mime_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body: --body fields as form fields, then the file as `file`."""
    boundary = os.urandom(16).hex()
    parts = []
    for key, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + stringify(value).encode()
            + b"\r\n"
        )
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{upload.name}"'
        f"\r\nContent-Type: {mime_type}\r\n\r\n".encode()
        + upload.read_bytes()
        + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def api_failure(response: Response) -> Failure:
    """The server's error shape {detail, code, fields, ...} as one readable message."""
    status = f"HTTP {response.status}"
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or "detail" not in data:
        message = f"{status} {response.reason}"
        text = response.text.strip()[:300]
        if "html" in response.headers.get("content-type", ""):
            message += " (a web page, not Glow's API)"
        elif text:
            message += f": {text}"
        if response.status == 404:
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
    if response.status == 401:
        lines.append("  check GLOW_TOKEN or --token (manage.py createapikey <username> makes one)")
    return Failure("\n".join(lines))


def format_messages(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return " ".join(value)
    return value if isinstance(value, str) else json.dumps(value)
