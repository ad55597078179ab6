"""A minimal Server-Sent Events reader over an httpx streaming response, for integration tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass
class Frame:
    event: str
    id: str | None
    data: dict


def frames(lines: Iterable[str]) -> Iterator[Frame]:
    """Frames as they arrive from `response.iter_lines()` (comments and keep-alives skipped);
    ends when the server closes the stream."""
    fields: dict[str, str] = {}
    for line in lines:
        if not line:
            if "event" in fields:
                yield Frame(
                    fields["event"], fields.get("id"), json.loads(fields.get("data") or "{}")
                )
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        fields[name] = f"{fields[name]}\n{value}" if name == "data" and name in fields else value
