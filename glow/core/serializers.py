"""Request and response shapes of the universal ops, generated per family so the schema is exact."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import cache

import django_filters
from rest_framework import serializers

from glow.core.errors import ApplicationError
from glow.core.filters import UUIDListFilter
from glow.core.registry import Family


def camel(name: str) -> str:
    return "".join(
        part.capitalize() for part in name.replace("-", "_").replace("/", "_").split("_")
    )


# The largest version, page or offset a request may name: versions are 32-bit columns and
# page * page_size must fit an OFFSET; beyond it the answer is a 400, not the database's 500.
MAX_INT = 2**31 - 1


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def given(value) -> bool:
    """A key counts as given when it holds something: not null, "" or [], and a flag only when
    true (`all: true`). An empty object is given (`data: {}` is a row's data)."""
    if isinstance(value, bool):
        return value
    return value is not None and value != "" and value != []


@dataclass(frozen=True)
class GivenRule:
    """Which keys a body must give, declared once on its request shape (`given_rules`): the
    validation below and the schema (glow.core.schema: `oneOf`/`anyOf` of `required`) both read
    it, so they cannot drift. Each branch is (keys given, keys absent); the body matches one
    branch exactly (`exactly`) or at least one."""

    branches: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...]
    exactly: bool
    message: str

    def holds(self, attrs: dict) -> bool:
        matched = sum(
            all(given(attrs.get(name)) for name in need)
            and not any(given(attrs.get(name)) for name in absent)
            for need, absent in self.branches
        )
        return matched == 1 if self.exactly else matched >= 1

    def errors(self) -> dict:
        names = dict.fromkeys(need[0] for need, _ in self.branches)
        return {name: [self.message] for name in names}


