"""Reads of the books, shared by the system API, the staff pages and the admin (so their figures agree)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import BigIntegerField, Count, DecimalField, Max, Prefetch, Q, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from glow.accounts.models import Profile
from glow.core.errors import ApplicationError, NotFound
from glow.core.registry import registry
from glow.core.selectors import Page, page_of
from system.models import Event, Group, Run, Session, TimelineEvent

# A session's timeline merges audit rows with run starts and ends; past this many items the
# newest are kept, so one enormous session cannot produce an unbounded page.
MAX_TIMELINE_ITEMS = 1000
# The activity page and op summarise at most this many days and list at most this many people.
MAX_ACTIVITY_DAYS = 366
DEFAULT_ACTIVITY_DAYS = 30
MAX_ACTIVITY_PROFILES = 200
ZERO = Decimal("0")
MICRO_DOLLAR = Decimal("0.000001")
COST_FIELD = DecimalField(max_digits=20, decimal_places=6)


# -- scoping ------------------------------------------------------------------------------------


def visible_profiles(*, actor) -> QuerySet:
    """Profiles whose books this actor may read: admins the organization, instructors the
    people of their departments (and themselves), learners only themselves."""
    profiles = Profile.objects.filter(organization_id=actor.organization_id)
    if actor.is_admin:
        return profiles
    if actor.is_instructor:
        return profiles.filter(
            Q(pk=actor.pk)
            | Q(pk__in=Profile.objects.filter(departments__in=actor.department_ids()))
        )
    return profiles.filter(pk=actor.pk)


def _scoped(queryset: QuerySet, actor) -> QuerySet:
    queryset = queryset.filter(organization_id=actor.organization_id)
    if actor.is_admin:
        return queryset
    if actor.is_learner:
        return queryset.filter(profile_id=actor.pk)
    return queryset.filter(profile_id__in=visible_profiles(actor=actor).values("pk"))


def session_queryset(*, actor) -> QuerySet:
    return _scoped(Session.objects.all(), actor)


def group_queryset(*, actor) -> QuerySet:
    return _scoped(Group.objects.all(), actor)


def run_queryset(*, actor) -> QuerySet:
    return _scoped(Run.objects.all(), actor)


def sessions_to_refresh(*, actor, session_id: Any = None) -> QuerySet:
    """The sessions a refresh recomputes: the one named (404 if the actor may not see it), or
    every session the actor sees."""
    sessions = session_queryset(actor=actor)
    if session_id:
        sessions = sessions.filter(pk=session_access(actor=actor, session_id=session_id).pk)
    return sessions


def session_access(*, actor, session_id: Any) -> Session:
    """One session, or NotFound: unknown, another organization's and out of scope look alike."""
    try:
        return session_queryset(actor=actor).select_related("profile__user").get(pk=session_id)
    except (Session.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No session with that id.")


def group_access(*, actor, group_id: Any) -> Group:
    try:
        return (
            group_queryset(actor=actor).select_related("profile__user", "session").get(pk=group_id)
        )
    except (Group.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFound("No group with that id.")


# -- dates --------------------------------------------------------------------------------------


def day_start(value: date | datetime) -> datetime:
    """A datetime as given; a date as the start of that day (UTC, the books' time zone)."""
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)
    return datetime.combine(value, time.min, tzinfo=UTC)


def day_end(value: date | datetime) -> datetime:
    """Exclusive end: a datetime as given; a date includes that whole day."""
    if isinstance(value, datetime):
        return day_start(value)
    return day_start(value) + timedelta(days=1)


# -- sessions -----------------------------------------------------------------------------------


@dataclass
class SessionPage:
    rows: list[Session]
    total_count: int
    page: Page


def session_list(*, actor, params: dict) -> SessionPage:
    """A page of sessions with their counters: two queries whatever the page size."""
    page = page_of(params)
    sessions = session_queryset(actor=actor)
    if params.get("profile_ids"):
        sessions = sessions.filter(profile_id__in=params["profile_ids"])
    if params.get("start_date"):
        sessions = sessions.filter(created_at__gte=day_start(params["start_date"]))
    if params.get("end_date"):
        sessions = sessions.filter(created_at__lt=day_end(params["end_date"]))
    if params.get("active") is not None:
        sessions = sessions.filter(active=params["active"])
    total = sessions.count()
    ordering = ("created_at", "id") if params.get("sort_order") == "asc" else ("-created_at", "-id")
    rows = list(
        sessions.select_related("profile__user").order_by(*ordering)[
            page.offset : page.offset + page.size
        ]
    )
    return SessionPage(rows=rows, total_count=total, page=page)


@dataclass(frozen=True)
class TimelineItem:
    event_type: str
    entity_id: str
    entity_name: str
    created_at: datetime
    extra_1: str = ""
    extra_2: str = ""
    # Set on the items made from runs, so pages can link them to their group.
    run_group_id: str | None = None


@dataclass
class SessionDetail:
    session: Session
    groups: list[Group]
    timeline: list[TimelineItem]


def _run_items(run: Run) -> list[TimelineItem]:
    name = f"{run.kind} · {run.provider_model or run.provider or 'model'}"
    items = []
    group_id = str(run.group_id)
    if run.started_at:
        items.append(
            TimelineItem("run.started", str(run.pk), name, run.started_at, group_id, "", group_id)
        )
    if run.finished_at:
        items.append(
            TimelineItem(
                f"run.{run.status}",
                str(run.pk),
                name,
                run.finished_at,
                group_id,
                f"{run.total_tokens} tokens",
                group_id,
            )
        )
    return items


def session_timeline(
    *, session: Session, event_types: list[str] | None = None
) -> list[TimelineItem]:
    """Audit rows of the session and the starts and ends of its runs, oldest first; with
    `event_types`, only items of those types (run items are "run.started", "run.<status>")."""
    rows = TimelineEvent.objects.filter(session=session)
    if event_types is not None:
        rows = rows.filter(event_type__in=event_types)
    audit = [
        TimelineItem(
            row.event_type,
            row.entity_id,
            row.entity_name,
            row.created_at,
            row.extra_1,
            row.extra_2,
        )
        for row in rows.order_by("-created_at", "-id")[:MAX_TIMELINE_ITEMS]
    ]
    run_items = []
    if event_types is None or any(kind.startswith("run.") for kind in event_types):
        runs = (
            Run.objects.filter(session=session)
            .only(
                "id",
                "group_id",
                "kind",
                "provider",
                "provider_model",
                "status",
                "started_at",
                "finished_at",
                "total_tokens",
            )
            .order_by("-created_at")[:MAX_TIMELINE_ITEMS]
        )
        run_items = [item for run in runs for item in _run_items(run)]
        if event_types is not None:
            run_items = [item for item in run_items if item.event_type in event_types]
    items = audit + run_items
    items.sort(key=lambda item: item.created_at)
    return items[-MAX_TIMELINE_ITEMS:]


def session_event_types(*, session: Session) -> list[str]:
    """The event types the session's timeline holds, for a filter's options: three queries."""
    kinds = set(
        TimelineEvent.objects.filter(session=session)
        .order_by()
        .values_list("event_type", flat=True)
        .distinct()
    )
    runs = Run.objects.filter(session=session).order_by()
    if runs.filter(started_at__isnull=False).exists():
        kinds.add("run.started")
    finished = runs.filter(finished_at__isnull=False).values_list("status", flat=True).distinct()
    kinds.update(f"run.{status}" for status in finished)
    return sorted(kinds)


def session_detail(
    *,
    actor,
    session_id: Any,
    event_types: list[str] | None = None,
    current: Session | None = None,
) -> SessionDetail:
    """One session's groups (with their counters) and timeline: four queries. Without a
    session_id, the `current` one (the session the request is booked in)."""
    if session_id is None and current is not None:
        session_id = current.pk
    session = session_access(actor=actor, session_id=session_id)
    groups = list(Group.objects.filter(session=session).order_by("created_at", "id"))
    timeline = session_timeline(session=session, event_types=event_types)
    return SessionDetail(session=session, groups=groups, timeline=timeline)


# -- groups -------------------------------------------------------------------------------------


def group_runs(*, group: Group, include_detail: bool = False) -> list[Run]:
    """The group's runs, oldest first, with their model; with detail, their events too."""
    runs = Run.objects.filter(group=group).select_related("model").order_by("created_at", "id")
    if include_detail:
        runs = runs.prefetch_related(
            Prefetch("events", queryset=Event.objects.order_by("seq"), to_attr="ordered_events")
        )
    else:
        runs = runs.defer("messages", "output", "params")
    return list(runs)


# -- activity -----------------------------------------------------------------------------------


@dataclass
class ActivityRow:
    profile_id: Any
    profile_name: str
    session_count: int = 0
    run_count: int = 0
    total_tokens: int = 0
    total_cost: Decimal = ZERO
    last_seen_at: datetime | None = None


@dataclass
class ActivityDay:
    day: date
    session_count: int = 0
    run_count: int = 0
    total_tokens: int = 0
    total_cost: Decimal = ZERO


@dataclass
class Activity:
    start: datetime
    end: datetime
    session_count: int
    run_count: int
    total_tokens: int
    total_cost: Decimal
    counts: dict[str, int]
    profiles: list[ActivityRow]
    profile_count: int
    days: list[ActivityDay] = field(default_factory=list)

    @property
    def attempt_count(self) -> int:
        return self.counts.get("attempts", 0)


def activity_window(
    *, start_date: date | datetime | None, end_date: date | datetime | None
) -> tuple[datetime, datetime]:
    """[start, end) of an activity summary: by default the last 30 days, today included. A longer
    range than MAX_ACTIVITY_DAYS summarises its last MAX_ACTIVITY_DAYS days (the answer's
    start_date says so): no request schema can bound the distance between two dates."""
    end = day_end(end_date) if end_date else day_end(timezone.now().date())
    start = day_start(start_date) if start_date else end - timedelta(days=DEFAULT_ACTIVITY_DAYS)
    if start >= end:
        raise ApplicationError(
            "start_date must be before end_date.", fields={"start_date": ["After end_date."]}
        )
    return max(start, end - timedelta(days=MAX_ACTIVITY_DAYS)), end


def money(value) -> Decimal:
    """Dollars at the books' precision (SQLite sums decimals with trailing noise digits)."""
    return Decimal(value or 0).quantize(MICRO_DOLLAR)


def _sums() -> dict:
    return {
        "session_count": Count("pk"),
        "run_count": Coalesce(Sum("run_count"), 0, output_field=BigIntegerField()),
        "total_tokens": Coalesce(Sum("total_tokens"), 0, output_field=BigIntegerField()),
        "total_cost": Coalesce(Sum("total_cost"), ZERO, output_field=COST_FIELD),
    }


def activity_summary(
    *,
    actor,
    start_date: date | datetime | None = None,
    end_date: date | datetime | None = None,
    profile_ids: list | None = None,
) -> Activity:
    """Totals, per-person and per-day figures of the sessions started in the window.

    Read from the counters each session keeps, in three grouped queries, plus one per
    registered `activity_counts` hook (attempts and tests contribute their counts).
    """
    start, end = activity_window(start_date=start_date, end_date=end_date)
    sessions = session_queryset(actor=actor).filter(created_at__gte=start, created_at__lt=end)
    profiles = visible_profiles(actor=actor)
    if profile_ids:
        sessions = sessions.filter(profile_id__in=profile_ids)
        profiles = profiles.filter(pk__in=profile_ids)
    totals = sessions.order_by().aggregate(**_sums())
    by_profile = (
        sessions.order_by()
        .values("profile_id")
        .annotate(**_sums(), last_seen_at=Max("last_seen_at"))
        .order_by("-total_cost", "-total_tokens", "profile_id")
    )
    rows = list(by_profile[:MAX_ACTIVITY_PROFILES])
    names = {
        profile.pk: profile.name
        for profile in Profile.objects.select_related("user").filter(
            pk__in=[row["profile_id"] for row in rows]
        )
    }
    people = [
        ActivityRow(
            profile_id=row["profile_id"],
            profile_name=names.get(row["profile_id"], ""),
            session_count=row["session_count"],
            run_count=row["run_count"],
            total_tokens=row["total_tokens"],
            total_cost=money(row["total_cost"]),
            last_seen_at=row["last_seen_at"],
        )
        for row in rows
    ]
    per_day = {
        row["day"]: row
        for row in sessions.order_by()
        .annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("day")
        .annotate(**_sums())
    }
    days = []
    current = start.date()
    while current < end.date() or (current == end.date() and end.time() != time.min):
        row = per_day.get(current, {})
        days.append(
            ActivityDay(
                day=current,
                session_count=row.get("session_count", 0),
                run_count=row.get("run_count", 0),
                total_tokens=row.get("total_tokens", 0),
                total_cost=money(row.get("total_cost", ZERO)),
            )
        )
        current += timedelta(days=1)
    counts: dict[str, int] = {}
    for contribution in registry.run_hooks(
        "activity_counts", actor=actor, profiles=profiles.values("pk"), start=start, end=end
    ):
        for name, count in (contribution or {}).items():
            counts[name] = counts.get(name, 0) + int(count)
    counts.setdefault("attempts", 0)
    return Activity(
        start=start,
        end=end,
        session_count=totals["session_count"],
        run_count=totals["run_count"],
        total_tokens=totals["total_tokens"],
        total_cost=money(totals["total_cost"]),
        counts=counts,
        profiles=people,
        profile_count=by_profile.count() if len(rows) == MAX_ACTIVITY_PROFILES else len(rows),
        days=days,
    )


# -- exports ------------------------------------------------------------------------------------

EXPORT_EVENT = "session.exported"


def session_export_data(*, session: Session) -> tuple[list[Group], QuerySet, list[TimelineItem]]:
    """What a session export holds: groups, runs (iterated lazily, with events) and timeline."""
    groups = list(Group.objects.filter(session=session).order_by("created_at", "id"))
    runs = (
        Run.objects.filter(session=session)
        .select_related("model")
        .prefetch_related(
            Prefetch("events", queryset=Event.objects.order_by("seq"), to_attr="ordered_events")
        )
        .order_by("created_at", "id")
    )
    return groups, runs, session_timeline(session=session)


# -- generation ---------------------------------------------------------------------------------


def generation_groups(*, actor, family: str, params: dict) -> tuple[list[Group], int]:
    """`family`'s generation groups, newest first: the actor's own, or the organization's for
    an admin; `search` matches the group name, date_from/date_to bound created_at (inclusive).
    Two queries whatever the page size."""
    groups = Group.objects.filter(organization_id=actor.organization_id, family=family)
    if not actor.is_admin:
        groups = groups.filter(profile_id=actor.pk)
    if (params.get("search") or "").strip():
        groups = groups.filter(name__icontains=params["search"].strip())
    if params.get("date_from"):
        groups = groups.filter(created_at__gte=params["date_from"])
    if params.get("date_to"):
        groups = groups.filter(created_at__lte=params["date_to"])
    size = params.get("page_limit") or params.get("page_size") or 25
    offset = params.get("page_offset") or 0
    rows = list(groups.order_by("-created_at", "-pk")[offset : offset + size])
    return rows, groups.count()
