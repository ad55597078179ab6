"""OpenAPI post-processing: every op documents the error shape for 400/401/404 (schemathesis checks it)."""

import copy

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import serializers

from glow.core.serializers import JSONObjectField, JSONValueField

# DRF refuses U+0000 in every text field (PostgreSQL cannot store it) and strips surrounding
# whitespace before its blank check: the patterns say both, so a client knows before sending.
NO_NUL = r"^[^\u0000]*$"
NO_NUL_NOT_BLANK = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


def text_pattern(field) -> str | None:
    if getattr(field, "allow_blank", True) or not getattr(field, "trim_whitespace", False):
        return NO_NUL
    return NO_NUL_NOT_BLANK


def decimal_pattern(field) -> str:
    """A decimal as text, as DecimalField takes it: at least one digit, no more digits than it
    keeps on either side of the point, and no sign when it refuses negatives."""
    places = field.decimal_places or 0
    whole = (field.max_digits - places) if field.max_digits is not None else None
    digits = rf"[0-9]{{1,{whole}}}" if whole else "[0-9]+" if whole is None else "0"
    fraction = rf"(?:\.[0-9]{{1,{places}}})?" if places else ""
    sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
    return rf"^{sign}{digits}{fraction}$"


JSON_VALUE_REF = {"$ref": "#/components/schemas/JSONValue"}
# OpenAPI 3.0 has no `propertyNames`: the rule on keys is stated as an extension (the fuzz test's
# hooks read it as `propertyNames`), and in words.
JSON_KEYS = {"x-propertyNames": {"type": "string", "pattern": NO_NUL}}
JSON_OBJECT_SCHEMA = {"type": "object", "additionalProperties": JSON_VALUE_REF, **JSON_KEYS}
# What JSONObjectField and JSONValueField store: any JSON but U+0000, which jsonb cannot hold.
JSON_VALUE_SCHEMA = {
    "description": "Any JSON value, with no U+0000 in its text or in its keys.",
    "nullable": True,
    "oneOf": [
        {"type": "string", "pattern": NO_NUL},
        {"type": "number"},
        {"type": "boolean"},
        {"type": "array", "items": JSON_VALUE_REF},
        JSON_OBJECT_SCHEMA,
    ],
}

FIELD_ERRORS_REF = {"$ref": "#/components/schemas/FieldErrors"}
# What the exception handler puts under `fields`: DRF's messages per input, nested like the input.
FIELD_ERRORS_SCHEMA = {
    "description": "Messages about one input: a message, a list of them, or for nested input "
    "(a list, an object) the same by index or key.",
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": FIELD_ERRORS_REF},
        {"type": "object", "additionalProperties": FIELD_ERRORS_REF},
    ],
}

# Every error body is errors.error_body(): these keys and no others.
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "e.g. invalid, not_found, version_conflict."},
        "fields": {
            "type": "object",
            "additionalProperties": FIELD_ERRORS_REF,
            "description": "Messages by input name; empty unless the input is at fault.",
        },
        "current_version": {
            "type": "integer",
            "nullable": True,
            "description": "version_conflict (409): the row's version now.",
        },
        "retry_after": {"type": "integer", "description": "429: seconds to wait."},
        "run_id": {
            "type": "string",
            "format": "uuid",
            "description": "model_error (502): the failed model run.",
        },
        "user_message_id": {
            "type": "string",
            "format": "uuid",
            "description": "model_error (502) of attempt/message: the learner's message, kept.",
        },
    },
    "required": ["detail", "code", "fields"],
    "additionalProperties": False,
}

ERROR_STATUSES = {
    "400": "Bad input: a missing or ill-typed field, named in `fields`.",
    "401": "No, a wrong, or a revoked API key.",
    "403": "The actor's role may not do this.",
    "404": "Unknown id, or an id of another organization.",
    "409": "A stale version or an illegal state transition.",
    "422": "The row's state machine refuses the operation.",
    "502": "The AI model failed or timed out; what was saved before the call stays saved.",
    "405": "The op does not take this HTTP method.",
    "413": "The body or file is larger than the server accepts.",
    "415": "The body is not in a media type the op accepts (JSON; multipart for uploads).",
    "429": "Rate limit for this API key; see Retry-After.",
    "503": "A backing service (database, broker) is unavailable; retry later.",
}