def _or(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def exactly_one(*names: str, message: str = "") -> GivenRule:
    branches = tuple(((name,), ()) for name in names)
    return GivenRule(branches, True, message or f"Give exactly one of {_or(names)}.")


def at_least_one(*names: str, message: str = "") -> GivenRule:
    branches = tuple(((name,), ()) for name in names)
    return GivenRule(branches, False, message or f"Give {_or(names)}.")


@dataclass(frozen=True)
class Variants:
    """Keys of a write shape whose schema depends on the value of another key, `on` (`absent`
    when it is not given): `shapes` maps each value to those keys' JSON Schemas. The schema states
    it on the whole shape as `oneOf` of branches that each fix `on` (glow.core.schema); an edit's
    partial data is judged against its stored row, so its shape does not. The model checks it."""

    on: str
    absent: str
    shapes: dict[str, dict[str, dict]]


# A request shape with `given_rules`: a body that breaks one answers 400 naming the keys. (A
# comment, not a docstring: the schema would show a docstring as every subclass's description.)
class RuledSerializer(serializers.Serializer):
    given_rules: tuple[GivenRule, ...] = ()

    def to_internal_value(self, data):
        attrs = super().to_internal_value(data)
        for rule in self.given_rules:
            if not rule.holds(attrs):
                raise serializers.ValidationError(rule.errors())
        return attrs


class JSONObjectField(serializers.DictField):
    """A JSON object to store as given: PostgreSQL's jsonb holds no U+0000, so one is refused in
    its keys and text (the schema states both: glow.core.schema maps this field)."""

    default_error_messages = {"null_character": "Null characters (U+0000) are not allowed."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if _has_nul(value):
            self.fail("null_character")
        return value


class JSONValueField(serializers.JSONField):
    """Any JSON value to store as given, refused with U+0000 in it as JSONObjectField is."""

    default_error_messages = JSONObjectField.default_error_messages

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if _has_nul(value):
            self.fail("null_character")
        return value


class MapField(serializers.DictField):
    """A JSON object of at most `max_length` keys (the schema's maxProperties)."""

    default_error_messages = {"max_length": "At most {max_length} keys."}

    def __init__(self, *, max_length: int | None = None, **kwargs):
        self.max_length = max_length
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if self.max_length is not None and len(value) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return value


class OutputModelSerializer(serializers.ModelSerializer):
    """An output shape of rows: every field is read-only, so the schema names each one required
    (rendered, a row has them all; a writable field with a model default would read optional)."""

    def get_extra_kwargs(self):
        extra = super().get_extra_kwargs()
        for name in self.Meta.fields:
            extra[name] = {**extra.get(name, {}), "read_only": True}
        return extra

    def include_extra_kwargs(self, kwargs, extra_kwargs):
        # DRF drops allow_blank from read-only fields, but a blank URL is still rendered ""
        # and the schema must say so (else "" reads as an invalid uri).
        allow_blank = kwargs.get("allow_blank", False)
        kwargs = super().include_extra_kwargs(kwargs, extra_kwargs)
        if allow_blank:
            kwargs["allow_blank"] = True
        return kwargs


class StoredJSONField(serializers.JSONField):
    """Stored JSON rendered as it is, so a row edited by hand in the admin never makes a 500; the
    schema documents `shape`, what the API's own writes store (glow.core.schema maps it)."""

    def __init__(self, shape: serializers.Field, **kwargs):
        self.shape = shape
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)


class StrictUUIDField(serializers.UUIDField):
    """A UUID given as a string: DRF would read a JSON number as UUID(int=n), hiding a wrong type.
    An optional one given as "" is absent, as null is (`given`: "" is not given)."""

    def validate_empty_values(self, data):
        if data == "" and self.allow_null:
            return True, None
        return super().validate_empty_values(data)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class FacetOption(serializers.Serializer):
    id = serializers.CharField()
    label = serializers.CharField()
    count = serializers.IntegerField()


class FacetSection(serializers.Serializer):
    options = FacetOption(many=True)
    selected = serializers.ListField(child=serializers.CharField())


class RefreshResponse(serializers.Serializer):
    success = serializers.BooleanField()
    refreshed_views = serializers.ListField(child=serializers.CharField())
    invalidated_tags = serializers.ListField(child=serializers.CharField())


class EmptyRequest(serializers.Serializer):
    pass


class DocsRequest(serializers.Serializer):
    entity_id = StrictUUIDField(required=False, allow_null=True)


class OperationInfo(serializers.Serializer):
    name = serializers.CharField()
    method = serializers.CharField()
    path = serializers.CharField()
    summary = serializers.CharField(allow_blank=True)
    roles = serializers.ListField(child=serializers.CharField())


class DocsEntry(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    description = serializers.CharField(allow_blank=True)


class DocsResponse(serializers.Serializer):
    name = serializers.CharField()
    type = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    artifact = serializers.DictField(allow_null=True, required=False)
    entries = DocsEntry(many=True)
    resources = DocsEntry(many=True)
    permissions = OperationInfo(many=True)
    api_operations = OperationInfo(many=True)
    page_metadata = serializers.DictField(allow_null=True, required=False)


class Problem(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(allow_null=True, required=False)


def _filter_field(flt) -> serializers.Field:
    if isinstance(flt, UUIDListFilter):
        return serializers.ListField(child=StrictUUIDField(), required=False, allow_null=True)
    if isinstance(flt, django_filters.UUIDFilter):
        return StrictUUIDField(required=False, allow_null=True)
    if isinstance(flt, django_filters.ChoiceFilter):
        # "" is the filter's "any" choice, as absent or null is.
        return serializers.ChoiceField(
            choices=flt.extra["choices"], required=False, allow_null=True, allow_blank=True
        )
    if isinstance(flt, django_filters.BooleanFilter):
        return serializers.BooleanField(required=False, allow_null=True)
    if isinstance(flt, django_filters.IsoDateTimeFilter | django_filters.DateTimeFilter):
        return serializers.DateTimeField(required=False, allow_null=True)
    if isinstance(flt, django_filters.NumberFilter):
        return serializers.FloatField(required=False, allow_null=True)
    return serializers.CharField(required=False, allow_null=True, allow_blank=True)


def filter_fields(family: Family, *, prefix: str = "") -> dict[str, serializers.Field]:
    fields = {}
    if family.filterset is not None:
        for name, flt in family.filterset.base_filters.items():
            fields[f"{prefix}{name}"] = _filter_field(flt)
    for facet in family.facets:
        if facet.search_param:
            fields.setdefault(
                facet.search_param,
                serializers.CharField(required=False, allow_blank=True, allow_null=True),
            )
    return fields


def make(
    name: str,
    fields: dict,
    base: type = serializers.Serializer,
    validate=None,
    aliases: dict[str, str] | None = None,
    rules: tuple[GivenRule, ...] = (),
) -> type:
    """A request/response shape; `aliases` maps an accepted spelling to the documented key;
    `rules` say which keys must be given (GivenRule)."""
    attrs = dict(fields)
    if rules:
        attrs["given_rules"] = rules
        if base is serializers.Serializer:
            base = RuledSerializer
    if validate is not None:
        attrs["validate"] = validate
    if aliases:
        attrs["field_aliases"] = aliases
    return type(name, (base,), attrs)


def with_aliases(shape: type, body: dict) -> dict:
    """Copy an alias's value to its documented key when only the alias was sent (`id` -> `persona_id`)."""
    aliases = getattr(shape, "field_aliases", None)
    if not aliases:
        return body
    body = dict(body)
    for alias, canonical in aliases.items():
        if body.get(canonical) is None and body.get(alias) is not None:
            body[canonical] = body[alias]
    return body


def refuse_unknown(serializer, body: dict) -> None:
    """400 naming every key the request shape does not take, with the closest known one."""
    known = set(serializer.fields) | set(getattr(serializer, "field_aliases", None) or {})
    unknown = sorted(key for key in body if key not in known)
    if not unknown:
        return
    fields = {}
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.7)
        fields[key] = [f"Unknown field; did you mean {close[0]!r}?" if close else "Unknown field."]
    names = ", ".join(repr(key) for key in unknown)
    raise ApplicationError(f"This op does not take {names}.", code="unknown_field", fields=fields)


def _one_id(family: Family):
    def validate(self, attrs):
        attrs["pk"] = attrs[family.id_field]
        return attrs

    return validate


def id_fields(family: Family) -> dict:
    """`<family>_id` is the documented key; `id` is accepted too (copied over before validation)."""
    return {
        family.id_field: StrictUUIDField(),
        "id": StrictUUIDField(required=False, help_text=f"Same as {family.id_field}."),
    }


def id_aliases(family: Family) -> dict[str, str]:
    return {"id": family.id_field}


@cache
def id_request(family: Family) -> type:
    return make(
        f"{camel(family.name)}IdRequest",
        id_fields(family),
        validate=_one_id(family),
        aliases=id_aliases(family),
    )


@cache
def search_request(family: Family) -> type:
    fields = {
        **filter_fields(family),
        "is_archived": serializers.BooleanField(required=False, allow_null=True),
        "show_archived": serializers.BooleanField(required=False, allow_null=True),
        "page_size": serializers.IntegerField(required=False, min_value=1, max_value=10_000),
        "page_offset": serializers.IntegerField(required=False, min_value=0, max_value=MAX_INT),
        "page": serializers.IntegerField(required=False, min_value=0, max_value=MAX_INT),
    }
    return make(f"{camel(family.name)}SearchRequest", fields)


@cache
def search_response(family: Family) -> type:
    fields = {
        "actor_name": serializers.CharField(allow_null=True),
        family.plural: family.output_serializer(many=True),
        "total_count": serializers.IntegerField(),
    }
    for facet in family.facets:
        fields[f"{facet.name}_filter"] = FacetSection()
    return make(f"{camel(family.name)}SearchResponse", fields)


@cache
def archive_request(family: Family) -> type:
    fields = {
        "archived": serializers.BooleanField(default=True),
        family.ids_field: serializers.ListField(
            child=StrictUUIDField(), required=False, allow_null=True
        ),
        "ids": serializers.ListField(child=StrictUUIDField(), required=False, allow_null=True),
        "all": serializers.BooleanField(required=False, default=False),
        "excluded_ids": serializers.ListField(
            child=StrictUUIDField(), required=False, allow_null=True
        ),
        **filter_fields(family),
        **filter_fields(family, prefix="filter_"),
    }
    names_rows = at_least_one(
        family.ids_field,
        "ids",
        "all",
        message=f"Name the rows: {family.ids_field}, or all: true with filters.",
    )
    return make(f"{camel(family.name)}ArchiveRequest", fields, rules=(names_rows,))


@cache
def archive_response(family: Family) -> type:
    return make(
        f"{camel(family.name)}ArchiveResponse",
        {
            "updated_count": serializers.IntegerField(),
            "profile_ids_to_invalidate": serializers.ListField(
                child=serializers.CharField(), allow_null=True
            ),
        },
    )


@cache
def draft_request(family: Family) -> type:
    shape = make(
        f"{camel(family.name)}DraftRequest",
        {
            family.id_field: StrictUUIDField(required=False, allow_null=True),
            "id": StrictUUIDField(required=False, allow_null=True),
            "draft_id": StrictUUIDField(required=False, allow_null=True),
            "version": serializers.IntegerField(min_value=0, max_value=MAX_INT),
            "data": JSONObjectField(),
        },
    )
    shape.data_shape = family.write_serializer  # the schema documents `data` as its partial shape
    return shape


@cache
def draft_response(family: Family) -> type:
    return make(
        f"{camel(family.name)}DraftResponse",
        {
            "draft_id": serializers.UUIDField(),
            family.id_field: serializers.UUIDField(allow_null=True),
            "version": serializers.IntegerField(),
        },
    )


@cache
def drafts_response(family: Family) -> type:
    item = make(
        f"{camel(family.name)}DraftItem",
        {
            "draft_id": serializers.UUIDField(),
            family.id_field: serializers.UUIDField(allow_null=True),
            "version": serializers.IntegerField(),
            "data": serializers.DictField(),
            "updated_at": serializers.DateTimeField(),
        },
    )
    return make(
        f"{camel(family.name)}DraftsResponse",
        {"drafts": item(many=True), "total_count": serializers.IntegerField()},
    )


@cache
def publish_request(family: Family) -> type:
    # A draft; or data that creates a row (no id) or updates one at the version it started from.
    # A family whose rows come from their own op (test/start) has no branch that creates one,
    # and one the API does not edit (no write_serializer) none that takes data.
    edits = family.write_serializer is not None
    creates = edits and family.creatable
    branches = [(("draft_id",), ())]
    if creates:
        branches.append((("data",), (family.id_field, "id")))
    if edits:
        branches += [(("data", "version", family.id_field), ()), (("data", "version", "id"), ())]
    if creates:
        message = "Give draft_id, or data (with version when naming a row)."
    elif edits:
        message = f"Give draft_id, or data with version and {family.id_field}."
    else:
        message = f"Give draft_id: {family.plural} are not edited through data."
    rule = GivenRule(tuple(branches), exactly=False, message=message)

    shape = make(
        f"{camel(family.name)}PublishRequest",
        {
            "draft_id": StrictUUIDField(required=False, allow_null=True),
            family.id_field: StrictUUIDField(required=False, allow_null=True),
            "id": StrictUUIDField(required=False, allow_null=True),
            "version": serializers.IntegerField(
                required=False, allow_null=True, min_value=0, max_value=MAX_INT
            ),
            "data": JSONObjectField(required=False, allow_null=True),
        },
        rules=(rule,),
    )
    # The schema documents `data` per branch as this shape: whole to create, partial to edit.
    shape.data_shape = family.write_serializer
    return shape


@cache
def title_request(family: Family) -> type:
    return make(
        f"{camel(family.name)}TitleRequest",
        {
            **id_fields(family),
            # Absent or null reads the title; a blank one is refused rather than read.
            "title": serializers.CharField(required=False, allow_null=True, max_length=300),
            "version": serializers.IntegerField(
                required=False, allow_null=True, min_value=0, max_value=MAX_INT
            ),
        },
        validate=_one_id(family),
        aliases=id_aliases(family),
    )


@cache
def title_response(family: Family) -> type:
    return make(
        f"{camel(family.name)}TitleResponse",
        {
            family.id_field: serializers.UUIDField(),
            "title": serializers.CharField(),
            "version": serializers.IntegerField(),
        },
    )


@cache
def context_response(family: Family) -> type:
    return make(
        f"{camel(family.name)}ContextResponse",
        {
            family.id_field: serializers.UUIDField(),
            "title": serializers.CharField(),
            "context": serializers.CharField(allow_blank=True),
        },
    )


@cache
def problem_response(family: Family) -> type:
    return make(
        f"{camel(family.name)}ProblemResponse",
        {
            family.id_field: serializers.UUIDField(),
            "ok": serializers.BooleanField(),
            "problems": Problem(many=True),
        },
    )
