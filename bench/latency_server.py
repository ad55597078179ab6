"""An OpenAI-compatible chat server that answers after a seeded log-normal latency.

The grid bench points every model of a test at it (and promptfoo at the same server); the
engine's integration tests run grids against it. It is an asyncio HTTP/1.1 server with
keep-alive, so thousands of requests cost it little CPU next to the clients it measures.

- POST /v1/chat/completions: waits a latency drawn, in arrival order, from a seeded
  log-normal (median `median` seconds, sigma `sigma`), then answers: a grader's call (a
  response_format or "Answer JSON" in the prompt) gets a JSON grade giving each rubric group
  one point, any other call the echo of its last user message. Usage counts four characters
  a token.
- GET /stats: calls, the latencies it waited (request read to answer written, in ms), their
  sum, and how many requests it held at once at most. POST /reset clears them.
- `fail_next(status, count, retry_after=None)` (in process) answers the next `count` chat
  requests with that HTTP status (and a Retry-After header) instead.

    python -m bench.latency_server --port 8931 [--median 0.2] [--sigma 0.6] [--seed 22]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import threading
import time
from collections import deque

RUBRIC = "Rubric: "


class LatencyServer:
    def __init__(
        self,
        *,
        median: float = 0.2,
        sigma: float = 0.6,
        seed: int = 22,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.median, self.sigma, self.seed = median, sigma, seed
        self.host, self.port = host, port
        self.random = random.Random(seed)
        self.failures: deque = deque()
        self.lock = threading.Lock()
        self.reset()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None

    # -- figures ------------------------------------------------------------------------------

    def reset(self) -> None:
        with self.lock:
            self.random = random.Random(self.seed)
            self.latencies: list[float] = []  # milliseconds, in the order requests ended
            self.statuses: list[int] = []
            self.in_flight = 0
            self.max_in_flight = 0
            self.first_at = self.last_at = None

    def stats(self) -> dict:
        with self.lock:
            return {
                "calls": len(self.latencies),
                "latencies_ms": list(self.latencies),
                "statuses": list(self.statuses),
                "sum_ms": sum(self.latencies),
                "max_in_flight": self.max_in_flight,
                "in_flight": self.in_flight,
                "first_at": self.first_at,
                "last_at": self.last_at,
            }

    def fail_next(self, status: int, count: int = 1, retry_after: float | None = None) -> None:
        with self.lock:
            self.failures.extend([(status, retry_after)] * count)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # -- serving --------------------------------------------------------------------------------

    def start(self) -> LatencyServer:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._connection, self.host, self.port, backlog=4096)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, name="latency-server", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            self._server.close()
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> LatencyServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                status, extra, payload = await self._answer(method, path.split("?")[0], body)
                data = json.dumps(payload).encode()
                head_lines = [
                    f"HTTP/1.1 {status} {'OK' if status == 200 else 'Error'}",
                    "Content-Type: application/json",
                    f"Content-Length: {len(data)}",
                    "Connection: keep-alive",
                    *(f"{name}: {value}" for name, value in extra.items()),
                ]
                writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode() + data)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:
            writer.close()
            raise
        finally:
            writer.close()

    async def _answer(self, method: str, path: str, body: bytes) -> tuple[int, dict, dict]:
        if method == "GET" and path == "/stats":
            return 200, {}, self.stats()
        if method == "POST" and path == "/reset":
            self.reset()
            return 200, {}, {"reset": True}
        if method == "GET" and path.endswith("/models"):
            return 200, {}, {"object": "list", "data": [{"id": "latency", "object": "model"}]}
        if method != "POST" or not path.endswith("/chat/completions"):
            return 404, {}, {"error": {"message": f"No route {method} {path}"}}
        request = json.loads(body or b"{}")
        with self.lock:
            failure = self.failures.popleft() if self.failures else None
            latency = self.random.lognormvariate(math.log(self.median), self.sigma)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.first_at = self.first_at or time.time()
        started = time.perf_counter()
        try:
            if failure is not None:
                status, retry_after = failure
                extra = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
                return status, extra, {"error": {"message": f"simulated {status}"}}
            await asyncio.sleep(latency)
            return 200, {}, _completion(request)
        finally:
            with self.lock:
                self.in_flight -= 1
                self.last_at = time.time()
                if failure is None:
                    self.latencies.append((time.perf_counter() - started) * 1000)
                self.statuses.append(200 if failure is None else failure[0])


def _completion(request: dict) -> dict:
    messages = request.get("messages") or []
    prompt = " ".join(str(message.get("content") or "") for message in messages)
    if request.get("response_format") or "Answer JSON" in prompt:
        text = json.dumps(_grade(prompt))
    else:
        last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
        text = str(last or "Hello.")
    return {
        "id": "chatcmpl-latency",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(request.get("model") or "latency"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": max(1, len(prompt) // 4),
            "completion_tokens": max(1, len(text) // 4),
            "total_tokens": max(1, len(prompt) // 4) + max(1, len(text) // 4),
        },
    }


def cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--median", type=float, default=0.2)
    parser.add_argument("--sigma", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args(argv)
    server = LatencyServer(
        median=args.median, sigma=args.sigma, seed=args.seed, host=args.host, port=args.port
    ).start()
    print(f"listening {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(cli())


def _grade(prompt: str) -> dict:
    """Each standard of the rubric the prompt carries (as JSON after "Rubric: ") earns a point."""
    at = prompt.find(RUBRIC)
    rubric: dict = {}
    if at >= 0:
        try:
            rubric, _ = json.JSONDecoder().raw_decode(prompt, at + len(RUBRIC))
        except ValueError:
            rubric = {}
    standards = [
        {
            "standard_id": str(standard.get("id", "")),
            "group_id": str(group.get("id", "")),
            "score": min(1, int(standard.get("points") or 0)),
            "points": int(standard.get("points") or 0),
        }
        for group in rubric.get("groups") or []
        for standard in group.get("standards") or []
    ]
    return {
        "score": sum(entry["score"] for entry in standards),
        "total_points": sum(entry["points"] for entry in standards),
        "passed": True,
        "standards": standards,
        "feedback": "Acknowledges the student and answers.",
    }