def document_error_responses(result, generator, request, public):
    components = result.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    components["FieldErrors"] = FIELD_ERRORS_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    # Each status described once under components.responses and referred to by every op: the
    # same dozen bodies inline in ~630 ops were most of the schema's megabytes.
    shared = result["components"].setdefault("responses", {})
    for status, description in ERROR_STATUSES.items():
        shared[f"Error{status}"] = {
            "description": description,
            "content": {"application/json": {"schema": ref}},
        }
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in {"get", "post", "put", "patch", "delete"}:
                continue
            responses = operation.setdefault("responses", {})
            # Uploads answer 201 Created with the same body as their documented 200.
            if "upload" in operation.get("operationId", "") and "200" in responses:
                responses.setdefault("201", responses["200"])
            for status in ERROR_STATUSES:
                responses.setdefault(status, {"$ref": f"#/components/responses/Error{status}"})
    return result


def _given_schema(prop: dict) -> dict:
    """What `given` means for one property (glow.core.serializers.given): not null, not empty."""
    kind = prop.get("type")
    if kind is None:
        return {}
    schema = {"type": kind}
    if kind == "string":
        schema["minLength"] = max(1, prop.get("minLength", 0))
    elif kind == "array":
        schema["minItems"] = max(1, prop.get("minItems", 0))
    elif kind == "boolean":
        # Not `enum: [true]`: drf-spectacular would hoist that into a named enum component.
        schema["not"] = {"enum": [False]}
    return schema


def _branch_schema(properties: dict, need, absent) -> dict:
    branch = {
        "required": list(need),
        "properties": {name: _given_schema(properties.get(name, {})) for name in need},
    }
    if absent:
        branch["not"] = {
            "anyOf": [
                {"required": [name], "properties": {name: _given_schema(properties[name])}}
                for name in absent
            ]
        }
    return branch


EXAMPLE_UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def _sample(prop: dict):
    kind = prop.get("type")
    if kind == "string":
        return EXAMPLE_UUID if prop.get("format") == "uuid" else "text"
    if kind == "integer":
        return max(prop.get("minimum", 0), 0)
    if kind == "boolean":
        return True
    if kind == "object":
        return {}
    if kind == "array":
        item = _sample(prop.get("items", {}))
        return [] if item is None else [item] * max(1, prop.get("minItems", 1))
    return None


def _rule_example(properties: dict, required, rules) -> dict | None:
    """A body that keeps every rule by its first branch: Swagger UI would otherwise show every
    property (attempt/start with both home_id and practice_id)."""
    names = [*required, *(name for rule in rules for name in rule.branches[0][0])]
    example = {name: _sample(properties.get(name, {})) for name in dict.fromkeys(names)}
    return None if None in example.values() else example


def given_rules_schema(schema: dict, rules) -> dict:
    """A request shape's GivenRules as `oneOf` (exactly one) or `anyOf` (at least one) of
    branches that each require their keys, given; a second rule goes under `allOf`."""
    properties = schema.get("properties", {})
    clauses = [
        {
            "oneOf" if rule.exactly else "anyOf": [
                _branch_schema(properties, need, absent) for need, absent in rule.branches
            ]
        }
        for rule in rules
    ]
    if len(clauses) == 1:
        schema.update(clauses[0])
    else:
        schema["allOf"] = clauses
    example = _rule_example(properties, schema.get("required", []), rules)
    if example is not None:
        schema["example"] = example
    notes = " ".join(rule.message for rule in rules)
    schema["description"] = (
        f"{schema['description']} {notes}" if schema.get("description") else notes
    )
    return schema


def only(value) -> dict:
    """The schema of one value. (Under `allOf`: drf-spectacular would hoist a property's bare
    `enum` into a named component of its own.)"""
    return {"allOf": [{"enum": [value]}]}


def variants_schema(schema: dict, variants) -> dict:
    """A write shape's Variants as `oneOf` of one branch per value of its key."""
    branches = []
    for value, shapes in variants.shapes.items():
        branch = {"properties": {variants.on: only(value), **shapes}}
        if value != variants.absent:
            branch["required"] = [variants.on]
        branches.append(branch)
    clause = {"oneOf": branches}
    if {"oneOf", "anyOf"} & set(schema):
        schema.setdefault("allOf", []).append(clause)
    else:
        schema.update(clause)
    return schema


