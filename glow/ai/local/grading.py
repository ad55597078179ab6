"""Rubric grading of a transcript: each standard scored from evidence in the learner's turns."""

from __future__ import annotations

from dataclasses import dataclass

from glow.ai.local.text import (
    DISMISSIVE,
    EMPATHY,
    EXPLANATION,
    NEXT_STEPS,
    Signals,
    count_phrases,
    keywords,
    sentences,
    signals,
    stem,
    stems,
)

CONCEPT_CUES: dict[str, tuple[str, ...]] = {
    "empathy": ("empath", "acknowledg", "feel", "emotion", "listen", "validat", "rapport",
                "support", "care", "compassion", "frustrat"),
    "questions": ("question", "ask", "inquir", "probe", "explor", "understand", "clarif",
                  "curios", "open-ended"),
    "explanation": ("explain", "policy", "policies", "clear", "inform", "rule", "expectation",
                    "criteria", "rubric", "reason", "transparen", "grading"),
    "next_steps": ("next", "step", "plan", "follow", "action", "resolv", "solution", "goal",
                   "commit", "resource", "option"),
    "respect": ("respect", "profession", "tone", "calm", "courte", "polite", "patien",
                "boundar", "de-escalat", "escalat"),
}  # fmt: skip

TIPS = {
    "empathy": "name the student's feelings before moving to solutions",
    "questions": "ask open questions (what, how) to understand their view",
    "explanation": "explain the relevant policy or criteria plainly, with the reason behind it",
    "next_steps": "close with a concrete, agreed next step",
    "respect": "keep a calm, respectful tone and avoid dismissive phrases",
}

# Rubric boilerplate that says nothing about what the learner should actually say.
_RUBRIC_FILLER = frozenset(stem(word) for word in (
    "student", "students", "learner", "demonstrates", "shows", "uses", "teaching", "assistant",
    "effective", "effectively", "appropriate", "conversation", "response", "responds",
    "throughout", "clearly", "able", "ensures", "the", "their", "they",
))  # fmt: skip

# What each concept looks like when a learner actually does it.
CONCEPT_PHRASES: dict[str, tuple[str, ...]] = {
    "empathy": EMPATHY,
    "explanation": EXPLANATION,
    "next_steps": NEXT_STEPS,
}

_TERMS_FOR_FULL_CREDIT = 4
_SHARED_PREFIX = 5
_SHORTEST_STEM = 4
_STRONG, _PARTIAL = 0.7, 0.4


@dataclass(frozen=True)
class LearnerTurn:
    message_id: str | None
    content: str


@dataclass(frozen=True)
class Evidence:
    signals: Signals
    stems: set[str]
    turns: list[LearnerTurn]


@dataclass(frozen=True)
class StandardScore:
    group_id: str
    standard: dict
    fraction: float
    concepts: tuple[str, ...]
    matched: tuple[str, ...]

    @property
    def points(self) -> int:
        return int(self.standard.get("points") or 0)

    @property
    def score(self) -> int:
        return int(self.points * self.fraction + 0.5)


def grade(context: dict) -> dict:
    turns = [
        LearnerTurn(turn.get("id"), str(turn.get("content") or ""))
        for turn in context.get("transcript") or []
        if turn.get("role") == "user" and str(turn.get("content") or "").strip()
    ]
    text = "\n".join(turn.content for turn in turns)
    evidence = Evidence(signals(text), stems(text), turns)
    scored = [
        score_standard(str(group.get("id", "")), standard, evidence)
        for group in (context.get("rubric") or {}).get("groups") or []
        for standard in group.get("standards") or []
    ]
    threshold = float(context.get("pass_threshold", 70))
    return _report(scored, context, evidence, threshold)


def score_standard(group_id: str, standard: dict, evidence: Evidence) -> StandardScore:
    wording = f"{standard.get('name', '')} {standard.get('description', '')}"
    concepts = tuple(name for name, cues in CONCEPT_CUES.items() if count_phrases(wording, cues))
    terms = stems(wording) - _RUBRIC_FILLER
    matched = tuple(sorted(term for term in terms if related(term, evidence.stems)))
    if not evidence.turns:
        return StandardScore(group_id, standard, 0.0, concepts, matched)
    overlap = min(1.0, len(matched) / max(1, min(len(terms), _TERMS_FOR_FULL_CREDIT)))
    strengths = _concept_strengths(evidence.signals)
    engagement = min(1.0, evidence.signals.words / 80) * min(1.0, len(evidence.turns) / 2)
    if concepts:
        signal = sum(strengths[name] for name in concepts) / len(concepts)
        # Doing the thing counts even in other words than the rubric's.
        fraction = 0.5 * signal + 0.3 * max(overlap, signal) + 0.2 * engagement
    else:
        generic = sum(strengths.values()) / len(strengths)
        fraction = 0.6 * overlap + 0.2 * generic + 0.2 * engagement
    harsh = {"empathy", "respect"} & set(concepts)
    fraction -= (0.3 if harsh else 0.15) * evidence.signals.dismissive
    return StandardScore(group_id, standard, max(0.0, min(1.0, fraction)), concepts, matched)


def related(term: str, found: set[str]) -> bool:
    """Whether a learner stem matches `term`; crude stems need a shared-prefix fallback."""
    return term in found or any(_shares_root(term, other) for other in found)


def _shares_root(first: str, second: str) -> bool:
    shorter = min(len(first), len(second))
    if shorter < _SHORTEST_STEM:
        return False
    length = min(shorter, _SHARED_PREFIX)
    return first[:length] == second[:length]


