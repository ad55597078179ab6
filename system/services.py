"""Writes on the books: sessions, groups, runs (the one path every model call takes), the timeline."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from glow.ai import CompletionRequest, CompletionResult, ProviderError, cost_for, get_provider
from system.models import ClientKind, Group, Run, RunStatus, Session, TimelineEvent

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
        )
    return get_provider(run.provider or "local")


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
        first_run_at=Coalesce(F("first_run_at"), now),
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
) -> Run:
    """Close the run once: a second finish (a retried task) changes nothing."""
    now = timezone.now()
    started = run.started_at or now
    fields: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "latency_ms": int((now - started).total_seconds() * 1000),
        "error": error[:4000],
    }
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
        Group.objects.filter(pk=run.group_id).update(
            run_count=F("run_count") + 1,
            first_run_at=Coalesce(F("first_run_at"), started),
            last_run_at=Greatest(Coalesce(F("last_run_at"), now), now),
        )
        Session.objects.filter(pk=run.session_id).update(run_count=F("run_count") + 1)
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

    With finish=False the run stays open for more calls (a generation that makes several).
    A provider error marks the run failed (keeping its message) and is raised again.
    """
    run_mark_running(run=run)
    provider = provider_for(run)
    if not request.model or request.model == "glow-local":
        request.model = run.provider_model or request.model
    Run.objects.filter(pk=run.pk).update(messages=request.messages[-50:])
    try:
        if stream:
            chunks = provider.stream(request, should_cancel=_cancel_checker(run))
            for delta in chunks:
                if on_delta is not None:
                    on_delta(delta)
            result = chunks.result
        else:
            result = provider.complete(request)
    except ProviderError as exc:
        run_finish(run=run, status=RunStatus.FAILED, error=str(exc))
        raise
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
        run_finish(run=run, status=status, output=result.text)
    else:
        Run.objects.filter(pk=run.pk).update(output=result.text)
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
) -> TimelineEvent:
    return TimelineEvent.objects.create(
        organization_id=actor.organization_id,
        session=session,
        actor=actor,
        event_type=event_type,
        entity_id=str(entity_id or ""),
        entity_name=str(entity_name or "")[:300],
        extra_1=str(extra_1 or "")[:300],
        extra_2=str(extra_2 or "")[:300],
    )
