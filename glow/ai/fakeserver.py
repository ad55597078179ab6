"""A scriptable OpenAI-compatible HTTP server on loopback, for tests of code that calls models.

Usage::

    with FakeOpenAIServer() as srv:
        srv.enqueue(HTTPFailure(500), Reply("Hello!", usage=Usage(12, 2)))
        provider = get_provider("openai", base_url=srv.base_url, max_retries=1)
        provider.complete(CompletionRequest(messages=[...], model="any"))
        srv.requests[-1].body["messages"]

Each POST to /v1/chat/completions takes the next behaviour from the queue; with the queue
empty the server echoes the last user message. Behaviours:

- `Reply(text, usage=None, finish_reason="stop", send_usage=True, chunk_delay=0.0)`: a
  normal answer, whole or streamed as SSE (`stream: true`), with a final usage chunk when
  the client sends `stream_options.include_usage`. `usage=None` counts tokens with
  `count_tokens`; `send_usage=False` omits usage entirely. For a structured call, a
  malformed answer is just a Reply whose text is not valid JSON, e.g. `Reply('{"score": ')`.
- `HTTPFailure(status, message)`: an OpenAI-style error body with that status (500, 429...).
- `Delay(seconds, then=None)`: waits before answering (with `then`, or the echo), to make
  a client with a shorter timeout give up.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from glow.ai.base import Usage
from glow.ai.tokens import count_tokens

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")


@dataclass(frozen=True)
class Reply:
    text: str
    usage: Usage | None = None
    finish_reason: str = "stop"
    send_usage: bool = True
    chunk_delay: float = 0.0


@dataclass(frozen=True)
class HTTPFailure:
    status: int
    message: str = "simulated failure"


@dataclass(frozen=True)
class Delay:
    seconds: float
    then: Reply | HTTPFailure | None = None


Behaviour = Reply | HTTPFailure | Delay


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class _State:
    queue: deque[Behaviour] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)
    served: int = 0


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 with a free port, run in a daemon thread."""

    def __init__(self) -> None:
        self._state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self._state))
        self._server.daemon_threads = True
        # A short poll keeps `stop()` (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def enqueue(self, *behaviours: Behaviour) -> None:
        with self._state.lock:
            self._state.queue.extend(behaviours)

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        # Wakes any Delay still sleeping so shutdown does not wait for it.
        self._state.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _handler_for(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(_ChatHandler):
        shared = state

    return Handler


class _ChatHandler(BaseHTTPRequestHandler):
    shared: _State

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        body = _json_or_text(raw)
        path = self.path.split("?")[0]
        with self.shared.lock:
            self.shared.requests.append(
                RecordedRequest("POST", path, dict(self.headers.items()), body)
            )
            behaviour = self.shared.queue.popleft() if self.shared.queue else None
            self.shared.served += 1
            number = self.shared.served
        if path not in CHAT_PATHS or not isinstance(body, dict):
            self._send_json(404, {"error": {"message": f"no route for {path}", "type": "invalid"}})
            return
        # A client that gave up (timeout, cancellation) has nobody left to answer.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._perform(behaviour, body, number)

    def _perform(self, behaviour: Behaviour | None, body: dict, number: int) -> None:
        if isinstance(behaviour, Delay):
            if self.shared.stopping.wait(behaviour.seconds):
                return
            behaviour = behaviour.then
        if isinstance(behaviour, HTTPFailure):
            error = {"message": behaviour.message, "type": "server_error", "code": None}
            self._send_json(behaviour.status, {"error": error})
            return
        reply = behaviour or Reply(_last_user_message(body))
        usage = reply.usage or _counted_usage(body, reply.text)
        completion_id = f"chatcmpl-fake-{number}"
        if body.get("stream"):
            self._stream(reply, usage, body, completion_id)
        else:
            self._send_json(200, _completion(reply, usage, body, completion_id))

    def _send_json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, reply: Reply, usage: Usage, body: dict, completion_id: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        pieces = re.findall(r"\S+\s*|\s+", reply.text)
        for index, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if index == 0 else {"content": piece}
            self._event(_chunk(completion_id, body, [_choice(delta, None)]))
            if reply.chunk_delay and self.shared.stopping.wait(reply.chunk_delay):
                return
        self._event(_chunk(completion_id, body, [_choice({}, reply.finish_reason)]))
        wants_usage = (body.get("stream_options") or {}).get("include_usage")
        if wants_usage and reply.send_usage:
            self._event({**_chunk(completion_id, body, []), "usage": _usage_json(usage)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, payload: dict) -> None:
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()


def _json_or_text(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return raw.decode(errors="replace")


def _last_user_message(body: dict) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _counted_usage(body: dict, text: str) -> Usage:
    prompt = sum(count_tokens(str(m.get("content") or "")) for m in body.get("messages") or [])
    return Usage(input_tokens=prompt, output_tokens=count_tokens(text))


def _usage_json(usage: Usage) -> dict:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _completion(reply: Reply, usage: Usage, body: dict, completion_id: str) -> dict:
    completion = {
        "id": completion_id,
        "object": "chat.completion",
        "created": 0,
        "model": str(body.get("model") or "fake"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": reply.finish_reason,
            }
        ],
    }
    if reply.send_usage:
        completion["usage"] = _usage_json(usage)
    return completion


def _chunk(completion_id: str, body: dict, choices: list[dict]) -> dict:
    return {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": 0,
        "model": str(body.get("model") or "fake"),
        "choices": choices,
    }


def _choice(delta: dict, finish_reason: str | None) -> dict:
    return {"index": 0, "delta": delta, "finish_reason": finish_reason}
