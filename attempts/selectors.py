"""Reads of attempts: role scoping, the get bundle, transcripts, rollups, search with facets."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, F, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from attempts import calibration
from attempts.models import (
    Attempt,
    AttemptCount,
    AttemptStatus,
    Chat,
    ChatStatus,
    Completion,
    Message,
    Role,
    attach_persona_titles,
)
from glow.catalog.models import Rubric
from glow.core import selectors as core
from glow.core.errors import ApplicationError, NotFound
from glow.core.registry import Facet, registry

# A facet is a dropdown: past this many options it stops helping, and counting them all costs.
FACET_LIMIT = 100


def family():
    return registry.get("attempt")


def attempt_scope(queryset: QuerySet, actor) -> QuerySet:
    """Learners see their own attempts; instructors also their departments' and cohorts'."""
    if actor.is_admin:
        return queryset
    own = Q(profile_id=actor.pk)
    if actor.is_instructor:
        return queryset.filter(
            own | Q(department_id__in=actor.department_ids()) | Q(cohort_id__in=actor.cohort_ids())
        )
    return queryset.filter(own)


def attempt_queryset(*, actor) -> QuerySet:
    return core.artifact_queryset(actor=actor, family=family())


def attempt_access(*, actor, pk, for_update: bool = False) -> Attempt:
    return core.artifact_access(actor=actor, family=family(), pk=pk, for_update=for_update)


def attempt_for_get(*, actor, pk) -> tuple[Attempt | None, bool]:
    """The attempt if visible, else None, and whether it exists in the actor's organization.

    Inside the organization the answer is honest (seed 001's attempt_exists / access_denied);
    another organization's attempt reads exactly like a missing one.
    """
    attempt = (
        attempt_queryset(actor=actor)
        .select_related("simulation", "profile__user", "department", "cohort", "completion")
        .filter(pk=pk)
        .first()
    )
    if attempt is not None:
        return attempt, True
    exists = Attempt.objects.filter(pk=pk, organization_id=actor.organization_id).exists()
    return None, exists


def chats_of(attempt: Attempt) -> list[Chat]:
    return list(
        Chat.objects.filter(attempt=attempt)
        .select_related("scenario__persona", "grade__based_on")
        .order_by("position")
    )


def chat_ids(attempt: Attempt) -> list:
    return list(
        Chat.objects.filter(attempt=attempt).order_by("position").values_list("pk", flat=True)
    )


def attempt_start_summary(attempt: Attempt) -> dict:
    """AttemptStartResponse: the chats in order, the current one, the entry and the group."""
    ids = chat_ids(attempt)
    return {
        "attempt_id": attempt.pk,
        "chat_entry_id": attempt.entry_id,
        "attempt_chat_id": ids[attempt.current_chat_index] if ids else None,
        "chat_ids": ids,
        "group_id": attempt.group_id,
    }


def gradable_chat_ids(*, actor, attempt_id) -> list:
    """Ended chats with something to grade, of an attempt the actor may see."""
    attempt = attempt_access(actor=actor, pk=attempt_id)
    return list(
        Chat.objects.filter(attempt=attempt, status=ChatStatus.ENDED, message_count__gt=0)
        .order_by("position")
        .values_list("pk", flat=True)
    )


def chat_transcript(chat: Chat) -> list[Message]:
    """The chat's current branch, oldest first (the branch ending at its tip)."""
    return branch_to(chat, chat.last_message_id)


def branch_to(chat: Chat, tip_id) -> list[Message]:
    """From `tip_id` back through each parent, oldest first: one query for the chat.

    A retry (parent_message_id) starts a new branch; the messages it replaced stay stored.
    """
    if tip_id is None:
        return []
    messages = {message.pk: message for message in Message.objects.filter(chat=chat)}
    branch, cursor = [], messages.get(tip_id)
    while cursor is not None:
        branch.append(cursor)
        cursor = messages.get(cursor.parent_id)
    branch.reverse()
    return branch


# -- timer and rollup -------------------------------------------------------------------------


@dataclass(frozen=True)
class Timer:
    time_limit_minutes: int | None
    started_at: datetime
    expires_at: datetime | None
    remaining_seconds: int | None
    expired: bool


def timer_of(attempt: Attempt, *, now: datetime | None = None) -> Timer:
    now = now or timezone.now()
    limit = attempt.simulation.time_limit_minutes
    if not limit:
        return Timer(None, attempt.started_at, None, None, False)
    expires = attempt.started_at + timedelta(minutes=limit)
    remaining = max(0, int((expires - now).total_seconds()))
    return Timer(limit, attempt.started_at, expires, remaining, now >= expires)


@dataclass
class Rollup:
    score: int | None = None
    points: int = 0
    total_points: int = 0
    passed: bool = False
    time_taken: int | None = None
    graded_chat_count: int = 0
    groups: list[dict] = field(default_factory=list)
    standards: list[dict] = field(default_factory=list)


def half_up(value: float) -> int:
    """Rounds .5 up, as SQL ROUND does (Python's round() would go to even)."""
    return math.floor(value + 0.5)


def percent(points: int, total: int) -> int | None:
    return half_up(points * 100 / total) if total else None


def weighted_score(grades) -> int | None:
    """Chat percents weighted by their rubric's points (an agent's percent has no points of its own)."""
    if not grades:
        return None
    weights = [grade.total_points or 1 for grade in grades]
    return half_up(sum(g.score * w for g, w in zip(grades, weights, strict=True)) / sum(weights))


def rollup_of(*, chats: list[Chat], structure: list[dict], pass_threshold: int) -> Rollup:
    """The rubric summed across chats: per standard, per standard group, and in total.

    `chats` must carry their current grade (select_related("grade")).
    """
    grades = [chat.grade for chat in chats if chat.grade_id is not None]
    rollup = Rollup(graded_chat_count=len(grades))
    rollup.points = sum(grade.points for grade in grades)
    rollup.total_points = sum(grade.total_points for grade in grades)
    rollup.score = weighted_score(grades)
    rollup.passed = rollup.score is not None and rollup.score >= pass_threshold
    durations = [chat.time_taken for chat in chats if chat.time_taken is not None]
    rollup.time_taken = sum(durations) if durations else None

    by_standard: dict[str, dict] = {}
    for grade in grades:
        for entry in grade.standard_scores or []:
            key = str(entry.get("standard_id", ""))
            row = by_standard.setdefault(
                key, {"group_id": str(entry.get("group_id", "")), "score": 0, "total_points": 0}
            )
            row["score"] += int(entry.get("score") or 0)
            row["total_points"] += int(entry.get("points") or 0)
    names = {s["id"]: s["name"] for group in structure for s in group["standards"]}
    rollup.standards = [
        {
            "standard_id": key,
            "name": names.get(key, ""),
            **row,
            "percent": percent(row["score"], row["total_points"]),
        }
        for key, row in by_standard.items()
    ]
    for group in structure:
        rows = [row for row in rollup.standards if row["group_id"] == group["id"]]
        score = sum(row["score"] for row in rows)
        total = sum(row["total_points"] for row in rows)
        rollup.groups.append(
            {
                "group_id": group["id"],
                "name": group["name"],
                "score": score,
                "total_points": total,
                "percent": percent(score, total),
            }
        )
    return rollup


def rubric_for(attempt: Attempt) -> Rubric | None:
    if attempt.simulation.rubric_id is None:
        return None
    return Rubric.objects.for_api().filter(pk=attempt.simulation.rubric_id).first()


def structure_of(rubric: Rubric | None) -> list[dict]:
    return rubric.structure() if rubric is not None else []


def previous_attempt_ids(attempt: Attempt, *, limit: int = 10) -> list:
    """The same learner's earlier attempts at the same simulation (use-previous copies from these)."""
    return list(
        Attempt.objects.filter(
            organization_id=attempt.organization_id,
            profile_id=attempt.profile_id,
            simulation_id=attempt.simulation_id,
            started_at__lt=attempt.started_at,
        )
        .exclude(pk=attempt.pk)
        .order_by("-started_at")
        .values_list("pk", flat=True)[:limit]
    )


def completion_of(attempt: Attempt) -> Completion | None:
    try:
        return attempt.completion
    except Completion.DoesNotExist:
        return None


# -- the get bundle ---------------------------------------------------------------------------


def denied_bundle(*, actor, exists: bool) -> dict:
    return {
        "actor_name": actor.name,
        "attempt_exists": exists,
        "access_denied": exists,
        "has_messages": False,
    }


def attempt_bundle(*, actor, attempt: Attempt, chat_id=None, now=None) -> dict:
    """Seed 001's canonical attempt bundle, plus the chosen chat and its messages (DESIGN 3)."""
    chats = chats_of(attempt)
    current = chats[attempt.current_chat_index] if attempt.current_chat_index < len(chats) else None
    chat = current
    if chat_id is not None:
        chat = next((c for c in chats if c.pk == chat_id), None)
        if chat is None:
            raise NotFound(
                "No chat with that id in this attempt.", fields={"chat_id": ["Not found."]}
            )
    rubric = rubric_for(attempt)
    structure = structure_of(rubric)
    timer = timer_of(attempt, now=now)
    completion = completion_of(attempt)
    if completion is not None:
        groups, graded = completion.groups, completion.graded_chat_count
    else:
        rollup = rollup_of(
            chats=chats, structure=structure, pass_threshold=attempt.simulation.pass_threshold
        )
        groups, graded = rollup.groups, rollup.graded_chat_count
    gate = calibration.gate_of(attempt, chats)
    score, passed = attempt.score, attempt.passed
    if gate.awaiting_review and not actor.is_staff_role:
        # A learner of a gated simulation sees "awaiting review" where the judge is not trusted.
        score = passed = None
        groups = _groups_masked(groups, structure, gate)
        attempt = copy.copy(attempt)
        attempt.score = attempt.passed = None
        for each in chats:
            if each.grade_id is not None:
                each.grade = calibration.masked_grade(each.grade, gate.hidden.get(each.pk, set()))
    else:
        # Staff see every number, and which chats a learner is waiting on.
        for each in chats:
            if each.grade_id is not None:
                each.grade.awaiting_review = gate.chat_awaiting(each.pk)
    messages = chat_transcript(chat) if chat is not None else []
    comments = calibration.turn_comments(attempt, staff=actor.is_staff_role)
    for message in messages:
        message.visible_comments = comments.get(message.pk, [])
    own = attempt.profile_id == actor.pk
    active = attempt.is_active
    open_chat = current is not None and current.status == ChatStatus.ACTIVE
    has_next = attempt.infinite_mode or any(c.status == ChatStatus.PENDING for c in chats)
    simulation = attempt.simulation
    return {
        "actor_name": actor.name,
        "attempt_exists": True,
        "access_denied": False,
        "attempt": attempt,
        "simulation": {
            "id": simulation.pk,
            "title": simulation.title,
            "description": simulation.description,
            "time_limit_minutes": simulation.time_limit_minutes,
            "pass_threshold": simulation.pass_threshold,
            "scenario_count": len({c.scenario_id for c in chats}),
        },
        "timer": asdict(timer),
        "aggregated_results": {
            "score": score,
            "passed": passed,
            "time_taken": attempt.time_taken,
            "graded_chat_count": graded,
            "chat_count": len(chats),
            "completion_id": completion.pk if completion else None,
            "groups": groups,
            "awaiting_review": gate.awaiting_review,
        },
        "review": {
            "calibration_required": gate.required,
            "awaiting_review": gate.awaiting_review,
            "awaiting_chat_ids": [pk for pk, hidden in gate.hidden.items() if hidden],
            "uncalibrated_standard_ids": sorted(gate.uncalibrated) if actor.is_staff_role else [],
        },
        "current_chat_index": attempt.current_chat_index,
        "expected_chat_count": attempt.chat_count,
        "is_active": active,
        "is_lobby": active and attempt.message_count == 0,
        "show_results": attempt.status == AttemptStatus.COMPLETED,
        "should_show_controls": own and active and not timer.expired,
        "is_own_attempt": own,
        "current_chat_id": current.pk if current else None,
        "has_messages": attempt.message_count > 0,
        "available_continuation_options": {
            "can_message": own and active and open_chat and not timer.expired,
            "can_next": own
            and active
            and current is not None
            and current.status == ChatStatus.ENDED
            and has_next,
            "can_end": own and active and open_chat,
            "can_end_all": own and active and attempt.ended_chat_count < len(chats),
            "can_complete": active and (own or actor.is_staff_role),
            "previous_attempt_ids": previous_attempt_ids(attempt) if own and active else [],
        },
        "rubric_structure": {
            "rubric_id": rubric.pk if rubric else None,
            "title": rubric.title if rubric else None,
            "total_points": sum(g["total_points"] for g in structure),
            "groups": structure,
        },
        "training_id": attempt.home_id,
        "chat_entry_id": attempt.entry_id,
        "chats": chats,
        "chat": chat,
        "messages": messages,
    }


def _groups_masked(groups: list[dict], structure: list[dict], gate) -> list[dict]:
    """Standard groups with a criterion awaiting review lose their numbers."""
    hidden = set().union(*gate.hidden.values()) if gate.hidden else set()
    holding = {
        group["id"]
        for group in structure
        if any(standard["id"] in hidden for standard in group["standards"])
    }
    return [
        {**group, "score": None, "percent": None, "awaiting_review": True}
        if str(group.get("group_id")) in holding
        else group
        for group in groups
    ]


def turn_comments_for_learner(attempt: Attempt) -> dict:
    """message id -> the comments staff marked for the learner on that turn, oldest first:
    {comment_id, message_id, chat_id, body, visibility, author_name, created_at}."""
    return calibration.turn_comments(attempt, staff=False)


def turn_comments_for_staff(attempt: Attempt) -> dict:
    """message id -> every comment on that turn (learner and staff-only), oldest first."""
    return calibration.turn_comments(attempt, staff=True)


def score_withheld(*, actor, attempt_id, chat_id=None) -> bool:
    """Whether the actor is a learner who may not see this chat's (or attempt's) judge score
    yet: a criterion of a gated simulation awaits review."""
    if actor.is_staff_role:
        return False
    gate = learner_gate(attempt_access(actor=actor, pk=attempt_id))
    return gate.chat_awaiting(chat_id) if chat_id is not None else gate.awaiting_review


def learner_gate(attempt: Attempt, chats: list[Chat] | None = None):
    """The calibration gate of an attempt: `.awaiting_review`, `.chat_awaiting(chat_id)`,
    `.criterion_status(chat_id, entry)` -> "ai" | "reviewed" | "awaiting_review"."""
    return calibration.gate_of(attempt, chats if chats is not None else chats_of(attempt))


# -- search -------------------------------------------------------------------------------------

# Filters the materialised counts can answer; any other filter counts on the attempts themselves.
COUNTED_FILTERS = frozenset(
    {
        "simulation_ids",
        "department_ids",
        "cohort_ids",
        "profile_ids",
        "profile_ids_filter",
        "target_profile_id",
        "practice",
        "simulation_search",
        "department_search",
        "cohort_search",
        "learner_search",
    }
)


@dataclass(frozen=True)
class FacetSource:
    """Where a facet's labels live: the related model behind the id field, and its label field."""

    relation: str
    label_field: str

    @classmethod
    def of(cls, facet: Facet) -> FacetSource:
        relation, _, label_field = facet.label.partition("__")
        return cls(relation, label_field)

    @property
    def model(self):
        return Attempt._meta.get_field(self.relation).related_model

    def label(self):
        if self.relation == "profile":  # as Profile.name: the display name, else the username
            return Coalesce(NullIf(F("display_name"), Value("")), F("user__username"))
        return F(self.label_field)


@dataclass(frozen=True)
class Counting:
    """What totals and facets count over: AttemptCount rows (summing `count`) or attempts."""

    rows: QuerySet
    number: Sum | Count

    def total(self) -> int:
        return self.rows.aggregate(total=self.number)["total"] or 0

    def facet(self, facet: Facet, params: dict) -> list[dict]:
        counts = (
            self.rows.order_by()
            .exclude(**{f"{facet.field}__isnull": True})
            .values(facet.field)
            .annotate(count=self.number)
            .order_by("-count", facet.field)
        )
        needle = (params.get(facet.search_param) or "").strip() if facet.search_param else ""
        if needle:
            source = FacetSource.of(facet)
            matching = source.model.objects.filter(**{f"{source.label_field}__icontains": needle})
            counts = counts.filter(**{f"{facet.field}__in": matching.values("pk")})
        return [{"id": row[facet.field], "count": row["count"]} for row in counts[:FACET_LIMIT]]

    def groups(self, facet: Facet) -> list[dict]:
        """Every group of the facet's field, the rows without a value too: their sum is the total."""
        counts = self.rows.order_by().values(facet.field).annotate(count=self.number)
        return [{"id": row[facet.field], "count": row["count"]} for row in counts]

    def every_facet(self, facets: list[Facet], whole: Facet) -> list[list[dict]]:
        """For each of `facets`, over these same rows, what facet() answers (without a label
        search), but groups() for `whole`: one statement, the rows' query built once. The same
        plan as a query per facet (each an index-only scan of its counts), without three more
        querysets to build and three more round trips."""
        counted = F("count") if isinstance(self.number, Sum) else Value(1)
        columns = {f"c{index}": F(facet.field) for index, facet in enumerate(facets)}
        base, params = (
            self.rows.order_by().values(**columns, number=counted).query.sql_with_params()
        )
        parts = []
        for index, facet in enumerate(facets):
            column = f"c{index}"
            grouped = (
                f"SELECT {index} AS facet, {column} AS value, SUM(number) AS count "
                f"FROM ({base}) AS counted"
            )
            if facet is whole:
                grouped += f" GROUP BY {column}"
            else:
                grouped += (
                    f" WHERE {column} IS NOT NULL GROUP BY {column}"
                    f" ORDER BY 3 DESC, 2 LIMIT {FACET_LIMIT}"
                )
            parts.append(f"SELECT * FROM ({grouped}) AS facet{index}")
        found: list[list[dict]] = [[] for _ in facets]
        fields = [Attempt._meta.get_field(facet.field) for facet in facets]
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), params * len(facets))
            for index, value, count in cursor.fetchall():
                # to_python: SQLite hands a UUID column back as 32 hex characters.
                found[index].append({"id": fields[index].to_python(value), "count": int(count)})
        return found


