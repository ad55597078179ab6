"""Generation, written once: the generate/generations/watch/group ops every generatable family gets.

glow.core imports no app, so the ops only parse and answer; the work is done by the
implementation an app provides as `registry.capabilities["generation"]` (system does, at
ready()). A family is generatable when its app sets `Family.generator` to a `Generator`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol

from django.utils import timezone
from rest_framework import serializers
from rest_framework.response import Response

from glow.core.ops import op, writers
from glow.core.registry import Family, registry
from glow.core.serializers import (
    MAX_INT,
    JSONObjectField,
    RuledSerializer,
    at_least_one,
    camel,
    make,
)

CAPABILITY = "generation"
MODALITIES = ("text", "image", "video")


class GenerationContext(Protocol):
    """What a generator may do; the implementation records runs, progress and events."""

    actor: Any
    family: Family
    request: dict  # instructions (list), params, operations, dangerous, modality, title

    def create(
        self,
        *,
        family: str,
        resource: str,
        instructions: list[str],
        schema: dict,
        prepare: Callable[[dict], dict] | None = None,
    ) -> Any:
        """Draft `family`'s fields with one model call (`schema` is their JSON schema), pass them
        through `prepare`, save the row through the family's write path, and count `resource`
        done. Asked again for a resource it already saved (a retried task), it returns that row."""

    def media(
        self,
        *,
        resource: str,
        modality: str,
        render: Callable[[], bytes],
        mime_type: str,
        file_name: str,
        artifact: Any,
    ) -> dict:
        """Render a media file, store it against `artifact` and announce it; returns its handle."""


@dataclass(frozen=True)
class Generator:
    """How a family's rows are generated from instructions."""

    # Does the work through the context and returns the row the run produced.
    run: Callable[[GenerationContext], Any]
    # The names of the resources a request will complete, known up front for progress totals.
    resources: Callable[[dict], list[str]]
    modalities: tuple[str, ...] = ("text",)


def backend():
    return registry.capabilities[CAPABILITY]


def generatable(family: Family) -> bool:
    return family.generator is not None and CAPABILITY in registry.capabilities


def streamable(family: Family) -> bool:
    return CAPABILITY in registry.capabilities


# -- request and response shapes ---------------------------------------------------------------


class InstructionsField(serializers.ListField):
    """A list of instruction strings; a single string is accepted as a list of one."""

    def __init__(self, **kwargs):
        kwargs.setdefault("child", serializers.CharField(max_length=4000))
        kwargs.setdefault("max_length", 50)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = [data]
        return super().to_internal_value(data)


class MomentField(serializers.DateTimeField):
    """A datetime, or a bare date (its start; with end_of_day, its last instant)."""

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        if isinstance(value, str) and len(value) == 10:
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                self.fail("invalid", format="YYYY-MM-DD or an ISO 8601 datetime")
            moment = dt.datetime.combine(day, dt.time.max if self.end_of_day else dt.time.min)
            return timezone.make_aware(moment, dt.UTC)
        return super().to_internal_value(value)


class ArtifactGenerateConfig(serializers.Serializer):
    operations = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, max_length=50
    )
    params = JSONObjectField(required=False, help_text="Field values to use as given.")
    dangerous = serializers.BooleanField(required=False, default=False)


@cache
def generate_request(family: Family) -> type:
    modalities = family.generator.modalities if family.generator else ("text",)

    what = at_least_one(
        "instructions", "title", message="Say what to generate (instructions, or a title)."
    )
    return make(
        f"{camel(family.name)}GenerateRequest",
        {
            "instructions": InstructionsField(required=False),
            "config": ArtifactGenerateConfig(required=False),
            "modality": serializers.ChoiceField(choices=modalities, required=False),
            "title": serializers.CharField(required=False, max_length=300),
            "group_id": serializers.UUIDField(required=False, allow_null=True),
            "client_run_id": serializers.CharField(
                required=False, max_length=100, help_text="Your id for the run: retries reuse it."
            ),
        },
        rules=(what,),
    )


class ProducedMedia(serializers.Serializer):
    modality = serializers.CharField()
    upload_id = serializers.UUIDField()
    file_size = serializers.IntegerField()
    mime_type = serializers.CharField()


class ArtifactGenerateResponse(serializers.Serializer):
    group_id = serializers.UUIDField()
    run_id = serializers.UUIDField()
    produced_media = ProducedMedia(many=True)


class ArtifactGenerationsRequest(serializers.Serializer):
    page_limit = serializers.IntegerField(required=False, min_value=1, max_value=200)
    page_size = serializers.IntegerField(
        required=False, min_value=1, max_value=200, help_text="Same as page_limit."
    )
    page_offset = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_INT, default=0
    )
    search = serializers.CharField(required=False, allow_blank=True, max_length=300)
    date_from = MomentField(required=False, allow_null=True)
    date_to = MomentField(required=False, allow_null=True, end_of_day=True)


