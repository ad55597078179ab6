"""Simulated student replies, chosen from the state of the chat.

The reply reacts to the learner's tone (pushes back when a concern is dismissed, softens when it
is acknowledged), answers the question asked, then follows up on what is still open. Every
sentence comes from this persona's and scenario's own material or from the tone-only phrasebook,
and none repeats an earlier turn of the student's.
"""

from __future__ import annotations

import random
import re

from glow.ai.local.dialogue import (
    RESOLVED,
    Concern,
    Event,
    State,
    Student,
    apply_learner,
    read_student,
    replay,
)
from glow.ai.local.lines import options, shuffled
from glow.ai.local.text import count_phrases, seeded_random

_MAX_PARTS = 3
_FEELING_TRAITS = ("angry", "frustrat", "anxious", "nervous", "worr", "stress", "scared",
                   "afraid", "overwhelm", "confus", "lost", "upset", "annoyed", "tired",
                   "bored", "hostile", "furious", "excited", "curious", "eager")  # fmt: skip
_CONTRACTIONS = {"I'm": "I am", "don't": "do not", "can't": "cannot", "it's": "it is",
                 "It's": "It is", "That's": "That is", "that's": "that is", "I've": "I have",
                 "didn't": "did not", "doesn't": "does not", "isn't": "is not",
                 "wasn't": "was not", "you're": "you are", "I'd": "I would",
                 "haven't": "have not", "won't": "will not", "I'll": "I will"}  # fmt: skip


class _Reply:
    """Sentences picked so far; a line the student already said (or is saying) is skipped."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.parts: list[str] = []

    def take(self, *candidates: str) -> bool:
        for candidate in candidates:
            line = (candidate or "").strip()
            if line and line not in self.parts and not self.state.said(line):
                self.parts.append(line)
                return True
        return False

    @property
    def asks(self) -> bool:
        return any(part.rstrip().endswith("?") for part in self.parts)

    @property
    def full(self) -> bool:
        return len(self.parts) >= _MAX_PARTS


def persona_reply(context: dict) -> str:
    student = read_student(context.get("persona") or {}, context.get("scenario") or {})
    state = replay(student, context.get("transcript") or [])
    message = str(context.get("learner_message") or "")
    before = state.current
    rng = seeded_random("persona_reply", context)
    if not message.strip():
        return _voiced(shuffled("silence", student.temperament, rng)[0], student)
    event = apply_learner(state, message)
    reply = _Reply(state)
    _compose(reply, state, event, before, rng)
    return _voiced(_toned(_pronouns(reply.parts, student), state), student)


def _pronouns(parts: list[str], student: Student) -> str:
    """Name a topic once per reply; after that it is "it", as people speak."""
    text = " ".join(parts)
    for concern in student.concerns:
        topic = concern.topic
        first = text.find(topic)
        if first < 0:
            continue
        head, tail = text[: first + len(topic)], text[first + len(topic) :]
        text = head + re.sub(rf"(?<![\w-]){re.escape(topic)}(?![\w-])", "it", tail)
    return text


def _compose(reply: _Reply, state: State, event: Event, before: Concern | None, rng) -> None:
    student, read = state.student, event.read
    temperament = student.temperament
    concerns = {concern.index: concern for concern in student.concerns}
    if read.dismissive:
        target = concerns.get((event.dismissed or (None,))[0]) or before
        topic = target.topic if target else "this"
        reply.take(
            target.pushback if target else "", *shuffled("pushback", temperament, rng, topic)
        )
        if state.mood >= 7 and student.goal:
            reply.take(student.goal)
        elif target is not None:
            reply.take(target.ask, *shuffled("again", temperament, rng, target.topic))
        if not reply.parts:
            _last_resort(reply, state, rng)
        return
    if read.greeting and len(state.events) == 1:
        reply.take(*shuffled("greet", temperament, rng))
    # One phrasebook reaction per kind at most: two concerns settled by one turn must not
    # read as the same sentence twice.
    for position, index in enumerate(event.resolved):
        fallback = options("relief", temperament, concerns[index].topic) if not position else []
        reply.take(concerns[index].relief, *fallback)
    if event.acknowledged:
        reply.take(*shuffled("ack", temperament, rng, concerns[event.acknowledged[0]].topic))
    if read.off_topic and not read.question_kind:
        reply.take(*shuffled("steer", temperament, rng))
    _answer(reply, state, event, before, rng)
    _follow_up(reply, state, rng)
    if not reply.parts:
        _last_resort(reply, state, rng)
    _maybe_phrase(reply, student, rng)


def _answer(reply: _Reply, state: State, event: Event, before: Concern | None, rng) -> None:
    student, read = state.student, event.read
    if not read.questions or read.off_topic:
        return
    concerns = {concern.index: concern for concern in student.concerns}
    about = concerns.get(read.touched[0]) if read.touched else before
    kind = read.question_kind
    if kind == "feelings":
        reply.take(_feelings(student, state))
        if about is not None:
            reply.take(about.more if about.index in state.raised else about.worry)
    elif kind == "want":
        topic = about.topic if about else "this"
        reply.take(student.goal, *shuffled("want", student.temperament, rng, topic))
    elif about is not None and about.index not in state.raised:
        reply.take(about.worry, about.more)
    elif about is not None and state.status_of(about) != RESOLVED:
        reply.take(about.more, *shuffled("again", student.temperament, rng, about.topic))
    elif not event.resolved:
        reply.take(*shuffled("unsure", student.temperament, rng))


def _follow_up(reply: _Reply, state: State, rng: random.Random) -> None:
    """Bring up what is still open; once everything is settled, ask what comes next or close."""
    if reply.full:
        return
    student = state.student
    current = state.current
    said_now = " ".join(reply.parts)
    if current is None:
        if state.plan_agreed:
            reply.take(*shuffled("close", student.temperament, rng))
        elif not reply.asks:
            reply.take(*shuffled("next", student.temperament, rng))
        return
    if current.index not in state.raised and current.worry not in said_now:
        if current.more not in said_now:
            reply.take(current.worry)
        return
    if not reply.asks:
        reply.take(current.ask, *shuffled("again", student.temperament, rng, current.topic))


def _last_resort(reply: _Reply, state: State, rng: random.Random) -> None:
    """Everything fitting was said already: any unsaid line of this student's, else the oldest."""
    student = state.student
    topics = [concern.topic for concern in student.concerns] or ["this"]
    candidates = [student.goal, *student.phrases]
    for topic in topics:
        candidates += shuffled("again", student.temperament, rng, topic)
        candidates += shuffled("want", student.temperament, rng, topic)
    candidates += shuffled("next", student.temperament, rng)
    if not reply.take(*candidates):
        reply.parts.append(state.persona_turns[0] if state.persona_turns else candidates[-1])


