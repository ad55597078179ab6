"""Server-Sent Events in the integration tests: glow.cli.sse's parser, each event's data as JSON."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from glow.cli.sse import events_from_lines


@dataclass
class Frame:
    event: str
    id: str | None
    data: dict


def frames(lines: Iterable[str]) -> Iterator[Frame]:
    """Frames as they arrive from `response.iter_lines()` (comments and keep-alives skipped);
    ends when the server closes the stream."""
    for event in events_from_lines(lines):
        yield Frame(event.event, event.id, event.json())
