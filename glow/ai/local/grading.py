"""Rubric grading from the state of the conversation, with the turns it relied on quoted.

Each standard is read for the concepts it names (acknowledging feelings, open questions,
explaining, next steps, respectful tone). Each concept is scored from what the learner did to
the student's concerns over the chat (acknowledged, resolved, dismissed, a next step agreed),
and the feedback quotes the learner's sentences that earned or cost the points.
"""

from __future__ import annotations

from dataclasses import dataclass

from glow.ai.local.dialogue import (
    ACKNOWLEDGE,
    ALL_DISMISSIVE,
    RESOLVED,
    Event,
    State,
    read_student,
    replay,
)
from glow.ai.local.text import (
    EXPLANATION,
    NEXT_STEPS,
    OPEN_QUESTION_STARTS,
    count_phrases,
    sentences,
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
                "boundar", "de-escalat", "escalat", "dismissive"),
}  # fmt: skip

TIPS = {
    "empathy": "name the student's feelings about what worries them before moving to solutions",
    "questions": "ask open questions (what, how) about what worries them",
    "explanation": "explain the relevant policy or concept plainly, with the reason behind it",
    "next_steps": "close with a concrete, agreed next step and when it happens",
    "respect": "keep a calm, respectful tone and avoid dismissive phrases",
}

_RUBRIC_FILLER = frozenset(stem(word) for word in (
    "student", "students", "learner", "demonstrates", "shows", "uses", "teaching", "assistant",
    "effective", "effectively", "appropriate", "conversation", "response", "responds",
    "throughout", "clearly", "able", "ensures", "the", "their", "they",
))  # fmt: skip
_STRONG, _PARTIAL = 0.7, 0.4
_MAX_QUOTES = 2


@dataclass(frozen=True)
class Quote:
    message_id: str | None
    text: str
    good: bool


@dataclass(frozen=True)
class Finding:
    """One concept's score from the state, why, and the quotes it rests on."""

    fraction: float
    reason: str
    quotes: tuple[Quote, ...]


@dataclass(frozen=True)
class StandardScore:
    group_id: str
    standard: dict
    fraction: float
    concepts: tuple[str, ...]
    reason: str
    quotes: tuple[Quote, ...]

    @property
    def points(self) -> int:
        return int(self.standard.get("points") or 0)

    @property
    def score(self) -> int:
        return int(self.points * self.fraction + 0.5)


def grade(context: dict) -> dict:
    persona = context.get("persona") or {}
    scenario = context.get("scenario") or {}
    student = read_student(persona, scenario)
    if not persona and not scenario:
        # No situation to read concerns from: judge the moves alone.
        student = _without_concerns(student)
    state = replay(student, context.get("transcript") or [])
    findings = {name: _CONCEPTS[name](state) for name in CONCEPT_CUES}
    scored = [
        score_standard(str(group.get("id", "")), standard, state, findings)
        for group in (context.get("rubric") or {}).get("groups") or []
        for standard in group.get("standards") or []
    ]
    threshold = float(context.get("pass_threshold", 70))
    return _report(scored, context, state, threshold)


def _without_concerns(student):
    from dataclasses import replace

    return replace(student, concerns=())


def score_standard(group_id: str, standard: dict, state: State, findings: dict) -> StandardScore:
    wording = f"{standard.get('name', '')} {standard.get('description', '')}"
    concepts = tuple(name for name, cues in CONCEPT_CUES.items() if count_phrases(wording, cues))
    if not state.events:
        return StandardScore(group_id, standard, 0.0, concepts, "There are no learner turns.", ())
    if concepts:
        chosen = [findings[name] for name in concepts]
        fraction = sum(item.fraction for item in chosen) / len(chosen)
        reason = " ".join(dict.fromkeys(item.reason for item in chosen))
        quotes = tuple(dict.fromkeys(quote for item in chosen for quote in item.quotes))
    else:
        fraction, reason, quotes = _by_wording(wording, state)
    return StandardScore(group_id, standard, max(0.0, min(1.0, fraction)), concepts, reason, quotes)


# -- concepts, each from the state ------------------------------------------------------------


def _quote(event: Event, phrases: tuple[str, ...], *, good: bool, question: bool = False) -> Quote:
    parts = sentences(event.read.text) or [event.read.text]
    chosen = next(
        (
            part
            for part in parts
            if count_phrases(part, phrases) or (question and part.endswith("?"))
        ),
        parts[0],
    )
    return Quote(event.message_id, chosen.strip(), good)


def _count(number: int, noun: str) -> str:
    if number == 0:
        return f"no {noun}s"
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _dismissals(state: State) -> list[Event]:
    return [event for event in state.events if event.read.dismissive]


