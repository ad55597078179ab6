"""Server-Sent Events: the WHATWG event-stream parser the CLI, the tests and the benches share.

Standard library only, and no I/O: feed it text as it arrives (`SSEParser.feed`), or hand it
lines (`events_from_lines`) or a whole body (`parse`)."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

LINE_BREAK = re.compile(r"\r\n|\r|\n")


class SSEEvent(NamedTuple):
    event: str
    data: str
    id: str | None  # the last event id in force after this event

    def json(self) -> Any:
        """The data as JSON, or the text itself when it is not JSON (an empty data is {})."""
        if not self.data:
            return {}
        try:
            return json.loads(self.data)
        except json.JSONDecodeError:
            return self.data


class SSEParser:
    """The WHATWG event-stream algorithm, fed text chunks as they arrive."""

    def __init__(self, last_id: str | None = None) -> None:
        self.pending = ""
        self.started = False
        self.after_cr = False  # a chunk ended in \r: a \n opening the next one ends nothing
        self.event = ""
        self.data: list[str] = []
        self.last_id = last_id
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, text: str) -> list[SSEEvent]:
        if not self.started and text:
            self.started = True
            text = text.removeprefix("\ufeff")
        if self.after_cr and text:
            text = text.removeprefix("\n")
            self.after_cr = False
        lines = LINE_BREAK.split(self.pending + text)
        self.pending = lines.pop()
        if text.endswith("\r"):
            self.after_cr = True
        events = []
        for line in lines:
            event = self.line(line)
            if event is not None:
                events.append(event)
        return events

    def feed_bytes(self, chunk: bytes) -> list[SSEEvent]:
        """A chunk of the UTF-8 body; a character split across chunks is kept for the next."""
        return self.feed(self.decoder.decode(chunk))

    def line(self, line: str) -> SSEEvent | None:
        """One line without its line break; an empty line dispatches the event gathered."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.last_id = value
        return None

    def _dispatch(self) -> SSEEvent | None:
        data, event = self.data, self.event
        self.data, self.event = [], ""
        if not data:
            return None
        return SSEEvent(event=event or "message", data="\n".join(data), id=self.last_id)


def events_from_lines(lines: Iterable[str | bytes]) -> Iterator[SSEEvent]:
    """Events from lines without their breaks (httpx `iter_lines()`, a socket's readline)."""
    parser = SSEParser()
    for line in lines:
        if isinstance(line, bytes):
            line = line.decode("utf-8", errors="replace")
        event = parser.line(line.rstrip("\r\n"))
        if event is not None:
            yield event


def parse(text: str) -> list[SSEEvent]:
    """Every complete event of a body read so far (a trailing unterminated event is not one)."""
    return SSEParser().feed(text)
