"""Reads about trusting grades: judge-vs-human calibration per criterion, the gate that hides
uncalibrated criteria from learners, turn comments, and the review queue."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import F, Q

from attempts.models import Chat, ChatStatus, CommentVisibility, Grade, Review, TurnComment
from glow.catalog.models import Rubric, Simulation
from glow.core import stats

DEFAULT_KAPPA_THRESHOLD = 0.6
DEFAULT_MIN_N = 20
QUEUE_LIMIT = 100


# -- calibration ------------------------------------------------------------------------------


def _criteria(rubric: Rubric) -> list[dict]:
    return [
        {**standard, "group_id": group["id"], "group_name": group["name"]}
        for group in rubric.structure()
        for standard in group["standards"]
    ]


def calibration_pairs(*, rubric_ids, simulation_id=None) -> dict[str, list[tuple[int, int]]]:
    """(judge, human) score pairs per criterion: every reviewed chat whose judge graded it."""
    rows = Review.objects.filter(
        standard__group__rubric_id__in=list(rubric_ids), ai_score__isnull=False
    )
    if simulation_id is not None:
        rows = rows.filter(attempt__simulation_id=simulation_id)
    pairs: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for standard_id, judge, human in rows.order_by("created_at").values_list(
        "standard_id", "ai_score", "score"
    ):
        pairs[str(standard_id)].append((judge, human))
    return pairs


def is_calibrated(*, n: int, kappa: float | None, kappa_threshold: float, min_n: int) -> bool:
    """Enough reviewed chats, and kappa at or above the threshold."""
    if n < min_n:
        return False
    return kappa is not None and kappa >= kappa_threshold


def _kappa(pairs: list[tuple[int, int]], labels: list[int]) -> float | None:
    """Kappa, except where it is undefined because neither judge nor staff ever varied: there
    every pair agreeing counts as perfect agreement (1.0), not as unknown."""
    kappa = stats.quadratic_weighted_kappa([a for a, _ in pairs], [b for _, b in pairs], labels)
    if kappa is None and pairs and all(a == b for a, b in pairs):
        return 1.0
    return kappa


def _rounded(value, digits: int = 3):
    return None if value is None else round(value, digits)


def criterion_report(pairs: list[tuple[int, int]], points: int, *, interval: bool = True) -> dict:
    labels = list(range(points + 1))
    judge = [a for a, _ in pairs]
    human = [b for _, b in pairs]
    kappa = _kappa(pairs, labels)
    ci = stats.kappa_ci(pairs, labels) if interval and len(pairs) >= 2 else None
    return {
        "n": len(pairs),
        "exact_agreement": _rounded(stats.exact_agreement(judge, human)),
        "adjacent_agreement": _rounded(stats.adjacent_agreement(judge, human)),
        "kappa": _rounded(kappa),
        "kappa_ci": [_rounded(ci[0]), _rounded(ci[1])] if ci else None,
        "labels": labels,
        # Rows: the judge's score; columns: staff's.
        "confusion_matrix": stats.confusion_matrix(judge, human, labels),
    }


def rubric_calibration(
    *,
    rubric: Rubric,
    simulation: Simulation | None = None,
    kappa_threshold: float | None = None,
    min_n: int | None = None,
) -> dict:
    """Per criterion and overall: n, exact and adjacent agreement, quadratic-weighted kappa
    with a bootstrap 95% interval, the confusion matrix, and whether it is calibrated."""
    if kappa_threshold is None:
        kappa_threshold = (
            simulation.calibration_kappa_threshold if simulation else DEFAULT_KAPPA_THRESHOLD
        )
    if min_n is None:
        min_n = simulation.calibration_min_n if simulation else DEFAULT_MIN_N
    pairs = calibration_pairs(
        rubric_ids=[rubric.pk], simulation_id=simulation.pk if simulation else None
    )
    criteria = []
    pooled: list[tuple[int, int]] = []
    for criterion in _criteria(rubric):
        mine = pairs.get(criterion["id"], [])
        pooled += mine
        report = criterion_report(mine, criterion["points"])
        criteria.append(
            {
                "standard_id": criterion["id"],
                "name": criterion["name"],
                "group_id": criterion["group_id"],
                "group_name": criterion["group_name"],
                "points": criterion["points"],
                **report,
                "calibrated": is_calibrated(
                    n=report["n"],
                    kappa=_kappa(mine, report["labels"]),
                    kappa_threshold=kappa_threshold,
                    min_n=min_n,
                ),
            }
        )
    top = max((criterion["points"] for criterion in criteria), default=0)
    overall = criterion_report(pooled, top)
    return {
        "rubric_id": rubric.pk,
        "title": rubric.title,
        "simulation_id": simulation.pk if simulation else None,
        "kappa_threshold": kappa_threshold,
        "min_n": min_n,
        "criteria": criteria,
        # Every criterion's pairs pooled on one 0..max-points scale.
        "overall": {
            **overall,
            "calibrated_count": sum(1 for criterion in criteria if criterion["calibrated"]),
            "criterion_count": len(criteria),
        },
    }


def uncalibrated_criteria(simulations: list[Simulation]) -> dict:
    """simulation id -> the ids of its rubric's criteria it does not trust yet (gated ones
    only), from one query of pairs for all their rubrics."""
    gated = [sim for sim in simulations if sim.calibration_required and sim.rubric_id]
    if not gated:
        return {}
    pairs = calibration_pairs(rubric_ids={sim.rubric_id for sim in gated})
    points: dict[str, int] = {}
    by_rubric: dict = defaultdict(list)
    for rubric_id, standard_id, value in (
        Rubric.objects.filter(pk__in={sim.rubric_id for sim in gated})
        .exclude(groups__standards__id=None)
        .values_list("pk", "groups__standards__id", "groups__standards__points")
    ):
        by_rubric[rubric_id].append(str(standard_id))
        points[str(standard_id)] = value
    found = {}
    for sim in gated:
        found[sim.pk] = {
            standard_id
            for standard_id in by_rubric.get(sim.rubric_id, [])
            if not is_calibrated(
                n=len(pairs.get(standard_id, [])),
                kappa=_kappa(pairs.get(standard_id, []), list(range(points[standard_id] + 1))),
                kappa_threshold=sim.calibration_kappa_threshold,
                min_n=sim.calibration_min_n,
            )
        }
    return found


# -- the gate ---------------------------------------------------------------------------------


@dataclass
class Gate:
    """What a learner may not see yet: per chat, the criteria awaiting review."""

    required: bool = False
    uncalibrated: set[str] = field(default_factory=set)
    hidden: dict = field(default_factory=dict)  # chat id -> {standard id}

    @property
    def awaiting_review(self) -> bool:
        return any(self.hidden.values())

    def chat_awaiting(self, chat_id) -> bool:
        return bool(self.hidden.get(chat_id))

    def criterion_status(self, chat_id, entry: dict) -> str:
        if entry.get("reviewed"):
            return "reviewed"
        if str(entry.get("standard_id")) in self.hidden.get(chat_id, set()):
            return "awaiting_review"
        return "ai"


def gate_of(attempt, chats: list[Chat]) -> Gate:
    """The attempt's gate: a gated simulation hides each uncalibrated criterion of each graded
    chat until staff review that criterion of that chat."""
    simulation = attempt.simulation
    if not simulation.calibration_required or simulation.rubric_id is None:
        return Gate()
    uncalibrated = uncalibrated_criteria([simulation]).get(simulation.pk, set())
    reviewed: dict = defaultdict(set)
    if uncalibrated:
        for chat_id, standard_id in Review.objects.filter(chat__attempt=attempt).values_list(
            "chat_id", "standard_id"
        ):
            reviewed[chat_id].add(str(standard_id))
    hidden = {}
    for chat in chats:
        if chat.grade_id is None:
            continue
        graded = {str(entry.get("standard_id")) for entry in chat.grade.standard_scores or []}
        hidden[chat.pk] = (uncalibrated & graded) - reviewed[chat.pk]
    return Gate(required=True, uncalibrated=uncalibrated, hidden=hidden)


def masked_grade(grade: Grade, hidden: set[str]) -> Grade:
    """A copy of `grade` for a learner: hidden criteria lose their score and the judge's words
    about them; with any hidden, the totals and the judge's summary lists are withheld."""
    copy = Grade(**{f.attname: getattr(grade, f.attname) for f in Grade._meta.concrete_fields})
    copy.awaiting_review = bool(hidden)
    if not hidden:
        return copy
    copy.score = copy.points = copy.passed = None
    copy.standard_scores = [
        {
            **{k: v for k, v in entry.items() if k not in ("ai_score", "ai_feedback", "samples")},
            **(
                {"score": None, "feedback": "", "status": "awaiting_review"}
                if str(entry.get("standard_id")) in hidden
                else {}
            ),
        }
        for entry in grade.standard_scores or []
    ]
    copy.feedbacks = [
        item
        for item in grade.feedbacks or []
        if item.get("source") == "staff"
        or (item.get("standard_id") and str(item.get("standard_id")) not in hidden)
    ]
    copy.strengths = [item for item in grade.strengths or [] if item.get("source") == "staff"]
    copy.improvements = [item for item in grade.improvements or [] if item.get("source") == "staff"]
    copy.analyses = copy.highlights = copy.replacements = []
    return copy


