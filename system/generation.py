"""Generation for every family: start a run (fire-and-return), execute it in a task, emit its events.

Registered as `registry.capabilities["generation"]` at ready(); glow.core's generate,
generations, watch and group ops delegate here. A family's `Generator` (declared by its
app) says what to create; this module makes the model calls, saves rows, and keeps the
books: one Run per generate, its numbered events, progress, the terminal event.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.core.exceptions import ValidationError as ModelValidationError
from django.db import IntegrityError, transaction
from rest_framework.exceptions import ValidationError

from glow.ai import CompletionRequest, ProviderError
from glow.core.errors import DATABASE_ERRORS, ApplicationError, ConflictError, NotFound
from glow.core.media import upload_save_bytes
from glow.core.models import UploadKind
from glow.core.registry import Family, registry
from glow.core.services import artifact_create, require_write
from glow.core.tasks import enqueue
from system import events, selectors
from system.gateway import model_call
from system.ledger import group_create, run_create, run_finish, session_for_request
from system.models import ClientKind, Event, Group, Run, RunStatus, Session

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "You draft a new {label} for Glow, where teaching assistants practise hard conversations "
    "with AI-simulated students. Follow the user's instructions. Answer with one JSON object "
    "that matches this JSON schema, and nothing else:\n{schema}"
)
# Domain failures whose message is safe and useful to show the client as is.
EXPECTED_FAILURES = (ProviderError, ApplicationError, ValidationError, ModelValidationError)


# -- groups -------------------------------------------------------------------------------------


def default_group_name(*, family: Family, data: dict | None = None) -> str:
    data = data or {}
    first = (data.get("title") or next(iter(data.get("instructions") or []), "")).strip()
    return first[:120] if first else f"{family.label.capitalize()} generations"


@transaction.atomic
def group_resolve(
    *,
    actor,
    session: Session,
    family: Family,
    group_id: Any = None,
    artifact_id: Any = None,
    name: str = "",
    own: bool = False,
) -> Group:
    """The group a flow belongs to: the one named (visible to the actor; with own=True, theirs),
    else the actor's latest group for this family (and artifact) in this session, else a new one."""
    if group_id:
        group = selectors.group_access(actor=actor, group_id=group_id)
        if own and group.profile_id != actor.pk:
            raise NotFound("No group with that id.")
        return group
    groups = Group.objects.filter(
        session=session, profile=actor, family=family.name, artifact_id=artifact_id
    ).order_by("-created_at")
    group = groups.first()
    if group is None:
        # The session row lock makes two concurrent first calls agree on one group.
        Session.objects.select_for_update().filter(pk=session.pk).first()
        group = groups.first()
    if group is None:
        group = group_create(
            actor=actor,
            session=session,
            family=family.name,
            name=name or default_group_name(family=family),
            artifact_id=artifact_id,
        )
    return group


# -- starting a run -----------------------------------------------------------------------------


def _run_by_client_id(*, actor, client_run_id: str) -> Run | None:
    run = Run.objects.filter(
        organization_id=actor.organization_id, client_run_id=client_run_id
    ).first()
    if run is not None and run.profile_id != actor.pk:
        raise ConflictError(
            "That client_run_id is already used by someone else's run.",
            code="client_run_id_taken",
            fields={"client_run_id": ["Already used."]},
        )
    return run


def generation_request(data: dict) -> dict:
    """What the task needs from a validated ArtifactGenerateRequest, stored on the run."""
    config = data.get("config") or {}
    return {
        "instructions": [item.strip() for item in data.get("instructions") or [] if item.strip()],
        "title": (data.get("title") or "").strip(),
        "modality": data.get("modality") or "text",
        "params": dict(config.get("params") or {}),
        "operations": list(config.get("operations") or []),
        "dangerous": bool(config.get("dangerous", False)),
    }


