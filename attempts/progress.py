"""Reads behind the learner pages: assigned entries with their status, and progress over time."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import OuterRef, Q, Subquery

from attempts import calibration
from attempts.models import Attempt, AttemptStatus, Grade, Message
from glow.core.models import Upload
from glow.core.registry import registry
from glow.core.selectors import artifact_queryset


@dataclass
class EntryStatus:
    """One home or practice entry as a learner sees it, with the one thing to do next."""

    entry: object
    kind: str  # "home" or "practice"
    latest: Attempt | None
    last_completed: Attempt | None

    @property
    def state(self) -> str:
        if self.latest is None:
            return "not_started"
        return "completed" if self.latest.status == AttemptStatus.COMPLETED else "in_progress"

    @property
    def action(self) -> str:
        return {"not_started": "Start", "in_progress": "Continue", "completed": "Review"}[
            self.state
        ]


def _entries(*, actor, kind: str):
    family = registry.get(kind)
    return (
        artifact_queryset(actor=actor, family=family, include_archived=False)
        .select_related("simulation")
        .order_by("title", "pk")
    )


def learner_entries(*, actor, kind: str) -> list[EntryStatus]:
    """The actor's home (assigned) or practice entries, each with the actor's latest attempt
    from it and the latest completed one: three queries however many entries and attempts."""
    entry_field = "home" if kind == "home" else "practice_entry"
    mine = Attempt.objects.filter(profile=actor, archived=False, **{entry_field: OuterRef("pk")})
    entries = list(
        _entries(actor=actor, kind=kind).annotate(
            latest_id=Subquery(mine.order_by("-started_at").values("pk")[:1]),
            completed_id=Subquery(
                mine.filter(status=AttemptStatus.COMPLETED)
                .order_by("-completed_at")
                .values("pk")[:1]
            ),
        )
    )
    wanted = {e.latest_id for e in entries} | {e.completed_id for e in entries}
    attempts = {
        a.pk: a
        for a in _withheld(
            list(Attempt.objects.filter(pk__in=wanted - {None}).select_related("simulation"))
        )
    }
    return [
        EntryStatus(
            entry=entry,
            kind=kind,
            latest=attempts.get(entry.latest_id),
            last_completed=attempts.get(entry.completed_id),
        )
        for entry in entries
    ]


def _withheld(attempts: list[Attempt]) -> list[Attempt]:
    """A learner never sees a score the calibration gate holds back: such attempts read
    "awaiting review" (score None) on every learner page, as in the API."""
    for attempt in attempts:
        attempt.awaiting_review = False
    waiting = calibration.awaiting_attempt_ids(attempts) if attempts else set()
    for attempt in attempts:
        if attempt.pk in waiting:
            attempt.score = attempt.passed = None
            attempt.awaiting_review = True
    return attempts


# -- history -----------------------------------------------------------------------------------


@dataclass
class CriterionSeries:
    name: str
    points: list[tuple[datetime, int]] = field(default_factory=list)  # (completed_at, percent)


@dataclass
class SimulationProgress:
    simulation_id: object
    title: str
    scores: list[tuple[datetime, int]] = field(default_factory=list)  # graded attempts only
    criteria: list[CriterionSeries] = field(default_factory=list)

    @property
    def best(self) -> int | None:
        return max((score for _, score in self.scores), default=None)

    @property
    def latest(self) -> int | None:
        return self.scores[-1][1] if self.scores else None

    @property
    def change(self) -> int | None:
        if len(self.scores) < 2:
            return None
        return self.scores[-1][1] - self.scores[0][1]


@dataclass
class History:
    attempts: list[Attempt]
    progress: list[SimulationProgress]


def learner_history(*, actor) -> History:
    """Every attempt of the actor, newest first, and per simulation the graded scores over time
    with each criterion's percent (from the frozen completions): two queries."""
    attempts = _withheld(
        list(
            Attempt.objects.filter(profile=actor, archived=False)
            .select_related("simulation", "completion")
            .order_by("-started_at")
        )
    )
    by_simulation: dict = {}
    series: dict = defaultdict(dict)
    for attempt in reversed(attempts):  # oldest first, so each series reads left to right
        completion = getattr(attempt, "completion", None)
        if attempt.practice or completion is None or completion.score is None:
            continue
        if attempt.awaiting_review:
            continue  # its figures are not the learner's to see yet
        progress = by_simulation.setdefault(
            attempt.simulation_id,
            SimulationProgress(simulation_id=attempt.simulation_id, title=attempt.simulation.title),
        )
        when = attempt.completed_at or completion.created_at
        progress.scores.append((when, completion.score))
        for standard in completion.standards or []:
            if standard.get("percent") is None:
                continue
            key = standard.get("standard_id") or standard.get("name")
            row = series[attempt.simulation_id].setdefault(
                key, CriterionSeries(name=standard.get("name") or "Criterion")
            )
            row.points.append((when, int(standard["percent"])))
    for simulation_id, progress in by_simulation.items():
        progress.criteria = list(series[simulation_id].values())
    return History(
        attempts=attempts,
        progress=sorted(by_simulation.values(), key=lambda p: p.title.lower()),
    )


