"""Text analysis shared by the local simulator: keywords, crude stems, conversation signals."""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any

STOPWORDS = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers herself him himself his how i if
    in into is it its itself just let me more most my myself no nor not now of off on once
    only or other our ours ourselves out over own same she should so some such than that
    the their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you
    your yours yourself yourselves im ive dont cant wont thats youre really get got one like
    know think want need make way well still even much many thing things okay ok yeah yes
    hi hello hey please thanks thank sure""".split()  # noqa: SIM905 - a word list reads better as prose
)

_WORD = re.compile(r"[a-z][a-z']*")
_SUFFIXES = ("ations", "ation", "ments", "ment", "ness", "ings", "ing", "ied", "ies", "ed",
             "ly", "es", "s")  # fmt: skip
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]*")

EMPATHY = ("understand", "sorry", "hear you", "frustrat", "feel", "makes sense", "appreciate",
           "sounds like", "that must", "stressful", "worried", "upsetting", "i see",
           "valid", "thank you for")  # fmt: skip
DISMISSIVE = ("calm down", "whatever", "not my problem", "deal with it", "rules are rules",
              "too bad", "no exceptions", "should have", "not my fault", "stop complaining",
              "nothing i can do", "that's life", "get over", "your problem", "obviously")  # fmt: skip
EXPLANATION = ("because", "policy", "the reason", "means", "syllabus", "rubric", "deadline",
               "works like", "the rule", "criteria", "explain", "for example", "in other words")  # fmt: skip
NEXT_STEPS = ("let's", "lets", "we can", "i will", "i'll", "next step", "plan", "office hours",
              "schedule", "follow up", "email", "meet", "tomorrow", "by friday", "regrade",
              "resubmit", "together")  # fmt: skip
OPEN_QUESTION_STARTS = ("what", "how", "why", "tell me", "can you tell", "could you walk",
                        "can you walk", "walk me", "help me understand", "which",
                        "can you explain", "could you explain", "could you tell")  # fmt: skip


# Nouns a student conversation is usually about; they make the best words to echo back.
DOMAIN_WORDS = frozenset(
    """grade grades grading rubric exam exams midterm final deadline deadlines extension
    assignment assignments homework policy credit points score essay lab labs quiz quizzes
    project syllabus regrade attendance plagiarism feedback lecture class course semester
    paper draft submission late penalty office hours group partner test tests problem
    problems question answer chapter reading notes study""".split()  # noqa: SIM905 - prose list
)
# Common verbs and fillers that carry no topic even when long.
WEAK_WORDS = frozenset(
    """matters believes gives means makes seems feels goes says tells sounds wants needs
    takes looks happened understand actually probably maybe something anything everything
    nothing someone everyone going doing getting trying saying thinking wondering unfair
    fair honestly basically""".split()  # noqa: SIM905 - prose list
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


@functools.lru_cache(maxsize=16384)
def stem(word: str) -> str:
    """A crude suffix-stripping stem; cached (a vocabulary repeats: this was a tenth of every
    simulated persona reply and grade)."""
    word = word.strip("'").removesuffix("'s")
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def keywords(text: str) -> list[str]:
    """Content words of `text` in order of first appearance, without duplicates."""
    seen: dict[str, None] = {}
    for word in words(text):
        bare = word.replace("'", "")
        if len(bare) >= 3 and bare not in STOPWORDS:
            seen.setdefault(bare, None)
    return list(seen)


def salient(text: str, prefer: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Content words ranked by how well they name a topic: shared, domain, then long words."""

    def rank(word: str) -> tuple[int, int, str]:
        score = 3 * (stem(word) in prefer) + 2 * (word in DOMAIN_WORDS) - 3 * (word in WEAK_WORDS)
        return (-score, -len(word), word)

    return sorted(keywords(text), key=rank)


def stems(text: str) -> set[str]:
    return {stem(word) for word in keywords(text)}


def sentences(text: str) -> list[str]:
    return [match.group().strip() for match in _SENTENCE.finditer(text) if match.group().strip()]


@functools.cache
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    # Anchored at word starts only, so "frustrat" also matches "frustrated".
    return re.compile(r"\b(?:" + "|".join(map(re.escape, phrases)) + ")")


def count_phrases(text: str, phrases: tuple[str, ...]) -> int:
    if not phrases:
        return 0
    return len(_phrase_pattern(phrases).findall(text.lower()))


@dataclass(frozen=True)
class Signals:
    """What a learner message does, as counts of conversational moves."""

    questions: int
    open_questions: int
    empathy: int
    dismissive: int
    explanation: int
    next_steps: int
    words: int

    @property
    def main_move(self) -> str:
        if self.dismissive:
            return "dismissive"
        if self.empathy:
            return "empathy"
        if self.questions:
            return "question"
        if self.next_steps:
            return "plan"
        if self.explanation:
            return "explanation"
        return "statement" if self.words else "silence"


def signals(text: str) -> Signals:
    parts = sentences(text)
    asked = [part for part in parts if part.endswith("?")]
    return Signals(
        questions=len(asked),
        open_questions=sum(part.lower().startswith(OPEN_QUESTION_STARTS) for part in asked),
        empathy=count_phrases(text, EMPATHY),
        dismissive=count_phrases(text, DISMISSIVE),
        explanation=count_phrases(text, EXPLANATION),
        next_steps=count_phrases(text, NEXT_STEPS),
        words=len(words(text)),
    )


def seeded_random(*parts: Any) -> random.Random:
    """A generator seeded from the inputs, so the same inputs give the same output."""
    canonical = json.dumps(parts, sort_keys=True, default=str)
    return random.Random(hashlib.sha256(canonical.encode()).digest())


def topic_phrase(title: str, fallback: str = "this") -> str:
    """A scenario title as a noun phrase to use mid-sentence: "the midterm grade dispute"."""
    cleaned = title.strip().rstrip(".").lower()
    if not cleaned:
        return fallback
    return cleaned if cleaned.startswith(("the ", "a ", "an ")) else f"the {cleaned}"


def clip_words(text: str, limit: int) -> str:
    parts = text.split()
    return " ".join(parts[:limit]) + ("…" if len(parts) > limit else "")