def _maybe_phrase(reply: _Reply, student: Student, rng: random.Random) -> None:
    if student.phrases and not reply.full and rng.random() < 0.3:
        phrases = list(student.phrases)
        rng.shuffle(phrases)
        for phrase in phrases:
            if reply.take(phrase):
                # A characteristic aside reads best before the point it softens.
                reply.parts.insert(0, reply.parts.pop())
                return


def _feelings(student: Student, state: State) -> str:
    traits = [trait for trait in student.traits if count_phrases(trait.lower(), _FEELING_TRAITS)][
        :2
    ]
    if not traits:
        traits = ["pretty stressed"] if state.mood >= 5 else ["okay, I guess"]
    described = " and ".join(traits)
    return options("feel", student.temperament, traits=described)[0]


def _toned(text: str, state: State) -> str:
    """Heat shows when the mood flares: a blunt opener and an exclamation."""
    temperament = state.student.temperament
    latest = state.events[-1]
    flared = latest.mood_after > latest.mood_before or len(state.events) == 1
    if state.mood >= 9 and flared and temperament in ("upset", "demanding"):
        first = text if re.match(r"I\b", text) else text[:1].lower() + text[1:]
        return "Look, " + re.sub(r"\.(\s|$)", r"!\1", first, count=1)
    return text


def _voiced(text: str, student: Student) -> str:
    if "formal" in student.voice:
        for short, long in _CONTRACTIONS.items():
            text = re.sub(rf"\b{re.escape(short)}\b", long, text)
    if any(cue in student.voice for cue in ("casual", "slang", "texting")):
        text = text.replace("Honestly, ", "Tbh, ")
    return text
