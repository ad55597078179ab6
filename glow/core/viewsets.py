"""ArtifactViewSet: the universal ops every registered family gets, written once."""

from __future__ import annotations

from rest_framework import viewsets
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from glow.core import selectors, services
from glow.core import serializers as shapes
from glow.core.errors import ApplicationError, PermissionDenied
from glow.core.generation import GenerationOpsMixin
from glow.core.identity import actor_of
from glow.core.media_ops import MediaOpsMixin
from glow.core.ops import OpSpec, op, resolve, writers
from glow.core.registry import Family, registry
from glow.core.schema import ArtifactAutoSchema


class ArtifactViewSet(GenerationOpsMixin, MediaOpsMixin, viewsets.ViewSet):
    """Thin: parse the body, call one selector or service, serialize."""

    family: Family = None
    schema = ArtifactAutoSchema()
    # JSON bodies only; upload ops declare multipart themselves (so the schema is exact).
    parser_classes = [JSONParser]
    disabled_ops: frozenset[str] = frozenset()
    # A family's own archive write, (selection, archived) -> (count, learner ids to invalidate);
    # None: the plain UPDATE. Wrap it in staticmethod.
    archive_write = None

    # -- plumbing shared by every op ------------------------------------------------------

    def initial(self, request, *args, **kwargs):
        # DRF looks handlers up by HTTP method name, so an unmapped method (TRACE, GET on a POST op)
        # would reach an op that happens to be called `trace` or `get`: refuse it first.
        if self.action is None:
            raise MethodNotAllowed(request.method)
        super().initial(request, *args, **kwargs)
        # After authentication: lower apps (system's session books) see every API request.
        registry.run_hooks("request", request=request._request, actor=self.actor)
        self.check_op_role()

    def check_op_role(self) -> None:
        """The one role gate: the op's declared roles, before its body parses anything. A role
        refusal is 403 (the role is no secret); which rows an allowed role reaches is scope,
        answered 404 by the selectors (artifact_access) for missing and forbidden alike."""
        spec = self.spec(self.action)
        if spec is not None and not spec.allows(self.family, self.actor):
            roles = spec.roles_for(self.family)
            raise PermissionDenied(
                f"Your role may not call {self.family.name}/{spec.name} "
                f"(it is for: {', '.join(roles)}).",
                extra={"allowed_roles": list(roles)},
            )

    def _allowed_methods(self) -> list[str]:
        # `Allow` names the methods the op is mounted for (HEAD with GET) and OPTIONS (DRF's
        # metadata), not every handler attribute: invocation's `trace` op is no HTTP TRACE.
        return [*(method.upper() for method in getattr(self, "action_map", {})), "OPTIONS"]

    @classmethod
    def op_specs(cls) -> list[OpSpec]:
        specs, seen = [], set()
        for klass in cls.__mro__:
            for attr, value in vars(klass).items():
                spec = getattr(value, "glow_op", None)
                if spec is None or attr in seen:
                    continue
                seen.add(attr)
                if spec.name in cls.disabled_ops or (spec.needs_model and cls.family.model is None):
                    continue
                if spec.when is not None and not spec.when(cls.family):
                    continue
                specs.append(spec)
        return sorted(specs, key=lambda spec: spec.name)

    @property
    def actor(self):
        return actor_of(self.request)

    def body(self) -> dict:
        data = self.request.data
        if hasattr(data, "dict"):
            data = data.dict()
        if not isinstance(data, dict):
            raise ApplicationError("The request body must be a JSON object.", code="invalid_body")
        return data

    def parse(self, shape=None) -> dict:
        """Validate the body against the op's request shape (or `shape`). A key the op does not
        know answers 400 naming it: a typo (`test_id` for `test_ids`) must never widen a search."""
        shape = shape or self.schema_request(self.action)
        if shape is None:
            return self.body()
        raw = self.body()
        body = shapes.with_aliases(shape, raw)
        serializer = shape(data=body, context={"request": self.request})
        shapes.refuse_unknown(serializer, raw)
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def output(self, instance, shape=None) -> dict:
        shape = shape or self.family.output_serializer
        return shape(instance, context={"request": self.request, "actor": self.actor}).data

    def spec(self, action: str) -> OpSpec | None:
        method = getattr(type(self), action, None)
        return getattr(method, "glow_op", None)

    def schema_request(self, action: str):
        spec = self.spec(action)
        return resolve(spec.request, self.family) if spec else None

    def schema_response(self, action: str):
        spec = self.spec(action)
        return resolve(spec.response, self.family) if spec else None

    def access(self, pk, *, for_update: bool = False):
        return selectors.artifact_access(
            actor=self.actor, family=self.family, pk=pk, for_update=for_update
        )

    # -- universal ops ----------------------------------------------------------------------

    @op("get", request=shapes.id_request, response=lambda f: f.output_serializer, needs_model=True)
    def get_op(self, request):
        """Get one row."""
        data = self.parse()
        return Response(self.output(self.access(data["pk"])))

    @op("search", request=shapes.search_request, response=shapes.search_response, needs_model=True)
    def search(self, request):
        """Search rows with filters, facets and pagination."""
        params = self.parse()
        result = selectors.artifact_search(actor=self.actor, family=self.family, params=params)
        return Response(self.search_body(result))

    def search_body(self, result: selectors.SearchResult) -> dict:
        body = {
            "actor_name": self.actor.name,
            self.family.plural: self.family.output_serializer(
                result.rows, many=True, context={"request": self.request, "actor": self.actor}
            ).data,
            "total_count": result.total_count,
        }
        for name, section in result.facets.items():
            body[f"{name}_filter"] = section
        return body

    @op(
        "archive",
        request=shapes.archive_request,
        response=shapes.archive_response,
        needs_model=True,
        roles=writers,
    )
    def archive(self, request):
        """Archive or unarchive rows: explicit ids, or all: true with flat filters minus excluded_ids."""
        count, invalidate = services.artifact_archive_bulk(
            actor=self.actor,
            family=self.family,
            body=self.parse(),
            archive=self.archive_write,
            request=self.request._request,
        )
        return Response(
            {
                "updated_count": count,
                "profile_ids_to_invalidate": [str(pk) for pk in invalidate],
            }
        )

    @op(
        "draft",
        request=shapes.draft_request,
        response=shapes.draft_response,
        needs_model=True,
        roles=writers,
    )
    def draft(self, request):
        """Save unpublished edits pinned to the version they start from."""
        data = self.parse()
        draft = services.draft_save(
            actor=self.actor,
            family=self.family,
            version=data["version"],
            data=data["data"],
            artifact_id=data.get(self.family.id_field) or data.get("id"),
            draft_id=data.get("draft_id"),
        )
        return Response(
            {
                "draft_id": draft.id,
                self.family.id_field: draft.artifact_id,
                "version": draft.base_version,
            }
        )

    @op("drafts", request=shapes.EmptyRequest, response=shapes.drafts_response, needs_model=True)
    def drafts(self, request):
        """List the actor's drafts of this family."""
        rows = list(
            selectors.drafts_of(actor=self.actor, family=self.family)[: selectors.MAX_PAGE_SIZE]
        )
        items = [
            {
                "draft_id": draft.id,
                self.family.id_field: draft.artifact_id,
                "version": draft.base_version,
                "data": draft.data,
                "updated_at": draft.updated_at,
            }
            for draft in rows
        ]
        return Response({"drafts": items, "total_count": len(items)})

    @op(
        "publish",
        request=shapes.publish_request,
        response=lambda f: f.output_serializer,
        needs_model=True,
        roles=writers,
    )
    def publish(self, request):
        """Publish a draft, or apply data at a version (no id: create a row)."""
        instance = services.artifact_publish(
            actor=self.actor, family=self.family, body=self.parse()
        )
        return Response(self.output(instance))

    @op("title", request=shapes.title_request, response=shapes.title_response, needs_model=True)
    def title(self, request):
        """Read or set a row's title."""
        data = self.parse()
        if data.get("title"):
            instance = self.retitle_write(
                actor=self.actor,
                family=self.family,
                pk=data["pk"],
                title=data["title"],
                version=data.get("version"),
            )
        else:
            instance = self.access(data["pk"])
        return Response(
            {
                self.family.id_field: instance.pk,
                "title": instance.title,
                "version": instance.version,
            }
        )

    def retitle_write(self, **change):
        """The title op's write; a family whose rows can refuse a new title overrides it."""
        return services.artifact_retitle(**change)

    @op("context", request=shapes.id_request, response=shapes.context_response, needs_model=True)
    def context(self, request):
        """The row rendered as text, as the AI runtime sees it."""
        instance = self.access(self.parse()["pk"])
        text = self.family.context(instance) if self.family.context else instance.description
        return Response(
            {self.family.id_field: instance.pk, "title": instance.title, "context": text}
        )

    @op("problem", request=shapes.id_request, response=shapes.problem_response, needs_model=True)
    def problem(self, request):
        """What stops the row from working (e.g. a simulation without scenarios)."""
        instance = self.access(self.parse()["pk"])
        problems = self.family.problems(instance) if self.family.problems else []
        return Response(
            {self.family.id_field: instance.pk, "ok": not problems, "problems": problems}
        )

    @op("refresh", request=shapes.EmptyRequest, response=shapes.RefreshResponse)
    def refresh(self, request):
        """Recompute this family's derived data for the actor's organization and name the cache tags."""
        views = [result for result in self.refresh_views() if result]
        return Response(
            {
                "success": True,
                "refreshed_views": views,
                "invalidated_tags": [self.family.name, "artifacts"],
            }
        )

    def refresh_views(self) -> list[str]:
        """Families with denormalised data override this; the catalog has none."""
        return []

    @op("docs", request=shapes.DocsRequest, response=shapes.DocsResponse)
    def docs(self, request):
        """Documentation of this family composed from the registry."""
        from glow.core.docs import family_docs

        data = self.parse()
        artifact = None
        if data.get("entity_id") and self.family.model is not None:
            instance = self.access(data["entity_id"])
            artifact = self.output(instance)
        return Response(family_docs(family=self.family, viewset=type(self), artifact=artifact))


def viewset_for(family: Family) -> type[ArtifactViewSet]:
    """The family's viewset, plus the op mixins higher apps contribute to it (family.extra
    "op_mixins": e.g. attempts adds rubric/calibration without catalog importing attempts)."""
    base = family.viewset or ArtifactViewSet
    mixins = tuple(family.extra.get("op_mixins", ()))
    return type(f"{shapes.camel(family.name)}ViewSet", (*mixins, base), {"family": family})