class ArtifactAutoSchema(AutoSchema):
    """Asks the viewset for each op's request and response shapes; tags and ids by family."""

    def _spec_shape(self, kind: str):
        view = self.view
        getter = getattr(view, f"schema_{kind}", None)
        action = getattr(view, "action", None)
        if getter is None or action is None:
            return None
        return getter(action)

    def get_request_serializer(self):
        shape = self._spec_shape("request")
        return shape if shape is not None else super().get_request_serializer()

    def get_response_serializers(self):
        shape = self._spec_shape("response")
        return shape if shape is not None else super().get_response_serializers()

    def get_override_parameters(self):
        # A GET op (watch) takes its request's fields in the query string.
        shape = self._spec_shape("request") if self.method == "GET" else None
        return [shape] if shape is not None else super().get_override_parameters()

    def _is_create_operation(self) -> bool:
        # An op answers 200 whatever its name (invocation/create too); uploads' 201 is the hook's.
        return False

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if direction == "request" and isinstance(field, serializers.DecimalField):
            if schema.get("type") == "string":
                schema["pattern"] = decimal_pattern(field)
            return schema
        if direction == "request" and isinstance(field, JSONObjectField | JSONValueField):
            self.registry.register_on_missing(
                ResolvedComponent(
                    name="JSONValue",
                    type=ResolvedComponent.SCHEMA,
                    object="JSONValue",
                    schema=JSON_VALUE_SCHEMA,
                )
            )
            if isinstance(field, JSONValueField):
                return dict(JSON_VALUE_REF)
            schema = {**schema, **copy.deepcopy(JSON_OBJECT_SCHEMA)}
        if direction == "request" and isinstance(field, serializers.DictField):
            if not field.allow_empty:
                schema["minProperties"] = 1
            if getattr(field, "max_length", None) is not None:
                schema["maxProperties"] = field.max_length
        if direction == "request" and isinstance(field, serializers.CharField):
            pattern = text_pattern(field)
            # A field's own regex (SlugField, RegexField) is stricter and becomes the pattern.
            own_regex = any(isinstance(v, RegexValidator) for v in field.validators)
            if (
                pattern
                and not own_regex
                and schema.get("type") == "string"
                and not {"format", "pattern"} & set(schema)
            ):
                schema["pattern"] = pattern
        return schema

    def _map_basic_serializer(self, serializer, direction):
        schema = super()._map_basic_serializer(serializer, direction)
        if direction != "request":
            return schema
        rules = getattr(serializer, "given_rules", ())
        if rules:
            schema = given_rules_schema(schema, rules)
        variants = getattr(serializer, "variants", None)
        if variants is not None and not serializer.partial:
            schema = variants_schema(schema, variants)
        data_shape = getattr(serializer, "data_shape", None)
        if data_shape is not None:
            self._document_data(schema, data_shape)
        return schema

    def _document_data(self, schema: dict, shape: type) -> None:
        """draft and publish: `data` is the family's write shape, whole in publish's branch that
        creates a row (the one that forbids an id), partial in a draft and in edits."""
        whole = self.resolve_serializer(shape(), "request").ref
        partial = self.resolve_serializer(shape(partial=True), "request").ref
        if "data" in schema.get("properties", {}) and not schema["properties"]["data"].get(
            "nullable"
        ):
            schema["properties"]["data"] = partial
        clauses = [schema, *schema.get("allOf", [])]
        for clause in clauses:
            for branch in clause.get("anyOf", []) + clause.get("oneOf", []):
                if "data" in branch.get("required", []):
                    branch["properties"]["data"] = whole if "not" in branch else partial

    def get_tags(self) -> list[str]:
        family = getattr(self.view, "family", None)
        return [family.name] if family else super().get_tags()

    def get_operation_id(self) -> str:
        family = getattr(self.view, "family", None)
        if family is None:
            return super().get_operation_id()
        name = self.path.rstrip("/").split(f"/{family.name}/", 1)[-1]
        spec = self.view.spec(self.view.action) if hasattr(self.view, "spec") else None
        siblings = {spec.name, *spec.aliases} - {name} if spec is not None else set()
        # Both spellings of one op ("file/download", "file_download") need ids of their own.
        joiner = "__" if name.replace("/", "_") in {s.replace("/", "_") for s in siblings} else "_"
        op_id = f"{family.name}_{name}".replace("/", joiner).replace("-", "_")
        return op_id if self.method == "POST" else f"{op_id}_{self.method.lower()}"

    def get_extensions(self) -> dict:
        """The CLI reads its families and ops from these, not from operation ids or tags."""
        family = getattr(self.view, "family", None)
        action = getattr(self.view, "action", None)
        spec = self.view.spec(action) if action and hasattr(self.view, "spec") else None
        if family is None or spec is None:
            return super().get_extensions()
        name = self.path.rstrip("/").split(f"/{family.name}/", 1)[-1]
        extensions = {
            "x-glow-family": family.name,
            "x-glow-plural": family.plural,
            "x-glow-op": name,
        }
        if name != spec.name:
            extensions["x-glow-alias-of"] = spec.name
        return extensions

    def get_description(self) -> str:
        spec = None
        action = getattr(self.view, "action", None)
        if action and hasattr(self.view, "spec"):
            spec = self.view.spec(action)
        return spec.summary if spec else super().get_description()