def top_options(groups: list[dict]) -> list[dict]:
    """What Counting.facet answers (without a label search), picked from every group."""
    named = sorted(
        (row for row in groups if row["id"] is not None),
        key=lambda row: (-row["count"], str(row["id"])),
    )
    return named[:FACET_LIMIT]


def counting_for(*, actor, params: dict, apply) -> Callable[[str | None], Counting]:
    """counting(without=param): the materialised counts when every active filter is one they hold
    (the same answer at a fraction of the rows), else the attempts themselves."""
    active = {
        name for name in family().filterset.base_filters if params.get(name) not in (None, "", [])
    }
    if active <= COUNTED_FILTERS:
        counted = AttemptCount.objects.filter(organization_id=actor.organization_id)
        counted = core.archived_state(params, attempt_scope(counted, actor))
        return lambda without=None: Counting(apply(counted, without), Sum("count"))
    attempts = core.archived_state(params, attempt_queryset(actor=actor))
    return lambda without=None: Counting(apply(attempts, without), Count("pk"))


def facet_labels(wanted: dict[str, tuple[Facet, list]]) -> dict[tuple[str, str], str]:
    """Every facet's option labels in one query (a UNION over the related tables), written by
    hand: the ORM's four annotated querysets and their union took longer to build than to run."""
    quote = connection.ops.quote_name
    parts, params, pks = [], [], {}
    for name, (facet, ids) in wanted.items():
        if not ids:
            continue
        source = FacetSource.of(facet)
        meta = source.model._meta
        table, pk = quote(meta.db_table), meta.pk
        pks[name] = pk
        if source.relation == "profile":  # as Profile.name: the display name, else the username
            users = get_user_model()._meta
            label = f"COALESCE(NULLIF(t.{quote('display_name')}, ''), u.{quote('username')})"
            joined = (
                f"{table} t JOIN {quote(users.db_table)} u "
                f"ON u.{quote(users.pk.column)} = t.{quote(meta.get_field('user').column)}"
            )
        else:
            label = f"t.{quote(meta.get_field(source.label_field).column)}"
            joined = f"{table} t"
        slots = ", ".join(["%s"] * len(ids))
        parts.append(
            f"SELECT %s, t.{quote(pk.column)}, CAST({label} AS TEXT) FROM {joined} "
            f"WHERE t.{quote(pk.column)} IN ({slots})"
        )
        params += [name, *(pk.get_db_prep_value(value, connection) for value in ids)]
    if not parts:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join(parts), params)
        rows = cursor.fetchall()
    # to_python: SQLite hands a UUID column back as 32 hex characters.
    return {(kind, str(pks[kind].to_python(pk))): text or "" for kind, pk, text in rows}


