"""Writes on the books: sessions, groups, runs (the one path every model call takes), the timeline."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
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
    OuterRef,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from glow.ai import CompletionRequest, CompletionResult, ProviderError, cost_for, get_provider
from glow.ai.speech import Speech, Transcription, get_speech_provider, speech_cost
from glow.catalog.models import Model
from glow.core.exports import csv_member, export_store, json_member, jsonl_member
from glow.core.exports import iso as _iso
from glow.core.registry import registry
from system.models import FINISHED, ClientKind, Group, Run, RunStatus, Session, TimelineEvent

# last_seen_at is written at most this often: one UPDATE per request would serialise a client's calls.
SEEN_RESOLUTION = timedelta(seconds=60)
# Cancellation is read from the database between chunks, but not more often than this.
CANCEL_POLL_SECONDS = 0.15


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
        Model.objects.filter(
            organization_id=organization_id, title=settings.GLOW_AI_MODEL, archived=False
        )
        .order_by("-created_at")
        .first()
    )


def provider_of(model) -> tuple[str, str]:
    if model is None:
        return settings.GLOW_AI_PROVIDER, "glow-local"
    return model.provider, model.provider_model


def provider_for(run: Run):
    model = run.model
    if run.provider == "openai":
        key_env = (model.api_key_env if model else "") or settings.GLOW_OPENAI_API_KEY_ENV
        return get_provider(
            "openai",
            base_url=(model.base_url if model else "") or settings.GLOW_OPENAI_BASE_URL,
            api_key=os.environ.get(key_env, ""),
            timeout=settings.GLOW_OPENAI_TIMEOUT,
            max_retries=settings.GLOW_OPENAI_MAX_RETRIES,
            structured_output=model.structured_output if model else None,
            max_in_flight=settings.GLOW_PROVIDER_MAX_IN_FLIGHT,
        )
    return get_provider(run.provider or "local", stream_delay=settings.GLOW_LOCAL_STREAM_DELAY)


def run_mark_running(*, run: Run) -> None:
    now = timezone.now()
    Run.objects.filter(pk=run.pk, status=RunStatus.QUEUED).update(
        status=RunStatus.RUNNING, started_at=now
    )
    run.status, run.started_at = RunStatus.RUNNING, run.started_at or now


def _price(run: Run) -> tuple[Decimal, Decimal]:
    if run.model is None:
        return Decimal("0"), Decimal("0")
    return run.model.input_price_per_million, run.model.output_price_per_million


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


def _cancel_checker(run: Run) -> Callable[[], bool]:
    last = {"at": 0.0, "value": False}

    def should_cancel() -> bool:
        now = time.monotonic()
        if not last["value"] and now - last["at"] >= CANCEL_POLL_SECONDS:
            last["at"] = now
            last["value"] = Run.objects.filter(pk=run.pk, cancel_requested=True).exists()
        return last["value"]

    return should_cancel


def model_call(
    *,
    run: Run,
    request: CompletionRequest,
    stream: bool = False,
    on_delta: Callable[[str], None] | None = None,
    finish: bool = True,
) -> CompletionResult:
    """The one way to call a model: the run gets the tokens, cost, latency, status and any error.

    latency_ms is the call's own, request sent to last byte; a streamed call also records
    first_token_ms, request sent to its first delta. With finish=False the run stays open for
    more calls (a generation that makes several). Any error marks the run failed (keeping its
    message) and is raised again.
    """
    run_mark_running(run=run)
    provider = provider_for(run)
    if not request.model or request.model == "glow-local":
        request.model = run.provider_model or request.model
    Run.objects.filter(pk=run.pk).update(messages=request.messages[-50:])
    sent = time.perf_counter()
    first_token_ms = None
    try:
        if stream:
            chunks = provider.stream(request, should_cancel=_cancel_checker(run))
            for delta in chunks:
                if first_token_ms is None:
                    first_token_ms = round((time.perf_counter() - sent) * 1000)
                if on_delta is not None:
                    on_delta(delta)
            result = chunks.result
        else:
            result = provider.complete(request)
    except ProviderError as exc:
        run_finish(run=run, status=RunStatus.FAILED, error=str(exc), latency_ms=_since(sent))
        raise
    except Exception as exc:
        # Whatever broke (a delta consumer, a provider bug), the run must not stay "running".
        run_finish(
            run=run,
            status=RunStatus.FAILED,
            error=f"{type(exc).__name__}: {exc}",
            latency_ms=_since(sent),
        )
        raise
    latency_ms = _since(sent)
    input_price, output_price = _price(run)
    cost = cost_for(
        result.usage, input_price_per_million=input_price, output_price_per_million=output_price
    )
    run_record_usage(
        run=run,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost=cost,
    )
    if finish:
        status = RunStatus.CANCELLED if result.finish_reason == "cancelled" else RunStatus.SUCCEEDED
        run_finish(
            run=run,
            status=status,
            output=result.text,
            latency_ms=latency_ms,
            first_token_ms=first_token_ms,
        )
    else:
        Run.objects.filter(pk=run.pk).update(output=result.text, first_token_ms=first_token_ms)
    return result


def _since(sent: float) -> int:
    return round((time.perf_counter() - sent) * 1000)


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


def speech_provider_for(run: Run):
    """The run's speech provider, connected like provider_for's chat provider."""
    model = run.model
    if run.provider == "openai":
        key_env = (model.api_key_env if model else "") or settings.GLOW_OPENAI_API_KEY_ENV
        return get_speech_provider(
            "openai",
            base_url=(model.base_url if model else "") or settings.GLOW_OPENAI_BASE_URL,
            api_key=os.environ.get(key_env, ""),
            timeout=settings.GLOW_OPENAI_TIMEOUT,
            max_retries=settings.GLOW_OPENAI_MAX_RETRIES,
            transcription_model=settings.GLOW_SPEECH_TRANSCRIPTION_MODEL,
            speech_model=settings.GLOW_SPEECH_MODEL,
        )
    return get_speech_provider(run.provider or "local")


def _speech_price_per_minute(run: Run) -> Decimal:
    # The local engines run on our own CPU: nothing to bill.
    if run.provider != "openai":
        return Decimal("0")
    return Decimal(str(settings.GLOW_SPEECH_PRICE_PER_MINUTE))


def speech_call(
    *,
    run: Run,
    audio: bytes | None = None,
    text: str | None = None,
    voice: str = "",
    mime_type: str = "audio/wav",
    language: str = "en",
    speed: float | None = None,
    finish: bool = True,
) -> Transcription | Speech:
    """The one way to call a speech model: transcribe `audio`, or speak `text`, as a Run.

    The run gets the seconds of audio (params["audio_seconds"], added up over calls), any
    tokens the server reports, the per-minute cost, latency and status. `params["speech_model"]`
    overrides the configured model. A provider error marks the run failed and is raised again.
    """
    if (audio is None) == (text is None):
        raise ValueError("speech_call takes either audio to transcribe or text to speak")
    run_mark_running(run=run)
    provider = speech_provider_for(run)
    model = str(run.params.get("speech_model") or "")
    try:
        if audio is not None:
            result = provider.transcribe(audio, mime_type=mime_type, language=language, model=model)
            seconds, output = result.usage_seconds, result.text
        else:
            Run.objects.filter(pk=run.pk).update(messages=[{"role": "user", "content": text}])
            result = provider.synthesize(text, voice=voice, speed=speed, model=model)
            seconds, output = result.duration_seconds, ""
    except ProviderError as exc:
        run_finish(run=run, status=RunStatus.FAILED, error=str(exc))
        raise
    except Exception as exc:
        # Whatever broke, the run must not stay "running".
        run_finish(run=run, status=RunStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    run_record_usage(
        run=run,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost=speech_cost(seconds, price_per_minute=_speech_price_per_minute(run)),
    )
    audio_seconds = round(float(run.params.get("audio_seconds") or 0) + seconds, 3)
    run.params = {**run.params, "audio_seconds": audio_seconds}
    Run.objects.filter(pk=run.pk).update(params=run.params)
    if finish:
        run_finish(run=run, status=RunStatus.SUCCEEDED, output=output)
    elif output:
        Run.objects.filter(pk=run.pk).update(output=output)
    return result


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


def _per_group(queryset, expression):
    return Subquery(
        queryset.filter(group=OuterRef("pk"))
        .order_by()
        .values("group")
        .annotate(value=expression)
        .values("value")[:1]
    )


def _per_session(expression):
    return Subquery(
        Group.objects.filter(session=OuterRef("pk"))
        .order_by()
        .values("session")
        .annotate(value=expression)
        .values("value")[:1]
    )


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
        run_count=Coalesce(_per_group(finished, Count("pk")), 0, output_field=big),
        total_tokens=Coalesce(
            _per_group(Run.objects.all(), Sum("total_tokens")), 0, output_field=big
        ),
        total_cost=Coalesce(
            _per_group(Run.objects.all(), Sum("cost")), Decimal("0"), output_field=money
        ),
        first_run_at=_per_group(Run.objects.all(), Min("started_at")),
        last_run_at=_per_group(Run.objects.all(), Max(Coalesce("finished_at", "started_at"))),
    )
    return Session.objects.filter(pk__in=session_ids).update(
        group_count=Coalesce(_per_session(Count("pk")), 0, output_field=big),
        run_count=Coalesce(_per_session(Sum("run_count")), 0, output_field=big),
        total_tokens=Coalesce(_per_session(Sum("total_tokens")), 0, output_field=big),
        total_cost=Coalesce(_per_session(Sum("total_cost")), Decimal("0"), output_field=money),
    )


# -- exports ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFile:
    """A file an app adds to a session export (hook "session_export"): ZIP path, content, rows."""

    name: str
    content: str | bytes
    row_count: int = 0


GROUP_COLUMNS = [
    "group_id",
    "group_name",
    "family",
    "artifact_id",
    "created_at",
    "first_run_at",
    "last_run_at",
    "run_count",
    "total_tokens",
    "total_cost",
]
RUN_COLUMNS = [
    "run_id",
    "group_id",
    "kind",
    "status",
    "model_id",
    "provider",
    "provider_model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "created_at",
    "started_at",
    "finished_at",
    "latency_ms",
    "error",
    "client_run_id",
    "mcp",
]
TIMELINE_COLUMNS = ["event_type", "entity_id", "entity_name", "created_at", "extra_1", "extra_2"]


def _group_row(group: Group) -> list:
    return [
        group.pk,
        group.name,
        group.family,
        group.artifact_id or "",
        _iso(group.created_at),
        _iso(group.first_run_at),
        _iso(group.last_run_at),
        group.run_count,
        group.total_tokens,
        group.total_cost,
    ]


def _run_row(run: Run) -> list:
    return [
        run.pk,
        run.group_id,
        run.kind,
        run.status,
        run.model_id or "",
        run.provider,
        run.provider_model,
        run.input_tokens,
        run.output_tokens,
        run.total_tokens,
        run.cost,
        _iso(run.created_at),
        _iso(run.started_at),
        _iso(run.finished_at),
        "" if run.latency_ms is None else run.latency_ms,
        run.error,
        run.client_run_id,
        run.mcp,
    ]


def _timeline_row(item) -> list:
    return [
        item.event_type,
        item.entity_id,
        item.entity_name,
        _iso(item.created_at),
        item.extra_1,
        item.extra_2,
    ]


def _run_json(run: Run) -> dict:
    return {
        "run_id": str(run.pk),
        "group_id": str(run.group_id),
        "kind": run.kind,
        "status": run.status,
        "model_id": str(run.model_id or ""),
        "provider_model": run.provider_model,
        "messages": run.messages,
        "output": run.output,
        "error": run.error,
        "events": [
            {
                "seq": event.seq,
                "event_type": event.event_type,
                "payload": event.payload,
                "created_at": _iso(event.created_at),
            }
            for event in run.ordered_events
        ],
    }


def session_export(*, actor, session: Session, audit_session: Session | None = None):
    """Write a ZIP of the session's groups, runs (with messages and events), timeline and what
    other apps add through the "session_export" hook, store it as the actor's export Upload
    (read back with file/download), and audit it on the timeline (FERPA) in the same
    transaction."""
    from system.selectors import EXPORT_EVENT, session_export_data

    groups, runs, timeline = session_export_data(session=session)
    file_name = f"glow-session-{session.created_at:%Y%m%d}-{str(session.pk)[:8]}.zip"

    def write(archive) -> int:
        counts = {
            "groups.csv": csv_member(archive, "groups.csv", GROUP_COLUMNS, map(_group_row, groups))
        }
        run_rows = []

        def run_objects():
            for run in runs.iterator(chunk_size=500):
                run_rows.append(_run_row(run))
                yield _run_json(run)

        jsonl_member(archive, "runs.jsonl", run_objects())
        counts["runs.csv"] = csv_member(archive, "runs.csv", RUN_COLUMNS, run_rows)
        counts["timeline.csv"] = csv_member(
            archive, "timeline.csv", TIMELINE_COLUMNS, map(_timeline_row, timeline)
        )
        for contribution in registry.run_hooks("session_export", actor=actor, session=session):
            for part in contribution or []:
                archive.writestr(part.name, part.content)
                counts[part.name] = part.row_count
        manifest = {
            "session_id": str(session.pk),
            "profile_id": str(session.profile_id),
            "profile_name": session.profile.name,
            "session_created_at": _iso(session.created_at),
            "exported_at": _iso(timezone.now()),
            "exported_by": actor.name,
            "files": counts,
        }
        json_member(archive, "manifest.json", manifest)
        return sum(counts.values())

    # Sessions are no registered row family: the exporter (and admins) may read it back.
    return export_store(
        actor=actor,
        file_name=file_name,
        write=write,
        audit=lambda upload: timeline_record(
            actor=actor,
            session=audit_session,
            event_type=EXPORT_EVENT,
            entity_id=session.pk,
            entity_name=f"Session of {session.profile.name}",
            extra_1=upload.pk,
            extra_2=file_name,
        ),
    )
