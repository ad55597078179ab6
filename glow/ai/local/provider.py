"""The `local` provider: an offline, deterministic simulator for demos, tests and development.

It is not a language model. It answers from templates and simple text analysis of the
request's `context`, so the same request always gets the same answer.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

from glow.ai.abstract import BaseProvider
from glow.ai.base import CompletionRequest, CompletionResult, DeltaGenerator, Usage
from glow.ai.local.agent import agent_turn
from glow.ai.local.artifacts import generate_artifact
from glow.ai.local.coaching import hints
from glow.ai.local.grading import grade
from glow.ai.local.persona import persona_reply
from glow.ai.local.text import clip_words, keywords, seeded_random, signals
from glow.ai.schema import conform
from glow.ai.tokens import count_tokens, truncate_to_tokens

ECHO_MODEL = "echo"
_WORDS_PER_CHUNK = 3
_PIECES = re.compile(r"\S+\s*|\s+")

Answer = tuple[str, Any]

_DATA_TASKS: dict[str, Callable[[dict], Any]] = {
    "hint": hints,
    "grade": grade,
    "generate_artifact": generate_artifact,
}


class LocalProvider(BaseProvider):
    name = "local"

    def __init__(self, *, stream_delay: float = 0.0) -> None:
        # Seconds between streamed chunks: a typing pace for people watching, none for machines.
        self.stream_delay = max(0.0, stream_delay)

    def _complete(self, request: CompletionRequest) -> CompletionResult:
        text, data = self._answer(request)
        finish = "stop"
        if request.max_tokens is not None and data is None:
            shortened = truncate_to_tokens(text, request.max_tokens)
            finish = "length" if shortened != text else "stop"
            text = shortened
        return CompletionResult(
            text=text, usage=_usage(request, text), data=data, finish_reason=finish
        )

    def _stream(
        self, request: CompletionRequest, should_cancel: Callable[[], bool]
    ) -> DeltaGenerator:
        whole = self._complete(request)
        sent = ""
        for index, chunk in enumerate(_chunks(whole.text)):
            if index and self.stream_delay:
                time.sleep(self.stream_delay)
            if should_cancel():
                return CompletionResult(
                    text=sent, usage=_usage(request, sent), data=None, finish_reason="cancelled"
                )
            sent += chunk
            yield chunk
        return whole

    def _answer(self, request: CompletionRequest) -> Answer:
        if request.model == ECHO_MODEL:
            return _last_user_message(request), None
        text, data = self._task_answer(request)
        if request.json_schema is not None:
            data = conform(data if data is not None else {}, request.json_schema, text)
            return json.dumps(data), data
        return text, data

    def _task_answer(self, request: CompletionRequest) -> Answer:
        context = request.context
        if request.seed is not None:
            # The simulator's choices are hashed from the context: another seed, another sample.
            context = {**context, "request_seed": request.seed}
        if request.task in _DATA_TASKS:
            data = _DATA_TASKS[request.task](context)
            return json.dumps(data), data
        if request.task == "persona_reply":
            return persona_reply(context), None
        if request.task == "agent_turn":
            return agent_turn(context)
        return _generic_reply(_last_user_message(request)), None


def _usage(request: CompletionRequest, text: str) -> Usage:
    if request.messages:
        prompt = sum(
            count_tokens(str(message.get("content") or "")) for message in request.messages
        )
    else:
        prompt = count_tokens(json.dumps(request.context, sort_keys=True, default=str))
    return Usage(input_tokens=prompt, output_tokens=count_tokens(text))


def _last_user_message(request: CompletionRequest) -> str:
    for message in reversed(request.messages):
        if message.get("role") == "user":
            return str(message.get("content") or "")
    return ""


def _chunks(text: str) -> list[str]:
    pieces = _PIECES.findall(text)
    return [
        "".join(pieces[start : start + _WORDS_PER_CHUNK])
        for start in range(0, len(pieces), _WORDS_PER_CHUNK)
    ]


def _generic_reply(message: str) -> str:
    if not message.strip():
        return "Hello! This is Glow's offline simulator. Send a message and I'll respond."
    topic = ", ".join(keywords(message)[:3]) or "that"
    rng = seeded_random("generic", message)
    opener = rng.choice(("Thanks for your message", "Got it", "Understood"))
    if signals(message).questions:
        return (
            f"{opener}. You asked about {topic}. As the offline simulator I can't look that "
            f'up, but a good first step is to break "{clip_words(message, 12)}" into smaller '
            "questions."
        )
    return (
        f"{opener}. You wrote about {topic}. This is a simulated reply from the offline provider."
    )
