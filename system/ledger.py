"""The books of model use (the ledger): sessions, groups, runs and their counters, timeline and audit rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    BigIntegerField,
    Count,
    DecimalField,
    F,
    Max,
    Min,
    Sum,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from glow.catalog.models import AIModel
from glow.core.aggregates import per_row
from system.models import FINISHED, ClientKind, Group, Run, RunStatus, Session, TimelineEvent

# last_seen_at is written at most this often: one UPDATE per request would serialise a client's calls.
SEEN_RESOLUTION = timedelta(seconds=60)


def client_kind_of(*, auth: str, mcp: bool, user_agent: str) -> str:
    if mcp:
        return ClientKind.MCP
    if user_agent.lower().startswith("glow-cli"):
        return ClientKind.CLI
    if auth == "session":
        return ClientKind.BROWSER
    return ClientKind.API


def session_touch(*, actor, client_kind: str, auth: str, user_agent: str = "", now=None) -> Session:
    """The actor's current session for this client, or a new one after the idle window."""
    now = now or timezone.now()
    idle = timedelta(minutes=settings.GLOW_SESSION_IDLE_MINUTES)
    session = (
        Session.objects.filter(profile=actor, client_kind=client_kind, active=True)
        .order_by("-last_seen_at")
        .first()
    )
    if session is not None and now - session.last_seen_at <= idle:
        if now - session.last_seen_at > SEEN_RESOLUTION:
            Session.objects.filter(pk=session.pk).update(last_seen_at=now)
            session.last_seen_at = now
        return session
    with transaction.atomic():
        if session is not None:
            Session.objects.filter(profile=actor, active=True, last_seen_at__lt=now - idle).update(
                active=False
            )
        return Session.objects.create(
            organization_id=actor.organization_id,
            profile=actor,
            client_kind=client_kind,
            auth=auth,
            user_agent=user_agent[:300],
            last_seen_at=now,
        )


def session_for_request(*, request, actor) -> Session:
    session = getattr(request, "glow_session", None)
    if session is not None:
        return session
    auth = getattr(request, "glow_auth", "session")
    session = session_touch(
        actor=actor,
        client_kind=client_kind_of(
            auth=auth,
            mcp=getattr(request, "glow_mcp", False),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        ),
        auth=auth,
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
    )
    request.glow_session = session
    return session


@transaction.atomic
def group_create(*, actor, session: Session, family: str, name: str, artifact_id=None) -> Group:
    group = Group.objects.create(
        organization_id=actor.organization_id,
        session=session,
        profile=actor,
        family=family,
        name=name[:300],
        artifact_id=artifact_id,
    )
    Session.objects.filter(pk=session.pk).update(group_count=F("group_count") + 1)
    timeline_record(
        actor=actor,
        session=session,
        event_type="group.created",
        entity_id=group.id,
        entity_name=group.name,
        extra_1=family,
    )
    return group


def run_create(
    *,
    group: Group,
    kind: str,
    model=None,
    family: str = "",
    client_run_id: str = "",
    mcp: bool = False,
    artifact_id=None,
    params: dict | None = None,
) -> Run:
    if model is None:
        model = default_model(organization_id=group.organization_id)
    provider, provider_model = provider_of(model)
    return Run.objects.create(
        organization_id=group.organization_id,
        group=group,
        session_id=group.session_id,
        profile_id=group.profile_id,
        kind=kind,
        family=family or group.family,
        model=model,
        provider=provider,
        provider_model=provider_model,
        client_run_id=client_run_id or "",
        mcp=mcp,
        artifact_id=artifact_id,
        params=params or {},
    )


def default_model(*, organization_id):
    """The organization's catalog Model named by GLOW_AI_MODEL (its title), for the calls that
    name no model (persona replies, hints, grades, generation); None: the settings' provider."""
    if not settings.GLOW_AI_MODEL:
        return None
    return (
        AIModel.objects.filter(
            organization_id=organization_id, title=settings.GLOW_AI_MODEL, archived=False
        )
        .order_by("-created_at")
        .first()
    )


