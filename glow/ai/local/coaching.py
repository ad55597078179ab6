"""Coaching hints for the learner, from their latest message and the persona's reply."""

from __future__ import annotations

from glow.ai.local.persona import read_persona
from glow.ai.local.text import Signals, salient, signals, topic_phrase

_FEELING_TEMPERAMENTS = ("upset", "anxious", "demanding")
_MAX_HINTS = 3


def hints(context: dict) -> list[dict[str, str]]:
    """1-3 hints: warnings first, then at most one praise, then suggestions."""
    persona = read_persona(context.get("persona") or {})
    message = str(context.get("learner_message") or "")
    reply = str(context.get("persona_reply") or _last_persona_turn(context))
    seen = signals(message)
    name = persona.name.split()[0]
    found = [
        *_warnings(seen, name),
        *_praise(seen)[:1],
        *_suggestions(seen, persona.temperament, name, reply, context),
    ]
    return found[:_MAX_HINTS] or [
        _hint("suggestion", f"Keep {name} talking with an open question.")
    ]


def _hint(kind: str, content: str) -> dict[str, str]:
    return {"type": kind, "content": content}


def _last_persona_turn(context: dict) -> str:
    turns = [turn for turn in context.get("transcript") or [] if turn.get("role") == "assistant"]
    return str(turns[-1].get("content", "")) if turns else ""


def _warnings(seen: Signals, name: str) -> list[dict[str, str]]:
    if not seen.dismissive:
        return []
    return [
        _hint(
            "warning",
            f"That phrasing can sound dismissive and tends to escalate; acknowledge what {name} "
            "is feeling before stating the rules.",
        )
    ]


def _praise(seen: Signals) -> list[dict[str, str]]:
    praise = []
    if seen.empathy and not seen.dismissive:
        praise.append(_hint("praise", "Good: you acknowledged their feelings before solving."))
    if seen.open_questions:
        praise.append(_hint("praise", "Nice open question: it invites them to explain in depth."))
    if seen.next_steps:
        praise.append(_hint("praise", "Offering a concrete next step gives them something to do."))
    return praise


def _suggestions(
    seen: Signals, temperament: str, name: str, reply: str, context: dict
) -> list[dict[str, str]]:
    topic = _topic(reply, context)
    suggestions = []
    if "?" in reply:
        suggestions.append(
            _hint("suggestion", f"{name} asked you something: answer it directly before moving on.")
        )
    if temperament in _FEELING_TEMPERAMENTS and not seen.empathy:
        suggestions.append(
            _hint(
                "suggestion",
                f'Name the emotion first, e.g. "It sounds like {topic} has been really stressful."',
            )
        )
    if not seen.questions:
        suggestions.append(
            _hint(
                "suggestion", f'Ask an open question, e.g. "What worries you most about {topic}?"'
            )
        )
    if temperament == "confused" and not seen.explanation:
        suggestions.append(
            _hint("suggestion", f"Explain {topic} in plain terms, with one concrete example.")
        )
    if len(context.get("transcript") or []) >= 4 and not seen.next_steps:
        suggestions.append(
            _hint("suggestion", "Agree on a concrete next step, such as a time for office hours.")
        )
    return suggestions


def _topic(reply: str, context: dict) -> str:
    title = str((context.get("scenario") or {}).get("title") or "")
    words = salient(reply)
    return topic_phrase(title, f"the {words[0]}" if words else "this")