def _concept_strengths(seen: Signals) -> dict[str, float]:
    return {
        "empathy": min(1.0, seen.empathy / 2),
        "questions": min(1.0, (seen.questions + seen.open_questions) / 3),
        "explanation": min(1.0, seen.explanation / 2),
        "next_steps": min(1.0, seen.next_steps / 2),
        "respect": max(0.0, 1.0 - 0.5 * seen.dismissive) if seen.words else 0.0,
    }


def _report(
    scored: list[StandardScore], context: dict, evidence: Evidence, threshold: float
) -> dict:
    score = sum(item.score for item in scored)
    total = sum(item.points for item in scored)
    strengths = [_strength(item) for item in scored if item.fraction >= _STRONG]
    improvements = [_improvement(item) for item in scored if item.fraction < _PARTIAL + 0.1]
    return {
        "score": score,
        "total_points": total,
        "passed": bool(total) and score * 100 / total >= threshold,
        "standards": [_standard_entry(item) for item in scored],
        "groups": _group_totals(scored, context),
        "feedback": _summary(scored, score, total, evidence),
        "strengths": strengths,
        "improvements": improvements,
        "highlights": _highlights(scored, evidence),
    }


def _standard_entry(item: StandardScore) -> dict:
    return {
        "standard_id": str(item.standard.get("id", "")),
        "group_id": item.group_id,
        "score": item.score,
        "points": item.points,
        "feedback": _standard_feedback(item),
    }


def _group_totals(scored: list[StandardScore], context: dict) -> list[dict]:
    groups = (context.get("rubric") or {}).get("groups") or []
    return [
        {
            "group_id": str(group.get("id", "")),
            "score": sum(i.score for i in scored if i.group_id == str(group.get("id", ""))),
            "total_points": sum(i.points for i in scored if i.group_id == str(group.get("id", ""))),
        }
        for group in groups
    ]


def _tip(item: StandardScore) -> str:
    concept = item.concepts[0] if item.concepts else None
    if concept:
        return TIPS[concept]
    return f"address {str(item.standard.get('name', 'this standard')).lower()} explicitly"


def _standard_feedback(item: StandardScore) -> str:
    name = item.standard.get("name", "This standard")
    evidence = f" (evidence: {', '.join(item.matched[:4])})" if item.matched else ""
    if item.fraction >= _STRONG:
        return f"{name}: clearly demonstrated{evidence}."
    if item.fraction >= _PARTIAL:
        return f"{name}: partly demonstrated{evidence}; to strengthen it, {_tip(item)}."
    if item.fraction > 0:
        return f"{name}: barely evidenced{evidence}; {_tip(item)}."
    return f"{name}: not evidenced in the learner's messages; {_tip(item)}."


def _strength(item: StandardScore) -> str:
    return f"{item.standard.get('name', 'Standard')}: {item.score}/{item.points}"


def _improvement(item: StandardScore) -> str:
    return f"{item.standard.get('name', 'Standard')}: {_tip(item)}"


def _summary(scored: list[StandardScore], score: int, total: int, evidence: Evidence) -> str:
    if not evidence.turns:
        return "There are no learner messages to grade, so no standard could be met."
    if not scored:
        return "The rubric has no standards to grade against."
    percent = round(score * 100 / total) if total else 0
    best = max(scored, key=lambda item: item.fraction)
    worst = min(scored, key=lambda item: item.fraction)
    text = f"Scored {score}/{total} ({percent}%)."
    if best.fraction > 0:
        text += f" Strongest: {best.standard.get('name')}."
    if worst.fraction < _STRONG:
        text += f" Focus next on {worst.standard.get('name')}: {_tip(worst)}."
    return text


def _highlights(scored: list[StandardScore], evidence: Evidence) -> list[dict]:
    found: list[dict] = []
    quoted: set[str] = set()
    for item in sorted(scored, key=lambda entry: -entry.fraction):
        if item.fraction < _PARTIAL:
            break
        best = _best_sentence(evidence.turns, set(item.matched), item.concepts)
        if best and best[1] not in quoted:
            quoted.add(best[1])
            found.append(_highlight(*best, f"Good example of {item.standard.get('name')}."))
    for turn in evidence.turns:
        for sentence in sentences(turn.content):
            if count_phrases(sentence, DISMISSIVE) and sentence not in quoted:
                quoted.add(sentence)
                found.append(_highlight(turn, sentence, "This may come across as dismissive."))
    return found[:5]


def _best_sentence(
    turns: list[LearnerTurn], terms: set[str], concepts: tuple[str, ...]
) -> tuple[LearnerTurn, str] | None:
    candidates = [
        (_sentence_weight(sentence, terms, concepts), turn, sentence)
        for turn in turns
        for sentence in sentences(turn.content)
    ]
    best = max(candidates, key=lambda entry: entry[0], default=None)
    return (best[1], best[2]) if best and best[0] > 0 else None


def _sentence_weight(sentence: str, terms: set[str], concepts: tuple[str, ...]) -> int:
    sentence_stems = {stem(word) for word in keywords(sentence)}
    weight = sum(related(term, sentence_stems) for term in terms)
    for concept in concepts:
        weight += count_phrases(sentence, CONCEPT_PHRASES.get(concept, ()))
    if "questions" in concepts and sentence.endswith("?"):
        weight += 1
    return weight


def _highlight(turn: LearnerTurn, quote: str, comment: str) -> dict:
    entry = {"quote": quote, "comment": comment}
    if turn.message_id is not None:
        entry["message_id"] = str(turn.message_id)
    return entry