def _topics(state: State, indexes) -> str:
    names = [concern.topic for concern in state.student.concerns if concern.index in indexes]
    return (
        ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + (names[-1] if names else "")
    )


def _empathy(state: State) -> Finding:
    name = state.student.name
    kind = [e for e in state.events if e.read.empathy and not e.read.dismissive]
    covered = {i for i, status in state.status.items() if status in ("acknowledged", RESOLVED)}
    covered |= {i for e in kind for i in (e.acknowledged or e.read.touched)}
    raised = state.raised | {i for e in state.events for i in e.read.touched} | covered
    feel = min(1.0, len(kind) / 2)
    if state.student.concerns and raised:
        cover = len(covered & raised) / len(raised)
        fraction = 0.5 * feel + 0.5 * cover
        reason = (
            f"You acknowledged {len(covered & raised)} of the {len(raised)} concerns {name} "
            f"raised" + (f" ({_topics(state, covered & raised)})." if covered & raised else ".")
        )
    else:
        fraction = feel
        reason = f"You named {name}'s feelings in {_count(len(kind), 'turn')}."
    quotes = [_quote(e, ACKNOWLEDGE, good=True) for e in kind[:_MAX_QUOTES]]
    dismissals = _dismissals(state)
    if dismissals:
        fraction = min(fraction, 0.2) - 0.1 * (len(dismissals) - 1)
        reason = (
            f"You dismissed how {name} felt"
            + (
                f" about {_topics(state, dismissals[0].dismissed)}"
                if dismissals[0].dismissed
                else ""
            )
            + ", which undoes any acknowledgement."
        )
        quotes = [_quote(e, ALL_DISMISSIVE, good=False) for e in dismissals[:_MAX_QUOTES]] + quotes
    return Finding(fraction, reason, tuple(quotes[: _MAX_QUOTES + 1]))


def _respect(state: State) -> Finding:
    name = state.student.name
    dismissals = _dismissals(state)
    drifted = [e for e in state.events if e.read.off_topic]
    spoken = [e for e in state.events if len(e.read.text.split()) >= 3]
    if not spoken:
        return Finding(0.0, "Too little was said to judge the tone.", ())
    fraction = 1.0 - 0.5 * len(dismissals) - 0.15 * len(drifted)
    if dismissals:
        reason = f"{_count(len(dismissals), 'turn')} brushed {name} off, and {name} pushed back."
        quotes = [_quote(e, ALL_DISMISSIVE, good=False) for e in dismissals[:_MAX_QUOTES]]
    else:
        reason = f"Your tone stayed calm and respectful in all {len(spoken)} turns."
        quotes = [_quote(e, ACKNOWLEDGE, good=True) for e in spoken[:1]]
    if drifted:
        reason += f" {_count(len(drifted), 'turn')} wandered off what {name} came about."
    return Finding(fraction, reason, tuple(quotes))


def _questions(state: State) -> Finding:
    name = state.student.name
    asked = [e for e in state.events if e.read.questions and e.read.on_topic]
    open_ = [e for e in asked if e.read.open_question]
    open_count = sum(_open_questions(e) for e in open_)
    closed_count = sum(len(e.read.questions) for e in asked) - open_count
    fraction = min(1.0, (open_count + 0.5 * closed_count) / 2)
    if _dismissals(state):
        fraction *= 0.5
    reason = (
        f"You asked {_count(open_count, 'open question')} about what {name} raised."
        if asked
        else f"You asked {name} no questions about their situation."
    )
    quotes = [_quote(e, (), good=True, question=True) for e in (open_ or asked)[:_MAX_QUOTES]]
    return Finding(fraction, reason, tuple(quotes))


def _open_questions(event: Event) -> int:
    return sum(
        1 for question in event.read.questions if question.lower().startswith(OPEN_QUESTION_STARTS)
    )


def _explanation(state: State) -> Finding:
    name = state.student.name
    explained = [
        e for e in state.events if e.read.explanation and e.read.on_topic and not e.read.dismissive
    ]
    resolved = {i for e in state.events for i in e.resolved}
    language = min(1.0, len(explained) / 2)
    if state.student.concerns:
        share = len(resolved) / len(state.student.concerns)
        fraction = 0.6 * share + 0.4 * language
        reason = (
            f"You answered {len(resolved)} of {name}'s {len(state.student.concerns)} concerns"
            + (f" ({_topics(state, resolved)})." if resolved else ".")
        )
    else:
        fraction = language
        reason = f"You explained the point in {_count(len(explained), 'turn')}."
    quotes = [_quote(e, EXPLANATION, good=True) for e in explained[:_MAX_QUOTES]]
    return Finding(fraction, reason, tuple(quotes))


