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

`FakeOpenAIServer(refuse_formats=("json_schema",))` refuses chat requests whose
`response_format` is of those kinds (`json_schema`, `json_object_schema` for `json_object`
with a `schema`, `json_object`) the way llama-cpp-python's server does: HTTP 500 with its
pydantic message, before taking anything from the queue.

Speech routes share the queue. POST /v1/audio/transcriptions (multipart; recorded as a dict
of its form fields, the upload as an `UploadedFile`) answers a `Transcript(text, seconds=None,
usage=None)`: `seconds` reports duration usage, `usage` token usage; with the queue empty it
answers "heard N bytes". POST /v1/audio/speech answers a `SpeechAudio(seconds=1.0, audio=None,
streamed=False)`: `audio` bytes as given, else a WAV of silence that long (24 kHz, as OpenAI
sends), with `streamed=True` carrying a header of unknown length as streamed WAVs do; with the
queue empty it answers 0.05 s of silence per input character. HTTPFailure and Delay work there
too; a behaviour of the wrong kind for a route answers 400, so a mis-scripted test fails loudly.
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import io
import json
import re
import threading
import wave
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from glow.ai.base import Usage
from glow.ai.tokens import count_tokens

CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
TRANSCRIPTION_PATHS = ("/v1/audio/transcriptions", "/audio/transcriptions")
SPEECH_PATHS = ("/v1/audio/speech", "/audio/speech")
SPEECH_RATE = 24_000


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


@dataclass(frozen=True)
class Transcript:
    text: str
    seconds: float | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class SpeechAudio:
    seconds: float = 1.0
    audio: bytes | None = None
    streamed: bool = False


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


Behaviour = Reply | HTTPFailure | Delay | Transcript | SpeechAudio


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
    refuse_formats: frozenset[str] = frozenset()


class FakeOpenAIServer:
    """An OpenAI-compatible server on 127.0.0.1 with a free port, run in a daemon thread."""

    def __init__(self, *, refuse_formats: tuple[str, ...] = ()) -> None:
        self._state = _State(refuse_formats=frozenset(refuse_formats))
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
        content_type = self.headers.get("Content-Type") or ""
        if content_type.startswith("multipart/form-data"):
            body = _form_fields(raw, content_type)
        else:
            body = _json_or_text(raw)
        path = self.path.split("?")[0]
        refused = path in CHAT_PATHS and _format_kind(body) in self.shared.refuse_formats
        with self.shared.lock:
            self.shared.requests.append(
                RecordedRequest("POST", path, dict(self.headers.items()), body)
            )
            take = self.shared.queue and not refused
            behaviour = self.shared.queue.popleft() if take else None
            self.shared.served += 1
            number = self.shared.served
        if path in TRANSCRIPTION_PATHS + SPEECH_PATHS and isinstance(body, dict):
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self._perform_audio(behaviour, body, path)
            return
        if path not in CHAT_PATHS or not isinstance(body, dict):
            self._send_json(404, {"error": {"message": f"no route for {path}", "type": "invalid"}})
            return
        if refused:
            self._send_json(500, {"error": _format_refusal(body)})
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

    def _perform_audio(self, behaviour: Behaviour | None, body: dict, path: str) -> None:
        if isinstance(behaviour, Delay):
            if self.shared.stopping.wait(behaviour.seconds):
                return
            behaviour = behaviour.then
        if isinstance(behaviour, HTTPFailure):
            error = {"message": behaviour.message, "type": "server_error", "code": None}
            self._send_json(behaviour.status, {"error": error})
            return
        if path in TRANSCRIPTION_PATHS:
            upload = body.get("file")
            size = len(upload.data) if isinstance(upload, UploadedFile) else 0
            transcript = behaviour or Transcript(f"heard {size} bytes")
            if not isinstance(transcript, Transcript):
                self._misfit(transcript, path)
                return
            self._send_json(200, _transcription(transcript))
            return
        audio = behaviour or SpeechAudio(seconds=0.05 * len(str(body.get("input") or "")))
        if not isinstance(audio, SpeechAudio):
            self._misfit(audio, path)
            return
        data = (
            audio.audio if audio.audio is not None else _silence_wav(audio.seconds, audio.streamed)
        )
        self.send_response(200)
        self.send_header("Content-Type", "audio/wav")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _misfit(self, behaviour: Behaviour, path: str) -> None:
        message = f"the test queued a {type(behaviour).__name__} for {path}"
        self._send_json(400, {"error": {"message": message, "type": "invalid_request_error"}})

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


def _format_kind(body: Any) -> str | None:
    shape = body.get("response_format") if isinstance(body, dict) else None
    if not isinstance(shape, dict):
        return None
    if shape.get("type") == "json_object" and "schema" in shape:
        return "json_object_schema"
    return str(shape.get("type"))


def _format_refusal(body: dict) -> dict:
    kind = body["response_format"].get("type")
    message = (
        "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input "
        f"should be 'text' or 'json_object' [type=literal_error, input_value='{kind}', "
        "input_type=str]"
    )
    return {"message": message, "type": "internal_server_error", "param": None, "code": None}


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


def _form_fields(raw: bytes, content_type: str) -> dict:
    """A multipart/form-data body as {name: text, or UploadedFile for a file part}."""
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            fields[name] = UploadedFile(filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode(errors="replace")
    return fields


def _transcription(transcript: Transcript) -> dict:
    answer: dict[str, Any] = {"text": transcript.text}
    if transcript.seconds is not None:
        answer["usage"] = {"type": "duration", "seconds": transcript.seconds}
    elif transcript.usage is not None:
        answer["usage"] = {
            "type": "tokens",
            "input_tokens": transcript.usage.input_tokens,
            "output_tokens": transcript.usage.output_tokens,
            "total_tokens": transcript.usage.total_tokens,
        }
    return answer


def _silence_wav(seconds: float, streamed: bool) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SPEECH_RATE)
        wav.writeframes(bytes(2 * round(seconds * SPEECH_RATE)))
    data = bytearray(out.getvalue())
    if streamed:
        # What a server that streams its WAV writes: it cannot know the sizes in advance.
        data[4:8] = data[40:44] = b"\xff\xff\xff\xff"
    return bytes(data)