def filter_applier(params: dict) -> Callable[..., QuerySet]:
    """Validate the search filters once; answer apply(queryset, without=param) for the rows and
    for each facet (a facet's counts leave out its own filter). Invalid values answer 400."""
    data = {key: value for key, value in params.items() if value is not None}
    if all(
        data.get(name) in ("", []) or name not in data for name in family().filterset.base_filters
    ):
        # No filter given (the history page's first view): nothing to validate, and building a
        # FilterSet (a deep copy of every filter and a form) is a tenth of the op's time.
        return lambda queryset, without=None: queryset
    filterset = family().filterset(data=data, queryset=Attempt.objects.none())
    if not filterset.is_valid():
        errors = {
            name: [str(message) for message in messages]
            for name, messages in filterset.errors.items()
        }
        raise ApplicationError(f"Invalid filter: {', '.join(errors)}.", fields=errors)
    cleaned = filterset.form.cleaned_data

    def apply(queryset: QuerySet, without: str | None = None) -> QuerySet:
        for name, value in cleaned.items():
            if name != without:
                queryset = filterset.filters[name].filter(queryset, value)
        return queryset

    return apply


def _narrowed(facet: Facet, params: dict) -> bool:
    """Whether the facet's own filter or its label search is in use."""
    searched = facet.search_param and (params.get(facet.search_param) or "").strip()
    return params.get(facet.param) not in (None, "", []) or bool(searched)


