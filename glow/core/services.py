"""Writes shared by every family: archive, drafts, publish, retitle, with optimistic concurrency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import F, Model, QuerySet
from django.utils import timezone

from glow.core.errors import ApplicationError, ConflictError, NotFound, PermissionDenied
from glow.core.models import Draft
from glow.core.registry import Family, registry
from glow.core.selectors import artifact_access


def require_write(*, actor, family: Family) -> None:
    if not family.can_write(actor):
        raise PermissionDenied(f"Your role may not change {family.plural}.")


@transaction.atomic
def artifact_archive(*, selection: QuerySet, archived: bool) -> int:
    """One UPDATE over the selection; rows already in the wanted state are not counted."""
    now = timezone.now()
    return selection.model.objects.filter(
        pk__in=selection.exclude(archived=archived).values("pk")
    ).update(
        archived=archived,
        archived_at=now if archived else None,
        updated_at=now,
        version=F("version") + 1,
    )


def artifact_archive_audit(
    *, actor, family: Family, archived: bool, count: int, ids: list | None, request=None
) -> None:
    """One audit row per archive call (system writes it as a TimelineEvent): who, which family,
    how many rows, and which ids ("all" for a filtered selection)."""
    listed = ",".join(str(pk) for pk in ids) if ids else "all"
    registry.run_hooks(
        "audit",
        actor=actor,
        event_type=f"{family.name}.{'archived' if archived else 'unarchived'}",
        entity_id=family.name,
        entity_name=family.plural,
        extra_1=str(count),
        extra_2=listed if len(listed) <= 300 else f"{listed[:296]}...",
        request=request,
    )


@transaction.atomic
def artifact_archive_bulk(
    *, actor, family: Family, body: dict, archive: Callable | None = None, request=None
) -> tuple[int, list]:
    """The archive op: the body's selection (explicit ids, or all: true with filters minus
    excluded_ids) archived or restored, and audited in the same transaction, so an audit row
    never outlives a rolled-back archive nor an archive goes unaudited.

    `archive` is a family's own (selection, archived) -> (count, learner ids to invalidate);
    the default is the plain UPDATE. Answers (count, ids to invalidate)."""
    from glow.core.selectors import bulk_selection

    archived = body.get("archived", True)
    selection = bulk_selection(actor=actor, family=family, body=body)
    if archive is None:
        count, invalidate = artifact_archive(selection=selection, archived=archived), []
    else:
        count, invalidate = archive(selection=selection, archived=archived)
    artifact_archive_audit(
        actor=actor,
        family=family,
        archived=archived,
        count=count,
        ids=body.get(family.ids_field) or body.get("ids"),
        request=request,
    )
    return count, list(invalidate)


def conflict(*, family: Family, pk: Any) -> ConflictError:
    current = family.model.objects.filter(pk=pk).values_list("version", flat=True).first()
    return ConflictError(
        f"This {family.label} changed since version you started from.",
        code="version_conflict",
        extra={"current_version": current},
    )


def _plain_writer(instance: Model, data: dict) -> Model:
    for name, value in data.items():
        setattr(instance, name, value)
    instance.save()
    return instance


def _validated(*, family: Family, data: dict, partial: bool, actor) -> dict:
    if not isinstance(data, dict):
        raise ApplicationError("data must be an object.", fields={"data": ["Expected an object."]})
    if family.write_serializer is None:
        raise ApplicationError(
            f"{family.plural} cannot be edited through the API.", code="not_editable"
        )
    serializer = family.write_serializer(data=data, partial=partial, context={"actor": actor})
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


@transaction.atomic
def artifact_update(*, actor, family: Family, pk: Any, version: int, data: dict) -> Model:
    """Apply `data` if the row is still at `version`; bump the version in the same UPDATE."""
    require_write(actor=actor, family=family)
    instance = artifact_access(actor=actor, family=family, pk=pk, for_update=True)
    validated = _validated(family=family, data=data, partial=True, actor=actor)
    bumped = family.model.objects.filter(pk=instance.pk, version=version).update(
        version=F("version") + 1, updated_at=timezone.now()
    )
    if bumped == 0:
        raise conflict(family=family, pk=instance.pk)
    instance.refresh_from_db()
    (family.writer or _plain_writer)(instance, validated)
    instance.refresh_from_db()
    return instance


@transaction.atomic
def artifact_create(*, actor, family: Family, data: dict) -> Model:
    require_write(actor=actor, family=family)
    validated = _validated(family=family, data=data, partial=False, actor=actor)
    instance = family.model(organization_id=actor.organization_id, created_by=actor)
    return (family.writer or _plain_writer)(instance, validated)


@transaction.atomic
def draft_save(
    *,
    actor,
    family: Family,
    version: int,
    data: dict,
    artifact_id: Any = None,
    draft_id: Any = None,
) -> Draft:
    """Keep edits unpublished, pinned to the version they started from (409 if already stale)."""
    require_write(actor=actor, family=family)
    if not isinstance(data, dict):
        raise ApplicationError("data must be an object.", fields={"data": ["Expected an object."]})
    if draft_id is not None:
        draft = (
            Draft.objects.select_for_update()
            .filter(pk=draft_id, author=actor, family=family.name)
            .first()
        )
        if draft is None:
            raise NotFound("No draft with that id.")
        artifact_id = artifact_id or draft.artifact_id
    else:
        draft = Draft(organization_id=actor.organization_id, author=actor, family=family.name)
    if artifact_id is not None:
        row = artifact_access(actor=actor, family=family, pk=artifact_id)
        if row.version != version:
            raise conflict(family=family, pk=row.pk)
    draft.artifact_id = artifact_id
    draft.base_version = version
    draft.data = {**(draft.data or {}), **data} if draft_id is not None else data
    draft.save()
    return draft


@transaction.atomic
def draft_publish(*, actor, family: Family, draft_id: Any) -> Model:
    draft = (
        Draft.objects.select_for_update()
        .filter(pk=draft_id, author=actor, family=family.name)
        .first()
    )
    if draft is None:
        raise NotFound("No draft with that id.")
    if draft.artifact_id is None:
        instance = artifact_create(actor=actor, family=family, data=draft.data)
    else:
        instance = artifact_update(
            actor=actor,
            family=family,
            pk=draft.artifact_id,
            version=draft.base_version,
            data=draft.data,
        )
    draft.delete()
    return instance


@transaction.atomic
def artifact_retitle(
    *, actor, family: Family, pk: Any, title: str, version: int | None = None
) -> Model:
    require_write(actor=actor, family=family)
    title = title.strip()
    if not title:
        raise ApplicationError(
            "title may not be blank.", fields={"title": ["This field may not be blank."]}
        )
    instance = artifact_access(actor=actor, family=family, pk=pk, for_update=True)
    rows = family.model.objects.filter(pk=instance.pk)
    if version is not None:
        rows = rows.filter(version=version)
    if rows.update(title=title[:300], version=F("version") + 1, updated_at=timezone.now()) == 0:
        raise conflict(family=family, pk=instance.pk)
    instance.refresh_from_db()
    return instance


@transaction.atomic
def artifact_publish(*, actor, family: Family, body: dict) -> Model:
    """The publish op: a draft (draft_id), or data applied at a version to a row
    (<family>_id or id), or, with no id, a new row."""
    pk = body.get(family.id_field) or body.get("id")
    if body.get("draft_id"):
        return draft_publish(actor=actor, family=family, draft_id=body["draft_id"])
    if pk:
        return artifact_update(
            actor=actor, family=family, pk=pk, version=body["version"], data=body["data"]
        )
    return artifact_create(actor=actor, family=family, data=body["data"])
