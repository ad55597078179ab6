"""Persona-fidelity checks: cheap, offline flags on one simulated-student reply.

A reply is flagged when it repeats an earlier turn verbatim or nearly, breaks character
(speaks as an AI, an assistant or the teacher), leaks what the student must not know (the
scenario brief, the learner's goal, the rubric, the system prompt, the scenario's title),
or contradicts the persona's stated traits. Pure functions over plain data: any provider's
output can be checked, and staff pages count the flags per model and per simulation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from difflib import SequenceMatcher

REPEAT, CHARACTER, LEAK, TRAIT = "repeat", "character", "leak", "trait"
CODES = (REPEAT, CHARACTER, LEAK, TRAIT)
LABELS = {
    REPEAT: "repeats an earlier turn",
    CHARACTER: "breaks character",
    LEAK: "leaks the brief",
    TRAIT: "contradicts a trait",
}

_WORD = re.compile(r"[a-z0-9']+")
_NEAR_RATIO = 0.9
_NEAR_MIN_WORDS = 6
_LEAK_SPAN = 8
_OUT_OF_CHARACTER = re.compile(
    r"\b(?:as an ai\b|an ai (?:language )?model|language model|i am an ai\b|i'm an ai\b|"
    r"i am an assistant|i'm an assistant|as (?:a|an|your) (?:helpful )?assistant|"
    r"how (?:can|may) i (?:help|assist) you|i'm here to help you with|"
    r"as (?:a|your) teaching assistant|i(?: am|'m) (?:just )?(?:a )?(?:simulat|chatbot|bot\b)|"
    r"i cannot (?:role-?play|pretend)|system prompt|my instructions)",
    re.IGNORECASE,
)
_META_WORDS = re.compile(
    r"\b(?:learning objectives?|the rubric says|my persona|this scenario)\b", re.I
)

# A trait (matched at a word start) and what a student with it would not say.
_CONTRADICTIONS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("angry", "hostile", "frustrat", "furious", "aggressive", "irritat"),
     ("i'm not upset", "i am not upset", "i'm not angry", "i am not angry", "no worries at all",
      "i'm so happy", "this is wonderful", "i love this class", "totally fine with it")),
    (("anxious", "nervous", "scared", "worried", "afraid", "stressed"),
     ("i'm not worried", "i am not worried", "i'm not stressed", "i'm totally relaxed",
      "i don't care at all", "no stress at all")),
    (("confused", "lost", "unsure"),
     ("i understand completely", "that's trivial", "obviously i know", "i already know all",
      "i fully understand")),
    (("polite", "apologetic", "respectful", "shy"),
     ("shut up", "idiot", "screw you", "you're stupid", "you are stupid", "damn you")),
    (("eager", "curious", "enthusias", "motivated"),
     ("i don't care", "this is pointless", "who cares", "whatever, ")),
    (("withdrawn", "disengaged", "apathetic", "bored", "quiet"),
     ("i'm so excited", "i love this", "this is amazing")),
)  # fmt: skip
_QUIET_TRAITS = ("shy", "quiet", "withdrawn", "reserved", "terse")
_QUIET_MAX_WORDS = 90


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _normal(text: str) -> str:
    return " ".join(words(text))


def check_reply(
    reply: str,
    *,
    earlier: Iterable[str] = (),
    persona: dict | None = None,
    scenario: dict | None = None,
    hidden: Iterable[str] = (),
) -> list[dict]:
    """The flags on `reply`: [{"code", "detail"}], empty when it is a faithful student turn.

    `earlier` holds the chat's previous turns (both sides); `hidden` any further text the
    student must not recite (the rubric's standards, the system prompt).
    """
    persona, scenario = persona or {}, scenario or {}
    flags = []
    for check in (
        lambda: _repeat(reply, list(earlier)),
        lambda: _character(reply),
        lambda: _leak(reply, scenario, list(hidden)),
        lambda: _trait(reply, persona),
    ):
        found = check()
        if found:
            flags.append(found)
    return flags


def _flag(code: str, detail: str) -> dict:
    return {"code": code, "detail": detail}


def _repeat(reply: str, earlier: list[str]) -> dict | None:
    mine = _normal(reply)
    if not mine:
        return None
    for turn in earlier:
        theirs = _normal(turn)
        if not theirs:
            continue
        if mine == theirs:
            return _flag(REPEAT, f'Repeats an earlier turn verbatim: "{_clip(turn)}"')
        if len(mine.split()) >= _NEAR_MIN_WORDS and len(theirs.split()) >= _NEAR_MIN_WORDS:
            ratio = SequenceMatcher(None, mine, theirs, autojunk=False).ratio()
            if ratio >= _NEAR_RATIO:
                return _flag(
                    REPEAT, f'Nearly repeats an earlier turn ({ratio:.0%} alike): "{_clip(turn)}"'
                )
    return None


def _character(reply: str) -> dict | None:
    match = _OUT_OF_CHARACTER.search(reply) or _META_WORDS.search(reply)
    if match:
        return _flag(CHARACTER, f'Speaks out of character: "{match.group(0)}"')
    return None


def _spans(text: str, size: int) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[index : index + size]) for index in range(len(tokens) - size + 1)}


def _leak(reply: str, scenario: dict, hidden: list[str]) -> dict | None:
    title = str(scenario.get("title") or "").strip()
    if len(words(title)) >= 2 and _normal(title) in _normal(reply):
        return _flag(LEAK, f'Names the scenario\'s title: "{title}"')
    sources = {
        "the scenario brief": str(scenario.get("context") or ""),
        "the learner's goal": str(scenario.get("learner_goal") or ""),
    }
    for index, text in enumerate(hidden):
        sources.setdefault(f"the instructions ({index + 1})", text)
    mine = _spans(reply, _LEAK_SPAN)
    if not mine:
        return None
    for label, text in sources.items():
        shared = mine & _spans(text, _LEAK_SPAN)
        if shared:
            return _flag(LEAK, f'Recites {label}: "{" ".join(sorted(shared)[0])}"')
    return None


def _trait(reply: str, persona: dict) -> dict | None:
    traits = " ".join(str(trait) for trait in persona.get("traits") or []).lower()
    if not traits:
        return None
    lowered = reply.lower()
    for cues, contrary in _CONTRADICTIONS:
        trait = next((cue for cue in cues if re.search(rf"\b{re.escape(cue)}", traits)), None)
        if trait is None:
            continue
        said = next((phrase for phrase in contrary if phrase in lowered), None)
        if said:
            return _flag(TRAIT, f'Says "{said.strip(", ")}" despite the trait "{trait}"')
    if any(re.search(rf"\b{cue}", traits) for cue in _QUIET_TRAITS):
        count = len(words(reply))
        if count > _QUIET_MAX_WORDS:
            return _flag(TRAIT, f"Talks at length ({count} words) for a quiet student")
    return None


def _clip(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flagged_rate(flag_lists: Iterable[list]) -> tuple[int, int]:
    """(flagged, total) over the flag lists of a set of replies."""
    total = flagged = 0
    for flags in flag_lists:
        total += 1
        flagged += bool(flags)
    return flagged, total