def attempt_search(*, actor, params: dict) -> core.SearchResult:
    """History rows, total and facets in a fixed number of queries, whatever the page size:
    the page, its personas, one per facet (plus the total unless the simulation facet gives
    it), and one for every facet's labels."""
    page = core.page_of(params)
    apply = filter_applier(params)
    rows = attach_persona_titles(
        list(
            apply(core.archived_state(params, attempt_queryset(actor=actor)))
            .for_api()
            .order_by("-created_at", "-id")[page.offset : page.offset + page.size]
        )
    )
    if not actor.is_staff_role:
        # A learner's own rows: a score the calibration gate withholds reads as not yet given.
        awaiting = calibration.awaiting_attempt_ids(rows)
        for row in rows:
            if row.pk in awaiting:
                row.score = row.passed = None
    counting = counting_for(actor=actor, params=params, apply=apply)
    options, total = {}, None
    searched = family().facets
    if not any(_narrowed(facet, params) for facet in searched):
        # No facet leaves a filter of its own out: they all count the same rows, in one
        # statement. Simulations are few and every row has one: their groups give the total.
        whole = next(facet for facet in searched if facet.name == "simulation")
        for facet, found in zip(searched, counting().every_facet(searched, whole), strict=True):
            if facet is whole:
                total = sum(row["count"] for row in found)
                found = top_options(found)
            options[facet.name] = (facet, found)
    for facet in searched if not options else []:
        if total is None and facet.name == "simulation" and not _narrowed(facet, params):
            # Unfiltered, the simulation facet groups exactly the matching rows, and simulations
            # are few: its groups give the total as well, one scan fewer.
            groups = counting().groups(facet)
            total = sum(row["count"] for row in groups)
            options[facet.name] = (facet, top_options(groups))
        else:
            options[facet.name] = (facet, counting(facet.param).facet(facet, params))
    if total is None:
        total = counting().total()
    labels = facet_labels(
        {name: (facet, [row["id"] for row in found]) for name, (facet, found) in options.items()}
    )
    facets = {}
    for name, (facet, found) in options.items():
        section = [
            {
                "id": str(row["id"]),
                "label": labels.get((name, str(row["id"])), ""),
                "count": row["count"],
            }
            for row in found
        ]
        section.sort(key=lambda option: (option["label"].lower(), option["id"]))
        selected = [str(value) for value in (params.get(facet.param) or [])]
        facets[name] = {"options": section, "selected": selected}
    return core.SearchResult(rows=rows, total_count=total, facets=facets, page=page)