def provider_of(model) -> tuple[str, str]:
    if model is None:
        return settings.GLOW_AI_PROVIDER, "glow-local"
    return model.provider, model.provider_model


def run_mark_running(*, run: Run) -> None:
    now = timezone.now()
    Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now
    )
    run.status, run.started_at = RunStatus.RUNNING, run.started_at or now


@transaction.atomic
def run_record_usage(*, run: Run, input_tokens: int, output_tokens: int, cost: Decimal) -> None:
    """Add one call's usage to the run, its group and its session in one transaction."""
    now = timezone.now()
    tokens = input_tokens + output_tokens
    Run.objects.filter(pk=run.pk).update(
        input_tokens=F("input_tokens") + input_tokens,
        output_tokens=F("output_tokens") + output_tokens,
        total_tokens=F("total_tokens") + tokens,
        cost=F("cost") + cost,
    )
    Group.objects.filter(pk=run.group_id).update(
        total_tokens=F("total_tokens") + tokens,
        total_cost=F("total_cost") + cost,
        last_run_at=Greatest(Coalesce(F("last_run_at"), now), now),
        # The run's start, as run_finish and session_counters_refresh have it.
        first_run_at=Coalesce(F("first_run_at"), run.started_at or now),
    )
    Session.objects.filter(pk=run.session_id).update(
        total_tokens=F("total_tokens") + tokens, total_cost=F("total_cost") + cost
    )
    run.input_tokens += input_tokens
    run.output_tokens += output_tokens
    run.total_tokens += tokens
    run.cost += cost


@transaction.atomic
def run_finish(
    *,
    run: Run,
    status: str = RunStatus.SUCCEEDED,
    error: str = "",
    output: str | None = None,
    artifact_id=None,
    latency_ms: int | None = None,
    first_token_ms: int | None = None,
) -> Run:
    """Close the run once: a second finish (a retried task) changes nothing.

    `latency_ms` is the model call's own (request sent to last byte), when the caller timed
    one; else the run's time from start to now.
    """
    now = timezone.now()
    started = run.started_at or now
    fields: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "latency_ms": (
            int((now - started).total_seconds() * 1000) if latency_ms is None else latency_ms
        ),
        "error": error[:4000],
    }
    if first_token_ms is not None:
        fields["first_token_ms"] = first_token_ms
    if output is not None:
        fields["output"] = output
    if artifact_id is not None:
        fields["artifact_id"] = artifact_id
    updated = (
        Run.objects.filter(pk=run.pk)
        .exclude(
            status__in=[
                s.value for s in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
            ]
        )
        .update(**fields)
    )
    if updated:
        runs_booked(
            group_id=run.group_id, session_id=run.session_id, runs=1, started=started, finished=now
        )
    run.refresh_from_db()
    return run


def run_cancel(*, run: Run) -> bool:
    """Ask a running call to stop; the generator checks between chunks."""
    return bool(
        Run.objects.filter(pk=run.pk, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]).update(
            cancel_requested=True
        )
    )


def runs_booked(
    *,
    group_id: Any,
    session_id: Any,
    runs: int,
    started,
    finished,
    tokens: int = 0,
    cost: Decimal = Decimal("0"),
) -> None:
    """Add finished runs (started at `started` at the earliest, the last at `finished`) to their
    group's and session's counters, inside the caller's transaction. Two prepared statements:
    the ORM's F()/Coalesce/Greatest version cost more to build than to run, per batch of cells."""
    ops, quote = connection.ops, connection.ops.quote_name
    group_pk, session_pk = Group._meta.pk, Session._meta.pk
    first = ops.adapt_datetimefield_value(started)
    last = ops.adapt_datetimefield_value(finished)
    cost = ops.adapt_decimalfield_value(cost)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Group._meta.db_table)} SET run_count = run_count + %s, "
            "total_tokens = total_tokens + %s, total_cost = total_cost + %s, "
            "first_run_at = COALESCE(first_run_at, %s), last_run_at = CASE WHEN "
            "last_run_at IS NULL OR last_run_at < %s THEN %s ELSE last_run_at END WHERE id = %s",
            [
                runs,
                tokens,
                cost,
                first,
                last,
                last,
                group_pk.get_db_prep_value(group_id, connection),
            ],
        )
        cursor.execute(
            f"UPDATE {quote(Session._meta.db_table)} SET run_count = run_count + %s, "
            "total_tokens = total_tokens + %s, total_cost = total_cost + %s WHERE id = %s",
            [runs, tokens, cost, session_pk.get_db_prep_value(session_id, connection)],
        )