class StoredJSONFieldExtension(OpenApiSerializerFieldExtension):
    """A StoredJSONField is documented as the shape it declares, not as any JSON."""

    target_class = "glow.core.serializers.StoredJSONField"

    def map_serializer_field(self, auto_schema, direction):
        return auto_schema._map_serializer_field(self.target.shape, direction)


def close_request_bodies(result, generator, request, public):
    """Request bodies take only their documented keys (the server answers 400 to any other):
    `additionalProperties: false` says so to generated clients and fuzzers."""
    schemas = result.get("components", {}).get("schemas", {})
    for name, component in schemas.items():
        if name.endswith("Request") and component.get("type") == "object":
            component.setdefault("additionalProperties", False)
    # A GET op (watch) reads the same shape from the query string: one exploded object
    # parameter (`?run_id=...`) keeps its rule, which separate parameters could not state.
    for path_item in result.get("paths", {}).values():
        get, post = path_item.get("get"), path_item.get("post")
        if not (get and post):
            continue
        media = post.get("requestBody", {}).get("content", {}).get("application/json", {})
        ref = media.get("schema", {}).get("$ref", "")
        shape = schemas.get(ref.rsplit("/", 1)[-1], {})
        if {"anyOf", "oneOf", "allOf"} & set(shape):
            # A query string has no null: "run_id=null" is the text "null", not an absent id.
            query = copy.deepcopy(shape)
            for prop in query.get("properties", {}).values():
                prop.pop("nullable", None)
            get["parameters"] = [p for p in get.get("parameters", []) if p.get("in") != "query"] + [
                {
                    "in": "query",
                    "name": "query",
                    "style": "form",
                    "explode": True,
                    "required": True,
                    "schema": query,
                    "description": "The request's fields as query parameters.",
                }
            ]
    # A body that must give one of some keys (GivenRule) must be sent: no body is refused too.
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            for media in (body or {}).get("content", {}).values():
                ref = media.get("schema", {}).get("$ref", "")
                component = schemas.get(ref.rsplit("/", 1)[-1], {})
                if {"anyOf", "oneOf", "allOf"} & set(component):
                    body["required"] = True
    return result


def describe_uploads(result, generator, request, public):
    """An upload's `file` part is a binary multipart field of the types the op stores (audio
    uploads: audio only), so clients and fuzzers send a file the server takes."""
    from glow.core.media import SIGNATURES

    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            content = operation.get("requestBody", {}).get("content", {})
            multipart = content.get("multipart/form-data")
            if multipart is None:
                continue
            prefix = "audio/" if "audio" in operation.get("x-glow-op", "") else ""
            types = sorted(mime for mime in SIGNATURES if mime.startswith(prefix))
            multipart["encoding"] = {"file": {"contentType": ", ".join(types)}}
            _file_not_empty(multipart.get("schema", {}), result)
    return result


def _file_not_empty(schema: dict, result: dict) -> None:
    """The server refuses an empty file: `minLength: 1` on the binary part says so."""
    ref = schema.get("$ref", "")
    if ref:
        schema = result["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    part = schema.get("properties", {}).get("file")
    if part is not None and part.get("format") == "binary":
        part["minLength"] = 1