def export_selection(*, actor, view: str, params: dict, attempt_id=None) -> QuerySet:
    """The attempts an export covers: one attempt, one learner's record, or a dashboard slice."""
    if attempt_id is not None:
        return attempt_queryset(actor=actor).filter(
            pk=attempt_access(actor=actor, pk=attempt_id).pk
        )
    base = core.archived_state(params, attempt_queryset(actor=actor))
    if view == "record" and not (params.get("target_profile_id") or params.get("profile_ids")):
        params = {**params, "target_profile_id": actor.pk}
    return core.filtered(family=family(), queryset=base, params=params)


# -- persona fidelity ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FidelityRate:
    """Persona replies checked and how many were flagged (glow.ai.fidelity)."""

    flagged: int
    total: int

    @property
    def rate(self) -> float | None:
        return round(self.flagged / self.total, 4) if self.total else None


def persona_fidelity_by_simulation(*, actor, simulation_ids=None) -> dict:
    """{simulation_id: FidelityRate} over the model-written persona replies of the attempts the
    actor may see; one query whatever the number of simulations."""
    replies = Message.objects.filter(
        role=Role.ASSISTANT,
        run__isnull=False,
        chat__attempt__in=attempt_queryset(actor=actor).values("pk"),
    )
    if simulation_ids is not None:
        replies = replies.filter(chat__attempt__simulation_id__in=list(simulation_ids))
    rows = (
        replies.order_by()
        .values("chat__attempt__simulation_id")
        .annotate(total=Count("pk"), flagged=Count("pk", filter=~Q(fidelity_flags=[])))
    )
    return {
        row["chat__attempt__simulation_id"]: FidelityRate(row["flagged"], row["total"])
        for row in rows
    }