def awaiting_attempt_ids(attempts: list) -> set:
    """Of these attempts (their simulation loaded), those whose learner must not see the score
    yet: a graded chat of a gated simulation with an uncalibrated criterion not yet reviewed.
    A fixed number of queries, none when no simulation on the list is gated."""
    simulations = {attempt.simulation_id: attempt.simulation for attempt in attempts}
    uncalibrated = uncalibrated_criteria(list(simulations.values()))
    held = [a.pk for a in attempts if uncalibrated.get(a.simulation_id)]
    if not held:
        return set()
    reviewed: dict = defaultdict(set)
    for chat_id, standard_id in Review.objects.filter(attempt_id__in=held).values_list(
        "chat_id", "standard_id"
    ):
        reviewed[chat_id].add(str(standard_id))
    waiting = set()
    graded = Chat.objects.filter(attempt_id__in=held, grade__isnull=False).values_list(
        "pk", "attempt_id", "attempt__simulation_id", "grade__standard_scores"
    )
    for chat_id, attempt_id, simulation_id, entries in graded:
        scored = {str(entry.get("standard_id")) for entry in entries or []}
        if (uncalibrated[simulation_id] & scored) - reviewed[chat_id]:
            waiting.add(attempt_id)
    return waiting


# -- turn comments ----------------------------------------------------------------------------


