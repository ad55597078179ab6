"""Coaching hints for the learner: what is still open in the chat and a move that would help."""

from __future__ import annotations

from glow.ai.local.dialogue import EMOTIONAL, RESOLVED, State, apply_learner, read_student, replay

_MAX_HINTS = 3


def hints(context: dict) -> list[dict[str, str]]:
    """1-3 hints: a warning first, then at most one praise, then what to do about the open concern."""
    student = read_student(context.get("persona") or {}, context.get("scenario") or {})
    state = replay(student, context.get("transcript") or [])
    message = str(context.get("learner_message") or "")
    reply = str(context.get("persona_reply") or "")
    event = apply_learner(state, message) if message.strip() else None
    name = student.name
    found: list[dict[str, str]] = []
    current = state.current
    topic = current.topic if current else None
    if event is not None and event.read.dismissive:
        about = f"{name}'s worry about {topic}" if topic else f"how {name} feels"
        found.append(
            _hint(
                "warning",
                f"That sounded dismissive, and {name} pushed back. Acknowledge {about} "
                "before restating the rules.",
            )
        )
    elif event is not None and event.read.off_topic:
        back = f" back to {topic}" if topic else " back to why they came"
        found.append(
            _hint("warning", f"That was off topic for {name}; bring the conversation{back}.")
        )
    if event is not None and not event.read.dismissive:
        praise = _praise(state, event, name)
        if praise:
            found.append(_hint("praise", praise))
    found.extend(_suggestions(state, reply, name))
    return found[:_MAX_HINTS] or [
        _hint("suggestion", f"Ask {name} an open question about what they need next.")
    ]


def _hint(kind: str, content: str) -> dict[str, str]:
    return {"type": kind, "content": content}


def _praise(state: State, event, name: str) -> str | None:
    concerns = {concern.index: concern for concern in state.student.concerns}
    if event.resolved:
        topic = concerns[event.resolved[0]].topic
        return f"Good: you dealt with {topic} directly, and {name} is calmer for it."
    if event.acknowledged:
        topic = concerns[event.acknowledged[0]].topic
        return f"Good: you acknowledged how {name} feels about {topic}."
    if event.read.open_question and event.read.on_topic:
        return f"Good open question: it lets {name} explain in their own words."
    return None


def _suggestions(state: State, reply: str, name: str) -> list[dict[str, str]]:
    current = state.current
    student = state.student
    if current is None:
        if state.plan_agreed:
            return [_hint("suggestion", f"Check that {name} knows when you will follow up.")]
        return [
            _hint(
                "suggestion",
                f"You have addressed what {name} raised; agree on a concrete next step and when "
                "it happens.",
            )
        ]
    topic = current.topic
    status = state.status_of(current)
    found = []
    asked = reply.strip().endswith("?")
    if asked:
        question = reply.strip().split(". ")[-1]
        found.append(
            _hint("suggestion", f'{name} asked "{question}" Answer it directly, about {topic}.')
        )
    if status != RESOLVED and student.temperament in EMOTIONAL and status == "open":
        found.append(
            _hint(
                "suggestion",
                f"{name} is still worried about {topic}. Name that feeling first, for example: "
                f'"It sounds like you have been really worried about {topic}."',
            )
        )
    elif status != RESOLVED:
        found.append(
            _hint(
                "suggestion",
                f"{name}'s concern about {topic} is still open. Explain it plainly, with one "
                "small example, or ask what they have tried.",
            )
        )
    return found