@transaction.atomic
def generation_start(*, actor, session: Session, family: Family, data: dict) -> Run:
    """Create the generate Run in the resolved group and enqueue its task (after commit).

    The same client_run_id answers the same run, so a client may retry a trigger safely.
    """
    require_write(actor=actor, family=family)
    client_run_id = (data.get("client_run_id") or "").strip()
    if client_run_id:
        existing = _run_by_client_id(actor=actor, client_run_id=client_run_id)
        if existing is not None:
            return existing
    request = generation_request(data)
    group = group_resolve(
        actor=actor,
        session=session,
        family=family,
        group_id=data.get("group_id"),
        name=default_group_name(family=family, data=request),
        own=True,
    )
    try:
        # Only a client_run_id can collide; the savepoint keeps the transaction usable if it does.
        with transaction.atomic(savepoint=bool(client_run_id)):
            run = run_create(
                group=group,
                kind="generate",
                family=family.name,
                client_run_id=client_run_id,
                mcp=session.client_kind == ClientKind.MCP,
                params={"request": request, "resources": {}},
            )
    except IntegrityError:
        # A concurrent retry with the same client_run_id won the race: answer its run.
        existing = client_run_id and _run_by_client_id(actor=actor, client_run_id=client_run_id)
        if not existing:
            raise
        return existing
    from system.tasks import generate_artifact

    enqueue(generate_artifact, str(run.pk))
    return run


# -- executing a run ----------------------------------------------------------------------------


def _json_type_names(prop: dict) -> str:
    declared = prop.get("type", "string")
    return declared if isinstance(declared, str) else " or ".join(declared)


def _overrides(family: Family, params: dict) -> dict:
    """config.params entries the family's write shape knows (`rubric_id` also fills `rubric`)."""
    if family.write_serializer is None:
        return {}
    known = set(family.write_serializer().fields)
    chosen = {}
    for key, value in params.items():
        name = key if key in known else key.removesuffix("_id")
        if name in known:
            chosen[name] = value
    return chosen