class ArtifactGenerationItem(serializers.Serializer):
    group_id = serializers.UUIDField()
    session_id = serializers.UUIDField()
    group_name = serializers.CharField()
    created_at = serializers.DateTimeField()


class ArtifactGenerationsResponse(serializers.Serializer):
    items = ArtifactGenerationItem(many=True)
    total_count = serializers.IntegerField()


class ArtifactWatchRequest(RuledSerializer):
    run_id = serializers.UUIDField(required=False, allow_null=True)
    group_id = serializers.UUIDField(required=False, allow_null=True)
    last_event_id = serializers.CharField(
        required=False, allow_blank=True, max_length=300, help_text="Same as Last-Event-ID."
    )

    given_rules = (at_least_one("run_id", "group_id"),)


class ArtifactWatchFrame(serializers.Serializer):
    """One Server-Sent Events frame of the stream watch answers (text/event-stream)."""

    event = serializers.CharField(help_text="The event's type, e.g. GenerationProgressEvent.")
    data = serializers.CharField(
        help_text="A JSON object: group_id, run_id and (stored events only) seq, then the "
        "event's own fields. Transient events (text deltas) have no seq and no id."
    )
    id = serializers.CharField(
        required=False,
        help_text="`<channel>:<n>` on stored events: send it back as Last-Event-ID (or "
        "last_event_id) to resume after it.",
    )


def watch_frames(family: Family) -> dict:
    return {(200, "text/event-stream"): ArtifactWatchFrame}


@cache
def group_request(family: Family) -> type:
    return make(
        f"{camel(family.name)}GroupRequest",
        {
            "group_id": serializers.UUIDField(required=False, allow_null=True),
            family.id_field: serializers.UUIDField(required=False, allow_null=True),
            "name": serializers.CharField(required=False, allow_blank=True, max_length=300),
        },
    )


class ArtifactGroupResponse(serializers.Serializer):
    group_id = serializers.UUIDField()
    session_id = serializers.UUIDField()
    group_name = serializers.CharField()
    family = serializers.CharField()
    artifact_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    run_count = serializers.IntegerField()


# -- the ops -----------------------------------------------------------------------------------


class GenerationOpsMixin:
    """generate, generations, watch and group; each delegates to the registered implementation."""

    @op(
        "generate",
        request=generate_request,
        response=ArtifactGenerateResponse,
        needs_model=True,
        when=generatable,
        roles=writers,
    )
    def generate(self, request):
        """Start generating from instructions; answers group_id and run_id at once (watch follows)."""
        data = self.parse()
        body = backend().generate(
            request=request._request, actor=self.actor, family=self.family, data=data
        )
        return Response(body)

    @op(
        "generations",
        request=ArtifactGenerationsRequest,
        response=ArtifactGenerationsResponse,
        needs_model=True,
        when=generatable,
    )
    def generations(self, request):
        """The actor's generation groups for this family (admins: the organization's), newest first."""
        params = self.parse()
        return Response(backend().generations(actor=self.actor, family=self.family, params=params))

    @op(
        "watch",
        methods=("get", "post"),
        request=ArtifactWatchRequest,
        response=watch_frames,
        needs_model=True,
        when=streamable,
    )
    def watch(self, request):
        """Server-Sent Events of one run (ends after its terminal event) or of a whole group."""
        merged = {**request.query_params.dict(), **self.body()}
        serializer = ArtifactWatchRequest(data=merged)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        last_event_id = (
            data.get("last_event_id")
            or request.META.get("HTTP_LAST_EVENT_ID")
            or request.query_params.get("lastEventId")
            or ""
        )
        return backend().watch(
            request=request._request,
            actor=self.actor,
            family=self.family,
            run_id=data.get("run_id"),
            group_id=data.get("group_id"),
            last_event_id=last_event_id,
        )

    @op(
        "group",
        request=group_request,
        response=ArtifactGroupResponse,
        needs_model=True,
        when=streamable,
    )
    def group(self, request):
        """Resolve (or mint) the actor's group for this family: the key of its streaming hub."""
        data = self.parse()
        artifact_id = data.get(self.family.id_field)
        if artifact_id is not None:
            self.access(artifact_id)
        body = backend().group(
            request=request._request,
            actor=self.actor,
            family=self.family,
            group_id=data.get("group_id"),
            artifact_id=artifact_id,
            name=data.get("name") or "",
        )
        return Response(body)

    def perform_content_negotiation(self, request, force=False):
        # EventSource clients send Accept: text/event-stream; watch answers JSON errors anyway.
        return super().perform_content_negotiation(request, force=force or self.action == "watch")
