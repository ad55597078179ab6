"""What the CLI prints: results on stdout, progress and errors on stderr, dots while it waits."""

from __future__ import annotations

import _thread
import json
from typing import IO, Any

DOT_SECONDS = 3.0


class Console:
    """stdout carries results; stderr carries progress and errors."""

    def __init__(self, stdout: IO[str], stderr: IO[str], *, quiet: bool) -> None:
        self.stdout, self.stderr = stdout, stderr
        self.pretty = isatty(stdout)
        self.progress = not quiet
        self.lock = _thread.allocate_lock()  # threading itself only when a watch ticks
        self.dots = False

    def result(self, data: Any) -> None:
        if self.pretty:
            text = json.dumps(data, indent=2, ensure_ascii=False)
        else:
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def event_line(self, data: dict) -> None:
        with self.lock:
            self.stdout.write(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n")
            self.stdout.flush()

    def raw(self, content: bytes) -> None:
        self.stdout.flush()
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(content)
            buffer.flush()
        else:
            self.stdout.write(content.decode("utf-8", errors="replace"))

    def note(self, text: str) -> None:
        if self.progress:
            self.error(text)

    def error(self, text: str) -> None:
        with self.lock:
            if self.dots:
                self.stderr.write("\n")
                self.dots = False
            self.stderr.write(f"glow: {text}\n")
            self.stderr.flush()

    def dot(self) -> None:
        with self.lock:
            self.stderr.write(".")
            self.stderr.flush()
            self.dots = True


def isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Ticker:
    """A dot on stderr every few seconds without events, so a long wait looks alive."""

    def __init__(self, console: Console, seconds: float | None = None) -> None:
        import threading

        self.console = console
        self.seconds = DOT_SECONDS if seconds is None else seconds
        self.beat = threading.Event()
        self.stopped = threading.Event()
        if console.progress and isatty(console.stderr):
            threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self.stopped.is_set():
            if not self.beat.wait(self.seconds) and not self.stopped.is_set():
                self.console.dot()
            self.beat.clear()

    def alive(self) -> None:
        self.beat.set()

    def stop(self) -> None:
        self.stopped.set()
        self.beat.set()
