"""Following a run's or a group's event stream: print each event, stop at the run's end, resume
a dropped connection with Last-Event-ID."""

from __future__ import annotations

import time
from typing import Any

from glow.cli import output
from glow.cli.errors import EXIT_FAILED, EXIT_OK, Dropped, Failure, NoAnswerInTime, Unreachable
from glow.cli.http import api_failure
from glow.cli.output import Console, Ticker
from glow.cli.sse import SSEEvent, SSEParser

# django-eventstream's own frames: connection bookkeeping, not events of the run.
TRANSPORT_EVENTS = frozenset({"stream-open", "keep-alive", "stream-reset"})
RESUME_DELAY, RESUME_WINDOW = 1.0, 15.0  # seconds between and for reconnect attempts
DROPS = (Dropped, NoAnswerInTime)


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


def follow(api, path: str, params: dict, console: Console, *, until_end: bool) -> int:
    """Print each event of a watch stream; with until_end, stop at the run's terminal event.

    A connection that drops mid-stream is resumed once with Last-Event-ID (the server replays
    what was missed); a server restarting meanwhile gets RESUME_WINDOW seconds to come back.
    """
    last_id: str | None = None
    resuming_until: float | None = None  # set while a resume is under way
    ticker = Ticker(console, output.DOT_SECONDS)
    try:
        while True:
            parser = SSEParser(last_id)
            answered = False
            try:
                with api.stream(path, params, last_id) as response:
                    answered = True
                    if response.status >= 400:
                        raise api_failure(response)
                    for chunk in response.iter_bytes():
                        for event in parser.feed_bytes(chunk):
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
            except (Unreachable, *DROPS) as exc:
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
    payload = event.json() if event.data else event.data
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