def grades_of(attempt: Attempt) -> list[Grade]:
    """The current grade of each chat, in the simulation's order."""
    return list(
        Grade.objects.filter(pk__in=attempt.chats.values("grade_id"))
        .select_related("chat__scenario__persona")
        .order_by("chat__position")
    )


def picture_url(scenario) -> str | None:
    """The newest image generated for the scenario (or else its persona), as a media URL."""
    if scenario is None:
        return None
    upload = (
        Upload.objects.filter(
            organization_id=scenario.organization_id, mime_type__startswith="image/"
        )
        .filter(
            Q(family="scenario", artifact_id=scenario.pk)
            | Q(family="persona", artifact_id=scenario.persona_id)
        )
        .order_by("-created_at")
        .values_list("pk", flat=True)
        .first()
    )
    return f"/api/v5/media/{upload}" if upload else None


# -- results -----------------------------------------------------------------------------------


@dataclass
class ChatResult:
    chat: object
    grade: Grade | None
    messages: list
    highlights: list[dict]  # each with "message_id" when the quote was found in a turn

    @property
    def commented(self) -> bool:
        """Staff commented a turn the reader may see: the transcript opens on its own."""
        return any(getattr(message, "visible_comments", None) for message in self.messages)


def transcripts_of(chats: list) -> dict:
    """Each chat's current branch (a retry replaces the reply it retried), from one query."""
    by_chat: dict = defaultdict(dict)
    for message in Message.objects.filter(chat__in=chats).order_by("seq"):
        by_chat[message.chat_id][message.pk] = message
    branches = {}
    for chat in chats:
        messages = by_chat.get(chat.pk, {})
        branch, cursor = [], messages.get(chat.last_message_id)
        while cursor is not None:
            branch.append(cursor)
            cursor = messages.get(cursor.parent_id)
        branch.reverse()
        branches[chat.pk] = branch
    return branches


def _quoted_turns(grade: Grade | None, messages: list) -> list[dict]:
    """The grader's quotes, each tied to the turn it came from (by id, else by its text)."""
    if grade is None:
        return []
    ids = {str(m.pk) for m in messages}
    found = []
    for item in grade.highlights or []:
        quote = str(item.get("quote") or "").strip()
        if not quote:
            continue
        message_id = str(item.get("message_id") or "")
        if message_id not in ids:
            match = next((m for m in messages if quote in (m.content or "")), None)
            message_id = str(match.pk) if match else ""
        found.append({**item, "quote": quote, "message_id": message_id})
    return found


def attempt_results(*, actor, attempt: Attempt) -> dict:
    """What the Results page shows: the rollup per standard group and criterion (frozen at
    completion, else the running rollup), and per chat its grade, transcript and quoted turns."""
    from attempts import selectors as s

    chats = s.chats_of(attempt)
    structure = s.structure_of(s.rubric_for(attempt))
    completion = s.completion_of(attempt)
    if completion is not None:
        score, passed = completion.score, completion.passed
        groups, standards = completion.groups, completion.standards
        time_taken = completion.time_taken
    else:
        rollup = s.rollup_of(
            chats=chats, structure=structure, pass_threshold=attempt.simulation.pass_threshold
        )
        score, passed = rollup.score, rollup.passed if rollup.score is not None else None
        groups, standards, time_taken = rollup.groups, rollup.standards, rollup.time_taken
    gate = s.learner_gate(attempt, chats)
    withheld = gate.awaiting_review and not actor.is_staff_role
    if withheld:
        hidden = set().union(*gate.hidden.values())
        score = passed = None
        groups = s._groups_masked(groups, structure, gate)
        standards = [
            {**entry, "score": None, "percent": None, "awaiting_review": True}
            if str(entry.get("standard_id")) in hidden
            else entry
            for entry in standards
        ]
        for chat in chats:
            if chat.grade_id is not None:
                chat.grade = calibration.masked_grade(chat.grade, gate.hidden.get(chat.pk, set()))
    by_group: dict = defaultdict(list)
    for standard in standards:
        by_group[str(standard.get("group_id"))].append(standard)
    transcripts = transcripts_of(chats)
    comments = calibration.turn_comments(attempt, staff=actor.is_staff_role)
    for branch in transcripts.values():
        for message in branch:
            message.visible_comments = comments.get(message.pk, [])
    chat_results = [
        ChatResult(
            chat=chat,
            grade=chat.grade if chat.grade_id else None,
            messages=transcripts.get(chat.pk, []),
            highlights=_quoted_turns(
                chat.grade if chat.grade_id else None, transcripts.get(chat.pk, [])
            ),
        )
        for chat in chats
    ]
    improvements = [
        item.get("content")
        for result in chat_results
        if result.grade is not None
        for item in (result.grade.improvements or [])
        if item.get("content")
    ]
    return {
        "attempt": attempt,
        "completion": completion,
        "score": score,
        "passed": passed,
        "pass_threshold": attempt.simulation.pass_threshold,
        "time_taken": time_taken,
        "groups": [
            {**group, "standards": by_group.get(str(group.get("group_id")), [])} for group in groups
        ],
        "chats": chat_results,
        "next_steps": list(dict.fromkeys(improvements))[:5],
        "is_own_attempt": attempt.profile_id == actor.pk,
        "awaiting_review": withheld,
    }