def timeline_record(
    *,
    actor,
    event_type: str,
    entity_id: Any = "",
    entity_name: str = "",
    extra_1: Any = "",
    extra_2: Any = "",
    session: Session | None = None,
    organization_id: Any = None,
) -> TimelineEvent:
    """An audit row; without an actor (the command line) it belongs to `organization_id`."""
    return TimelineEvent.objects.create(
        organization_id=actor.organization_id if actor is not None else organization_id,
        session=session,
        actor=actor,
        event_type=event_type,
        entity_id=str(entity_id or ""),
        entity_name=str(entity_name or "")[:300],
        extra_1=str(extra_1 or "")[:300],
        extra_2=str(extra_2 or "")[:300],
    )


def audit_record(
    *,
    event_type: str,
    actor=None,
    organization_id=None,
    entity_id="",
    entity_name="",
    extra_1="",
    extra_2="",
    request=None,
) -> TimelineEvent:
    """The "audit" hook: an audit row in the session of the request it came from (a signed-in
    profile's browser request gets one booked); without an actor, in the target's organization."""
    request = getattr(request, "_request", request)
    session = session_for_request(request=request, actor=actor) if actor and request else None
    return timeline_record(
        actor=actor,
        session=session,
        organization_id=organization_id,
        event_type=event_type,
        entity_id=entity_id,
        entity_name=entity_name,
        extra_1=extra_1,
        extra_2=extra_2,
    )


# -- counters -----------------------------------------------------------------------------------


@transaction.atomic
def session_counters_refresh(*, sessions) -> int:
    """Recompute the groups' and sessions' counters from their runs (repairs any drift).

    `sessions` is a queryset; runs count once finished, tokens and cost as soon as recorded.
    Answers how many sessions were recomputed.
    """
    big = BigIntegerField()
    money = DecimalField(max_digits=14, decimal_places=6)
    session_ids = list(sessions.values_list("pk", flat=True))
    finished = Run.objects.filter(status__in=[str(status) for status in FINISHED])
    Group.objects.filter(session_id__in=session_ids).update(
        run_count=Coalesce(per_row(finished, Count("pk"), by="group"), 0, output_field=big),
        total_tokens=Coalesce(
            per_row(Run.objects.all(), Sum("total_tokens"), by="group"), 0, output_field=big
        ),
        total_cost=Coalesce(
            per_row(Run.objects.all(), Sum("cost"), by="group"), Decimal("0"), output_field=money
        ),
        first_run_at=per_row(Run.objects.all(), Min("started_at"), by="group"),
        last_run_at=per_row(
            Run.objects.all(), Max(Coalesce("finished_at", "started_at")), by="group"
        ),
    )
    return Session.objects.filter(pk__in=session_ids).update(
        group_count=Coalesce(
            per_row(Group.objects.all(), Count("pk"), by="session"), 0, output_field=big
        ),
        run_count=Coalesce(
            per_row(Group.objects.all(), Sum("run_count"), by="session"), 0, output_field=big
        ),
        total_tokens=Coalesce(
            per_row(Group.objects.all(), Sum("total_tokens"), by="session"), 0, output_field=big
        ),
        total_cost=Coalesce(
            per_row(Group.objects.all(), Sum("total_cost"), by="session"),
            Decimal("0"),
            output_field=money,
        ),
    )
