"""Reads behind the staff cohort pages, Dashboard, Leaderboard and Reports (seed 000).

Every figure starts from `attempt_queryset(actor=)` (the API's scoping) narrowed by the same
FilterSet attempt/search and attempt/export use, and is computed from a fixed number of
queries whatever the number of rows; the pages only lay the results out.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.utils import timezone

from attempts.models import Attempt, AttemptStatus, Chat, ChatStatus, Completion
from attempts.selectors import attempt_queryset, family
from glow.accounts.models import Cohort, Profile
from glow.catalog.models import Home, LeaderboardMethod, Simulation
from glow.core import selectors as core
from glow.core.errors import NotFound

SCORE_BANDS = [(0, 20), (20, 40), (40, 60), (60, 80), (80, 101)]
# A page that lays every attempt out reads at most this many (newest first).
MAX_ROWS = 5000


# -- filters --------------------------------------------------------------------------------


@dataclass
class Filters:
    """What the cohort pages, dashboard and export narrow by (all optional)."""

    simulation_id: Any = None
    cohort_id: Any = None
    start_date: date | None = None
    end_date: date | None = None  # inclusive
    practice: bool | None = None
    status: str | None = None

    def params(self) -> dict:
        """The same filter fields attempt/search and attempt/export take."""
        params: dict = {}
        if self.simulation_id:
            params["simulation_ids"] = [str(self.simulation_id)]
        if self.cohort_id:
            params["cohort_ids"] = [str(self.cohort_id)]
        if self.start_date:
            params["start_date"] = datetime.combine(self.start_date, time.min).isoformat() + "Z"
        if self.end_date:
            params["end_date"] = datetime.combine(self.end_date, time.max).isoformat() + "Z"
        if self.practice is not None:
            params["practice"] = self.practice
        if self.status:
            params["status"] = self.status
        return params


def filtered_attempts(*, actor, filters: Filters) -> QuerySet:
    """Live attempts the actor may see, narrowed as attempt/search would narrow them."""
    base = attempt_queryset(actor=actor).filter(archived=False)
    return core.filtered(family=family(), queryset=base, params=filters.params())


def simulations_for(*, actor) -> list[Simulation]:
    """Simulations with attempts the actor may see (the pickers' options)."""
    ids = attempt_queryset(actor=actor).order_by().values("simulation_id").distinct()
    return list(
        Simulation.objects.filter(organization_id=actor.organization_id, pk__in=ids).order_by(
            "title"
        )
    )


def cohorts_for(*, actor) -> QuerySet:
    """Cohorts the actor may follow: the organization's for admins; an instructor's
    departments' cohorts and their own; a learner's own."""
    cohorts = Cohort.objects.filter(organization_id=actor.organization_id)
    if actor.is_admin:
        return cohorts
    if actor.is_instructor:
        return cohorts.filter(
            Q(department_id__in=actor.department_ids()) | Q(pk__in=actor.cohort_ids())
        )
    return cohorts.filter(pk__in=actor.cohort_ids())


def cohort_access(*, actor, cohort_id) -> Cohort:
    try:
        return cohorts_for(actor=actor).get(pk=cohort_id)
    except (Cohort.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No cohort with that id.")


def simulation_access(*, actor, simulation_id) -> Simulation:
    """A simulation of the actor's organization: staff see any; a learner one assigned to
    their cohorts or one they attempted. Missing and forbidden look alike."""
    simulations = Simulation.objects.filter(organization_id=actor.organization_id)
    if actor.is_learner:
        simulations = simulations.filter(
            Q(pk__in=Home.objects.filter(cohort_id__in=actor.cohort_ids()).values("simulation_id"))
            | Q(pk__in=Attempt.objects.filter(profile_id=actor.pk).values("simulation_id"))
        )
    try:
        return simulations.get(pk=simulation_id)
    except (Simulation.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No simulation with that id.")


# -- cohort table -----------------------------------------------------------------------------


@dataclass
class Cell:
    status: str = ""  # the latest chat's status on this scenario
    status_label: str = ""
    best_score: int | None = None
    attempt_count: int = 0
    time_taken: int | None = None  # seconds, summed over ended chats
    attempt_id: Any = None  # the latest attempt with this scenario


@dataclass
class LearnerRow:
    profile: Profile
    cells: list[Cell]
    attempt_count: int = 0
    completed_count: int = 0
    best_score: int | None = None
    last_status: str = ""
    last_status_label: str = ""
    time_taken: int | None = None
    last_attempt_id: Any = None


@dataclass
class CohortTable:
    simulation: Simulation | None
    scenarios: list
    rows: list[LearnerRow]
    attempts: list[Attempt]
    attempt_total: int


def _add_time(current: int | None, value: int | None) -> int | None:
    if value is None:
        return current
    return (current or 0) + value


def cohort_table(*, actor, filters: Filters) -> CohortTable:
    """A simulation's learner x scenario table (status, best score, attempts, time on task) and
    the attempts behind it: five queries whatever the size."""
    attempts_qs = filtered_attempts(actor=actor, filters=filters)
    total = attempts_qs.count()
    attempts = list(
        attempts_qs.select_related("profile__user", "simulation", "cohort").order_by(
            "-created_at", "-id"
        )[:MAX_ROWS]
    )
    simulation = None
    scenarios: list = []
    if filters.simulation_id:
        simulation = (
            Simulation.objects.for_api()
            .filter(organization_id=actor.organization_id, pk=filters.simulation_id)
            .first()
        )
        scenarios = simulation.ordered_scenarios() if simulation else []
    chats = (
        Chat.objects.filter(attempt_id__in=[a.pk for a in attempts])
        .select_related("grade")
        .order_by("attempt__created_at", "position")
        .only(
            "attempt_id",
            "scenario_id",
            "status",
            "started_at",
            "ended_at",
            "grade__score",
            "attempt__created_at",
        )
    )
    by_attempt = {a.pk: a for a in attempts}
    positions = {scenario.pk: index for index, scenario in enumerate(scenarios)}
    rows: dict[Any, LearnerRow] = {}
    for attempt in reversed(attempts):  # oldest first, so "last" is the newest
        row = rows.get(attempt.profile_id)
        if row is None:
            row = rows[attempt.profile_id] = LearnerRow(
                profile=attempt.profile, cells=[Cell() for _ in scenarios]
            )
        row.attempt_count += 1
        row.completed_count += attempt.status == AttemptStatus.COMPLETED
        if attempt.score is not None:
            row.best_score = max(row.best_score or 0, attempt.score)
        row.last_status = attempt.status
        row.last_status_label = attempt.get_status_display()
        row.last_attempt_id = attempt.pk
        row.time_taken = _add_time(row.time_taken, attempt.time_taken)
    seen: set = set()
    for chat in chats:
        attempt = by_attempt[chat.attempt_id]
        index = positions.get(chat.scenario_id)
        if index is None:
            continue
        cell = rows[attempt.profile_id].cells[index]
        if chat.status != ChatStatus.PENDING and (chat.attempt_id, index) not in seen:
            seen.add((chat.attempt_id, index))
            cell.attempt_count += 1
        if chat.status != ChatStatus.PENDING or not cell.status:
            cell.status = chat.status
            cell.status_label = chat.get_status_display()
            cell.attempt_id = chat.attempt_id
        if chat.grade_id is not None:
            cell.best_score = max(cell.best_score or 0, chat.grade.score)
        cell.time_taken = _add_time(cell.time_taken, chat.time_taken)
    ordered = sorted(rows.values(), key=lambda row: row.profile.name.lower())
    return CohortTable(
        simulation=simulation,
        scenarios=scenarios,
        rows=ordered,
        attempts=attempts,
        attempt_total=total,
    )


# -- dashboard --------------------------------------------------------------------------------


@dataclass
class CriterionDistribution:
    name: str
    bands: list[int]  # attempts per SCORE_BANDS band
    mean: float | None
    count: int


@dataclass
class CohortFigures:
    cohort_id: Any
    name: str
    started: int = 0
    completed: int = 0
    passed: int = 0
    scores: list[int] = field(default_factory=list)
    times: list[int] = field(default_factory=list)

    @property
    def completion_rate(self) -> float | None:
        return round(self.completed * 100 / self.started, 1) if self.started else None

    @property
    def mean_score(self) -> float | None:
        return round(statistics.fmean(self.scores), 1) if self.scores else None

    @property
    def median_time(self) -> float | None:
        return statistics.median(self.times) if self.times else None


@dataclass
class Week:
    start: date
    completed: int
    mean_score: float | None


@dataclass
class Dashboard:
    attempt_count: int
    funnel: list[tuple[str, int]]
    median_time: float | None
    criteria: list[CriterionDistribution]
    weeks: list[Week]
    cohorts: list[CohortFigures]


def band_of(percent: int) -> int:
    return next(i for i, (low, high) in enumerate(SCORE_BANDS) if low <= percent < high)


def dashboard(*, actor, filters: Filters, none: bool = False) -> Dashboard:
    """The analytics view over the filtered attempts: funnel, per-criterion score distribution,
    median time on task, weekly trend and per-cohort figures, in three queries (`none`: over no
    attempts, for a filter that could not be applied)."""
    selection = filtered_attempts(actor=actor, filters=filters)
    rows = list(
        (selection.none() if none else selection)
        .order_by("-created_at")
        .values(
            "pk",
            "status",
            "score",
            "passed",
            "time_taken",
            "message_count",
            "ended_chat_count",
            "completed_at",
            "cohort_id",
            "cohort__name",
        )[:MAX_ROWS]
    )
    completed = [row for row in rows if row["status"] == AttemptStatus.COMPLETED]
    funnel = [
        ("Started", len(rows)),
        ("Sent a message", sum(1 for row in rows if row["message_count"])),
        ("Ended a conversation", sum(1 for row in rows if row["ended_chat_count"])),
        ("Completed", len(completed)),
        ("Passed", sum(1 for row in completed if row["passed"])),
    ]
    times = [row["time_taken"] for row in completed if row["time_taken"] is not None]
    standards = Completion.objects.filter(
        attempt_id__in=[row["pk"] for row in completed]
    ).values_list("standards", flat=True)
    per_criterion: dict[str, list[int]] = defaultdict(list)
    for entries in standards:
        for entry in entries or []:
            if entry.get("percent") is not None:
                per_criterion[entry.get("name") or "Unnamed"].append(int(entry["percent"]))
    criteria = []
    for name, values in per_criterion.items():
        bands = [0] * len(SCORE_BANDS)
        for value in values:
            bands[band_of(value)] += 1
        criteria.append(
            CriterionDistribution(
                name=name, bands=bands, mean=round(statistics.fmean(values), 1), count=len(values)
            )
        )
    weekly: dict[date, list] = defaultdict(list)
    for row in completed:
        when = timezone.localtime(row["completed_at"], timezone.get_fixed_timezone(0)).date()
        weekly[when - timedelta(days=when.weekday())].append(row["score"])
    weeks = [
        Week(
            start=start,
            completed=len(scores),
            mean_score=round(statistics.fmean(s for s in scores if s is not None), 1)
            if any(s is not None for s in scores)
            else None,
        )
        for start, scores in sorted(weekly.items())
    ]
    cohorts: dict[Any, CohortFigures] = {}
    for row in rows:
        figures = cohorts.setdefault(
            row["cohort_id"],
            CohortFigures(row["cohort_id"], row["cohort__name"] or "No cohort"),
        )
        figures.started += 1
        if row["status"] == AttemptStatus.COMPLETED:
            figures.completed += 1
            figures.passed += bool(row["passed"])
            if row["score"] is not None:
                figures.scores.append(row["score"])
            if row["time_taken"] is not None:
                figures.times.append(row["time_taken"])
    return Dashboard(
        attempt_count=len(rows),
        funnel=funnel,
        median_time=statistics.median(times) if times else None,
        criteria=sorted(criteria, key=lambda c: c.name.lower()),
        weeks=weeks,
        cohorts=sorted(cohorts.values(), key=lambda c: c.name.lower()),
    )


# -- leaderboard ------------------------------------------------------------------------------


@dataclass
class Standing:
    rank: int
    profile_id: Any
    name: str  # the learner's name, or "Learner 3" where names are hidden
    value: float
    attempt_count: int
    is_you: bool = False


def rank_value(scores: list[int], method: str) -> float:
    """`scores` oldest first."""
    if method == LeaderboardMethod.AVERAGE:
        return round(statistics.fmean(scores), 1)
    if method == LeaderboardMethod.FIRST:
        return scores[0]
    if method == LeaderboardMethod.LAST:
        return scores[-1]
    return max(scores)


def leaderboard(*, actor, simulation: Simulation, cohort_id=None) -> list[Standing]:
    """Learners ranked on the simulation's graded (not practice) completed attempts by its
    grading method; ties share a rank. Staff always see names; a learner sees them only where
    the simulation opts in, else anonymous ranks (and their own row marked)."""
    attempts = Attempt.objects.filter(
        organization_id=actor.organization_id,
        simulation=simulation,
        archived=False,
        practice=False,
        status=AttemptStatus.COMPLETED,
        score__isnull=False,
    )
    if actor.is_staff_role:
        attempts = attempt_queryset(actor=actor).filter(pk__in=attempts.values("pk"))
    if cohort_id:
        attempts = attempts.filter(cohort_id=cohort_id)
    scores: dict[Any, list[int]] = defaultdict(list)
    names: dict[Any, str] = {}
    for profile_id, score, display, username in attempts.order_by(
        "completed_at", "created_at"
    ).values_list("profile_id", "score", "profile__display_name", "profile__user__username"):
        scores[profile_id].append(score)
        names[profile_id] = display or username
    values = sorted(
        ((rank_value(s, simulation.leaderboard_method), len(s), pid) for pid, s in scores.items()),
        key=lambda item: (-item[0], names[item[2]].lower()),
    )
    show_names = actor.is_staff_role or simulation.leaderboard_shows_names
    standings, rank, previous = [], 0, None
    for position, (value, count, profile_id) in enumerate(values, start=1):
        if value != previous:
            rank, previous = position, value
        is_you = profile_id == actor.pk
        name = names[profile_id] if show_names or is_you else f"Learner {position}"
        standings.append(Standing(rank, profile_id, name, value, count, is_you))
    return standings


# -- reports ----------------------------------------------------------------------------------


@dataclass
class CriterionTrend:
    name: str
    points: list[int | None]  # one per completed attempt, oldest first
    mean: float | None


@dataclass
class LearnerReport:
    profile: Profile
    attempts: list[Attempt]
    completed: list[Attempt]
    criteria: list[CriterionTrend]
    strengths: list[CriterionTrend]
    gaps: list[CriterionTrend]
    mean_score: float | None
    best_score: int | None
    total_time: int | None


def _criteria(completed: list[Attempt], standards: dict) -> list[CriterionTrend]:
    names: list[str] = []
    by_name: dict[str, dict] = defaultdict(dict)
    for attempt in completed:
        for entry in standards.get(attempt.pk, []):
            name = entry.get("name") or "Unnamed"
            if name not in by_name:
                names.append(name)
            if entry.get("percent") is not None:
                by_name[name][attempt.pk] = int(entry["percent"])
    trends = []
    for name in names:
        points = [by_name[name].get(attempt.pk) for attempt in completed]
        present = [p for p in points if p is not None]
        trends.append(
            CriterionTrend(
                name=name,
                points=points,
                mean=round(statistics.fmean(present), 1) if present else None,
            )
        )
    return trends


STRENGTH_AT = 50  # a criterion is a strength from this mean percent up, a gap below it


def strengths_and_gaps(trends: list[CriterionTrend], count: int = 2):
    """The best criteria averaging at least STRENGTH_AT %, and the weakest below it."""
    scored = sorted((t for t in trends if t.mean is not None), key=lambda t: (-t.mean, t.name))
    strengths = [t for t in scored if t.mean >= STRENGTH_AT][:count]
    gaps = [t for t in reversed(scored) if t.mean < STRENGTH_AT][:count]
    return strengths, gaps


def learner_access(*, actor, profile_id) -> Profile:
    """A learner the actor may report on (system's visible people); else NotFound."""
    from system.selectors import visible_profiles

    try:
        return visible_profiles(actor=actor).select_related("user").get(pk=profile_id)
    except (Profile.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No learner with that id.")


def learner_report(*, actor, profile: Profile, filters: Filters | None = None) -> LearnerReport:
    """A learner's attempt history, criteria over time, strengths and gaps: three queries."""
    attempts = list(
        filtered_attempts(actor=actor, filters=filters or Filters())
        .filter(profile=profile)
        .select_related("simulation", "cohort")
        .order_by("created_at", "id")[:MAX_ROWS]
    )
    completed = [a for a in attempts if a.status == AttemptStatus.COMPLETED]
    standards = dict(
        Completion.objects.filter(attempt_id__in=[a.pk for a in completed]).values_list(
            "attempt_id", "standards"
        )
    )
    trends = _criteria(completed, standards)
    strengths, gaps = strengths_and_gaps(trends)
    scores = [a.score for a in completed if a.score is not None]
    times = [a.time_taken for a in attempts if a.time_taken is not None]
    return LearnerReport(
        profile=profile,
        attempts=attempts,
        completed=completed,
        criteria=trends,
        strengths=strengths,
        gaps=gaps,
        mean_score=round(statistics.fmean(scores), 1) if scores else None,
        best_score=max(scores) if scores else None,
        total_time=sum(times) if times else None,
    )


@dataclass
class MemberFigures:
    profile: Profile
    attempt_count: int = 0
    completed_count: int = 0
    scores: list[int] = field(default_factory=list)
    total_time: int | None = None
    last_at: datetime | None = None

    @property
    def mean_score(self) -> float | None:
        return round(statistics.fmean(self.scores), 1) if self.scores else None

    @property
    def best_score(self) -> int | None:
        return max(self.scores) if self.scores else None

    @property
    def last_score(self) -> int | None:
        return self.scores[-1] if self.scores else None


@dataclass
class CohortReport:
    cohort: Cohort
    members: list[MemberFigures]
    criteria: list[CriterionTrend]  # points unused: one mean per criterion
    strengths: list[CriterionTrend]
    gaps: list[CriterionTrend]
    dashboard: Dashboard


def cohort_report(*, actor, cohort: Cohort, filters: Filters | None = None) -> CohortReport:
    """Every member's figures, the cohort's criteria means, strengths, gaps and trend."""
    filters = filters or Filters()
    filters.cohort_id = cohort.pk
    members = {
        profile.pk: MemberFigures(profile=profile)
        for profile in cohort.members.select_related("user").order_by("display_name")
    }
    attempts = list(
        filtered_attempts(actor=actor, filters=filters)
        .select_related("profile__user")
        .order_by("created_at", "id")[:MAX_ROWS]
    )
    completed = [a for a in attempts if a.status == AttemptStatus.COMPLETED]
    for attempt in attempts:
        figures = members.setdefault(attempt.profile_id, MemberFigures(profile=attempt.profile))
        figures.attempt_count += 1
        figures.last_at = attempt.created_at
        figures.total_time = _add_time(figures.total_time, attempt.time_taken)
        if attempt.status == AttemptStatus.COMPLETED:
            figures.completed_count += 1
            if attempt.score is not None:
                figures.scores.append(attempt.score)
    standards = dict(
        Completion.objects.filter(attempt_id__in=[a.pk for a in completed]).values_list(
            "attempt_id", "standards"
        )
    )
    trends = _criteria(completed, standards)
    strengths, gaps = strengths_and_gaps(trends)
    return CohortReport(
        cohort=cohort,
        members=sorted(members.values(), key=lambda m: m.profile.name.lower()),
        criteria=trends,
        strengths=strengths,
        gaps=gaps,
        dashboard=dashboard(actor=actor, filters=filters),
    )