def _next_steps(state: State) -> Finding:
    name = state.student.name
    offered = [e for e in state.events if e.read.plan and not e.read.dismissive]
    if state.plan_agreed:
        fraction, reason = 1.0, f"You and {name} agreed a next step once the concerns were settled."
    elif offered:
        fraction = 0.6
        reason = f"You proposed a next step, but {name} still had open concerns."
    else:
        fraction, reason = 0.0, f"No next step was agreed with {name}."
    quotes = [_quote(e, NEXT_STEPS, good=True) for e in offered[-_MAX_QUOTES:]]
    return Finding(fraction, reason, tuple(quotes))


_CONCEPTS = {
    "empathy": _empathy,
    "questions": _questions,
    "explanation": _explanation,
    "next_steps": _next_steps,
    "respect": _respect,
}


def _by_wording(wording: str, state: State) -> tuple[float, str, tuple[Quote, ...]]:
    """A standard naming none of the concepts: how much of its wording the learner covered."""
    terms = stems(wording) - _RUBRIC_FILLER
    said = [(event, stems(event.read.text)) for event in state.events if not event.read.dismissive]
    matched = {term for term in terms if any(term in found for _, found in said)}
    fraction = min(1.0, len(matched) / max(1, min(len(terms), 4)))
    quotes = tuple(
        Quote(event.message_id, event.read.text.strip(), True)
        for event, found in said
        if found & matched
    )[:_MAX_QUOTES]
    words_ = ", ".join(sorted(matched)[:4])
    reason = f"Your turns covered {words_}." if matched else "Your turns did not cover it."
    return fraction, reason, quotes


# -- the report -------------------------------------------------------------------------------


def _report(scored: list[StandardScore], context: dict, state: State, threshold: float) -> dict:
    score = sum(item.score for item in scored)
    total = sum(item.points for item in scored)
    return {
        "score": score,
        "total_points": total,
        "passed": bool(total) and score * 100 / total >= threshold,
        "standards": [_standard_entry(item) for item in scored],
        "groups": _group_totals(scored, context),
        "feedback": _summary(scored, score, total, state),
        "strengths": [_line(item) for item in scored if item.fraction >= _STRONG],
        "improvements": [
            f"{item.standard.get('name', 'Standard')}: {_tip(item)}"
            for item in scored
            if item.fraction < _PARTIAL + 0.1
        ],
        "highlights": _highlights(scored),
    }


def _line(item: StandardScore) -> str:
    return f"{item.standard.get('name', 'Standard')}: {item.score}/{item.points}"


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
    if item.concepts:
        return TIPS[item.concepts[0]]
    return f"address {str(item.standard.get('name', 'this standard')).lower()} explicitly"


def _standard_feedback(item: StandardScore) -> str:
    text = f"{_line(item)}. {item.reason}"
    if item.quotes:
        text += " Evidence: " + "; ".join(f'"{quote.text}"' for quote in item.quotes) + "."
    if item.fraction < _STRONG:
        text += f" To improve: {_tip(item)}."
    return text


def _summary(scored: list[StandardScore], score: int, total: int, state: State) -> str:
    if not state.events:
        return "There are no learner messages to grade, so no standard could be met."
    if not scored:
        return "The rubric has no standards to grade against."
    percent = round(score * 100 / total) if total else 0
    best = max(scored, key=lambda item: item.fraction)
    worst = min(scored, key=lambda item: item.fraction)
    text = f"Scored {score}/{total} ({percent}%)."
    open_ = state.open_concerns
    name = state.student.name
    if state.student.concerns:
        text += (
            f" {name} left with {_count(len(open_), 'concern')} still open"
            f" ({_topics(state, {c.index for c in open_})})."
            if open_
            else f" {name} left with every concern addressed."
        )
    if best.fraction > 0:
        text += f" Strongest: {best.standard.get('name')}."
    if worst.fraction < _STRONG:
        text += f" Focus next on {worst.standard.get('name')}: {_tip(worst)}."
    return text


def _highlights(scored: list[StandardScore]) -> list[dict]:
    found: list[dict] = []
    quoted: set[str] = set()
    for item in sorted(scored, key=lambda entry: entry.fraction):
        for quote in item.quotes:
            if quote.text in quoted:
                continue
            quoted.add(quote.text)
            comment = (
                f"Good example of {item.standard.get('name')}."
                if quote.good
                else f"This cost points on {item.standard.get('name')}: it reads as dismissive."
            )
            entry = {"quote": quote.text, "comment": comment}
            if quote.message_id is not None:
                entry["message_id"] = str(quote.message_id)
            found.append(entry)
    bad = [entry for entry in found if "cost points" in entry["comment"]]
    good = [entry for entry in found if entry not in bad]
    return (bad + good)[:5]