def comment_row(comment: TurnComment) -> dict:
    return {
        "comment_id": comment.pk,
        "message_id": comment.message_id,
        "chat_id": comment.chat_id,
        "body": comment.body,
        "visibility": comment.visibility,
        "author_name": comment.author.name if comment.author_id else "",
        "created_at": comment.created_at,
    }


def turn_comments(attempt, *, staff: bool) -> dict:
    """message id -> the comments on that turn the reader may see, oldest first (one query)."""
    rows = TurnComment.objects.filter(attempt=attempt).select_related("author__user")
    if not staff:
        rows = rows.filter(visibility=CommentVisibility.LEARNER)
    found: dict = defaultdict(list)
    for comment in rows.order_by("created_at"):
        found[comment.message_id].append(comment_row(comment))
    return dict(found)


# -- the review queue ---------------------------------------------------------------------------


@dataclass
class QueueRow:
    chat: Chat
    reasons: list[str]
    waiting: list[str]  # names of the criteria waiting for a human grade
    spread: float | None


def review_queue(*, actor, limit: int = QUEUE_LIMIT) -> list[QueueRow]:
    """Ended, graded chats the actor may see that wait for review, highest judge disagreement
    first (then oldest): a criterion whose judge samples spread past the rubric's threshold, or
    an uncalibrated criterion of a gated simulation, not yet graded by staff. A fixed number of
    queries for any length."""
    from attempts.selectors import attempt_queryset

    visible = attempt_queryset(actor=actor).filter(archived=False)
    gated = list(
        Simulation.objects.filter(
            organization_id=actor.organization_id, calibration_required=True, rubric__isnull=False
        )
    )
    uncalibrated = uncalibrated_criteria(gated)
    waiting_simulations = [pk for pk, ids in uncalibrated.items() if ids]
    chats = (
        Chat.objects.filter(attempt__in=visible, status=ChatStatus.ENDED, grade__isnull=False)
        .filter(
            Q(grade__judge_spread__gt=F("attempt__simulation__rubric__judge_spread_threshold"))
            | Q(attempt__simulation_id__in=waiting_simulations)
        )
        .select_related(
            "grade", "scenario", "attempt__simulation__rubric", "attempt__profile__user"
        )
        .order_by(F("grade__judge_spread").desc(nulls_last=True), "ended_at", "pk")
    )
    candidates = list(chats[: limit * 4])
    reviewed: dict = defaultdict(set)
    for chat_id, standard_id in Review.objects.filter(
        chat__in=[chat.pk for chat in candidates]
    ).values_list("chat_id", "standard_id"):
        reviewed[chat_id].add(str(standard_id))
    names = dict(
        Rubric.objects.filter(
            pk__in={chat.attempt.simulation.rubric_id for chat in candidates}
        ).values_list("groups__standards__id", "groups__standards__name")
    )
    rows = []
    for chat in candidates:
        simulation = chat.attempt.simulation
        threshold = simulation.rubric.judge_spread_threshold if simulation.rubric_id else 1.0
        entries = chat.grade.standard_scores or []
        disputed = {
            str(entry["standard_id"]) for entry in entries if (entry.get("spread") or 0) > threshold
        }
        graded = {str(entry.get("standard_id")) for entry in entries}
        untrusted = uncalibrated.get(simulation.pk, set()) & graded
        waiting = (disputed | untrusted) - reviewed[chat.pk]
        if not waiting:
            continue
        reasons = []
        if disputed - reviewed[chat.pk]:
            reasons.append("judge samples disagree")
        if untrusted - reviewed[chat.pk]:
            reasons.append("criterion not calibrated")
        rows.append(
            QueueRow(
                chat=chat,
                reasons=reasons,
                waiting=sorted(names.get(uuid.UUID(pk), pk) for pk in waiting),
                spread=chat.grade.judge_spread,
            )
        )
        if len(rows) >= limit:
            break
    return rows