def _message(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return f"The generated data was refused: {json.dumps(exc.detail, default=str)}"
    if isinstance(exc, ModelValidationError):
        return f"The generated data was refused: {'; '.join(exc.messages)}"
    if isinstance(exc, ApplicationError):
        return exc.detail
    if isinstance(exc, ProviderError):
        return str(exc)
    return "The generation failed unexpectedly; the error is in the server log."


class RunContext:
    """The GenerationContext a Generator works through, bound to one run."""

    def __init__(self, *, run: Run, family: Family) -> None:
        self.run = run
        self.family = family
        self.actor = run.profile
        self.request: dict = dict(run.params.get("request") or {})
        self.request.setdefault("params", {})
        self.request.setdefault("instructions", [])
        self.done: dict[str, dict] = dict(run.params.get("resources") or {})
        self.planned: list[str] = list(family.generator.resources(self.request))
        self.current: tuple[str, str | None] = (family.name, None)

    # -- bookkeeping: each resource is recorded on the run in the transaction that makes it,
    # so a re-delivered task skips it and progress is reported exactly once.

    def _claim(self, resource: str) -> dict | None:
        """Lock the run; answer the resource's record if an earlier execution already made it."""
        locked = Run.objects.select_for_update().only("params").get(pk=self.run.pk)
        self.done = dict(locked.params.get("resources") or {})
        return self.done.get(resource)

    def _record(self, resource: str, record: dict) -> None:
        self.done[resource] = record
        params = {**self.run.params, "resources": self.done}
        Run.objects.filter(pk=self.run.pk).update(params=params)
        self.run.params = params
        completed = sum(1 for name in self.planned if name in self.done)
        total = max(len(self.planned), completed)
        events.event_emit(
            run=self.run,
            event_type=events.PROGRESS,
            payload={
                "completed_resources": completed,
                "total_resources": total,
                "percentage": round(100 * completed / total) if total else 100,
                "last_completed_resource": resource,
            },
        )

    def _draft(self, *, family: Family, instructions: list[str], schema: dict) -> dict:
        fields = {name: _json_type_names(prop) for name, prop in schema["properties"].items()}
        request = CompletionRequest(
            messages=[
                {
                    "role": "system",
                    "content": SYSTEM_PROMPT.format(
                        label=family.label, schema=json.dumps(schema, indent=1)
                    ),
                },
                {"role": "user", "content": "\n".join(instructions) or f"A new {family.label}."},
            ],
            task="generate_artifact",
            context={"family": family.name, "instructions": instructions, "fields": fields},
            json_schema=schema,
        )
        result = model_call(run=self.run, request=request, finish=False)
        data = result.data if isinstance(result.data, dict) else json.loads(result.text)
        return {name: data[name] for name in schema["properties"] if name in data}

    # -- the GenerationContext protocol

    def create(self, *, family, resource, instructions, schema, prepare=None):
        target = registry.get(family)
        self.current = (family, None)
        with transaction.atomic():
            record = self._claim(resource)
        if record is not None:
            return target.model.objects.get(pk=record["id"])
        data = self._draft(family=target, instructions=instructions, schema=schema)
        if target is self.family:
            data.update(_overrides(target, self.request["params"]))
            if self.request.get("title"):
                data["title"] = self.request["title"]
        if prepare is not None:
            data = prepare(data)
        with transaction.atomic():
            record = self._claim(resource)
            if record is not None:  # a concurrent execution saved it meanwhile
                return target.model.objects.get(pk=record["id"])
            instance = artifact_create(actor=self.actor, family=target, data=data)
            self.current = (family, str(instance.pk))
            self._record(resource, {"id": str(instance.pk), "family": family})
        return instance

    def media(self, *, resource, modality, render, mime_type, file_name, artifact):
        owner = registry.for_model(type(artifact))
        self.current = (modality, str(artifact.pk))
        with transaction.atomic():
            record = self._claim(resource)
        if record is not None:
            return record["media"]
        base = {"modality": modality, "resource_id": str(artifact.pk)}
        events.event_emit(
            run=self.run,
            event_type=events.MEDIA_PROGRESS,
            payload={**base, "status": "started", "message": f"Rendering the {modality}."},
        )
        content = render()
        events.event_emit(
            run=self.run,
            event_type=events.MEDIA_PROGRESS,
            payload={**base, "status": "in_progress", "message": f"Storing {len(content)} bytes."},
        )
        with transaction.atomic():
            record = self._claim(resource)
            if record is not None:
                return record["media"]
            upload = upload_save_bytes(
                organization_id=self.actor.organization_id,
                owner=self.actor,
                data=content,
                file_name=file_name,
                mime_type=mime_type,
                kind=UploadKind.GENERATED,
                family=owner.name if owner else "",
                artifact_id=artifact.pk,
            )
            handle = {
                "modality": modality,
                "upload_id": str(upload.pk),
                "file_size": upload.size,
                "mime_type": upload.mime_type,
            }
            events.event_emit(
                run=self.run,
                event_type=events.MEDIA_COMPLETE,
                payload={**handle, "resource_id": str(artifact.pk)},
            )
            self._record(resource, {"id": str(upload.pk), "family": "upload", "media": handle})
        return handle


def _locked_open_run(run: Run) -> bool:
    """Lock the run row; True if it still needs its terminal event (nobody finished it)."""
    status = Run.objects.select_for_update().filter(pk=run.pk).values_list("status", flat=True)
    return status.first() in (RunStatus.QUEUED, RunStatus.RUNNING)


@transaction.atomic
def generation_complete(*, context: RunContext, artifact) -> None:
    if not _locked_open_run(context.run):
        return
    artifact_id = str(artifact.pk) if artifact is not None else None
    if artifact is not None:
        events.event_emit(
            run=context.run,
            event_type=events.SAVED,
            payload={"artifact_id": artifact_id, "resource_type": context.family.name},
        )
    title = getattr(artifact, "title", "")
    events.event_emit(
        run=context.run,
        event_type=events.COMPLETE,
        payload={
            "success": True,
            "message": f"Generated {context.family.label} “{title}”."
            if title
            else f"The {context.family.label} generation finished.",
            "artifact_id": artifact_id,
        },
    )
    run_finish(run=context.run, status=RunStatus.SUCCEEDED, artifact_id=artifact_id)


@transaction.atomic
def generation_fail(*, context: RunContext, message: str) -> None:
    """The terminal error; whatever earlier resources saved stays saved."""
    status = (
        Run.objects.select_for_update().filter(pk=context.run.pk).values_list("status", flat=True)
    )
    if (
        status.first() == RunStatus.SUCCEEDED
        or Event.objects.filter(run=context.run, event_type__in=events.TERMINAL_EVENTS).exists()
    ):
        return
    resource_type, resource_id = context.current
    events.event_emit(
        run=context.run,
        event_type=events.ERROR,
        payload={"resource_type": resource_type, "resource_id": resource_id, "message": message},
    )
    # model_call may have failed the run already (keeping the provider's message); then a no-op.
    run_finish(run=context.run, status=RunStatus.FAILED, error=message)


def generation_execute(*, run_id: Any) -> None:
    """Do a generate run's work; safe to run twice (a re-delivered task): a finished run is left
    alone, and resources already saved are not made again."""
    run = Run.objects.select_related("profile__organization", "model").filter(pk=run_id).first()
    if run is None or run.finished:
        return
    family = registry.find(run.family)
    if family is None or family.generator is None:
        logger.error("Run %s names %r, which cannot be generated", run.pk, run.family)
        return
    context = RunContext(run=run, family=family)
    try:
        artifact = family.generator.run(context)
    except DATABASE_ERRORS:
        raise  # transient: the task runs again and continues; failing the run would need the database
    except EXPECTED_FAILURES as exc:
        generation_fail(context=context, message=_message(exc))
        return
    except Exception as exc:
        generation_fail(context=context, message=_message(exc))
        raise
    generation_complete(context=context, artifact=artifact)


# -- the implementation glow.core's ops call ------------------------------------------------------


class GenerationBackend:
    """registry.capabilities["generation"]: the ops parse, this answers."""

    def generate(self, *, request, actor, family: Family, data: dict) -> dict:
        session = session_for_request(request=request, actor=actor)
        run = generation_start(actor=actor, session=session, family=family, data=data)
        return {"group_id": run.group_id, "run_id": run.pk, "produced_media": []}

    def generations(self, *, actor, family: Family, params: dict) -> dict:
        rows, total = selectors.generation_groups(actor=actor, family=family.name, params=params)
        items = [
            {
                "group_id": group.pk,
                "session_id": group.session_id,
                "group_name": group.name,
                "created_at": group.created_at,
            }
            for group in rows
        ]
        return {"items": items, "total_count": total}

    def group(self, *, request, actor, family: Family, group_id, artifact_id, name: str) -> dict:
        session = session_for_request(request=request, actor=actor)
        group = group_resolve(
            actor=actor,
            session=session,
            family=family,
            group_id=group_id,
            artifact_id=artifact_id,
            name=name,
        )
        return {
            "group_id": group.pk,
            "session_id": group.session_id,
            "group_name": group.name,
            "family": group.family,
            "artifact_id": group.artifact_id,
            "created_at": group.created_at,
            "run_count": group.run_count,
        }

    def watch(self, *, request, actor, family: Family, run_id, group_id, last_event_id: str):
        from system.watch import watch_response

        return watch_response(
            request=request,
            actor=actor,
            run_id=run_id,
            group_id=group_id,
            last_event_id=last_event_id,
        )
