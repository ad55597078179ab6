"""The `docs` op's body (a family described from the registry and its mounted ops), and the
per-family OpenAPI documents the API docs page loads."""

from __future__ import annotations

import copy
from functools import cache

from glow.core.registry import Family


def family_docs(*, family: Family, viewset, artifact: dict | None) -> dict:
    operations = [
        {
            "name": name,
            "method": "/".join(method.upper() for method in spec.methods),
            "path": f"/api/v5/artifacts/{family.name}/{name}",
            "summary": spec.summary,
            "roles": list(spec.roles_for(family)),
        }
        for spec in viewset.op_specs()
        for name in (spec.name, *spec.aliases)
    ]
    fields = []
    if family.output_serializer is not None:
        for name, field in family.output_serializer().fields.items():
            fields.append(
                {
                    "name": name,
                    "type": type(field).__name__,
                    "description": str(field.help_text or ""),
                }
            )
    return {
        "name": family.name,
        "type": "artifact" if family.model is not None else "namespace",
        "description": family.description,
        "artifact": artifact,
        "entries": fields,
        "resources": [
            {"name": facet.name, "type": "facet", "description": facet.param}
            for facet in family.facets
        ],
        "permissions": [
            op for op in operations if op["roles"] != ["learner", "instructor", "admin"]
        ],
        "api_operations": operations,
        "page_metadata": {"plural": family.plural, "id_field": family.id_field},
    }


# -- the API docs page: one family's ops at a time ----------------------------------------------
#
# The full schema (every family, every alias: ~630 paths) stays at /api/v5/schema for clients and
# the CLI. Swagger UI took ~5 s to lay it out, so the docs page loads one family's slice of it,
# with each alias folded into its op instead of repeated as a path of its own.

DOCS_PREFIX = "/api/v5/artifacts/"


@cache
def full_schema() -> dict:
    """The document /api/v5/schema serves, built once per process: it depends on code only."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


def _family_of(path: str, item: dict) -> str:
    for operation in item.values():
        if isinstance(operation, dict) and operation.get("x-glow-family"):
            return operation["x-glow-family"]
    for operation in item.values():
        if isinstance(operation, dict) and operation.get("tags"):
            return operation["tags"][0]
    return path.strip("/").split("/")[2]


def docs_families() -> list[str]:
    """Every family the docs page can show, in the picker's order."""
    return sorted({_family_of(path, item) for path, item in full_schema()["paths"].items()})


def _refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[-1])
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def _components(schemas: dict, roots) -> dict:
    """The schemas `roots` reference, directly or through each other."""
    names: set[str] = set()
    _refs(roots, names)
    pending = list(names)
    while pending:
        more: set[str] = set()
        _refs(schemas.get(pending.pop(), {}), more)
        pending.extend(more - names)
        names |= more
    return {name: schemas[name] for name in sorted(names) if name in schemas}


@cache
def family_schema(name: str) -> dict | None:
    """One family's ops as an OpenAPI document of its own; an alias is listed under its op
    (`x-glow-aliases` and a line of the description), not as a second path."""
    full = full_schema()
    mine = {path: item for path, item in full["paths"].items() if _family_of(path, item) == name}
    if not mine:
        return None
    paths, aliases = {}, {}
    for path, item in mine.items():
        alias_of = next(
            (op.get("x-glow-alias-of") for op in item.values() if isinstance(op, dict)), None
        )
        if alias_of:
            aliases.setdefault(f"{DOCS_PREFIX}{name}/{alias_of}", []).append(path)
        else:
            paths[path] = copy.deepcopy(item)
    for path, alias_paths in aliases.items():
        for operation in paths.get(path, {}).values():
            operation["x-glow-aliases"] = sorted(alias_paths)
            also = ", ".join(f"`{alias}`" for alias in sorted(alias_paths))
            operation["description"] = f"{operation.get('description', '')}\n\nAlias: {also}."
    components = dict(full.get("components", {}))
    components["schemas"] = _components(
        components.get("schemas", {}), [paths, components.get("responses", {})]
    )
    return {**full, "paths": paths, "components": components}


@cache
def family_schema_json(name: str) -> bytes | None:
    from rest_framework.renderers import JSONRenderer

    document = family_schema(name)
    # Compact: the page parses it, no person reads it (the full schema is the indented one).
    return None if document is None else JSONRenderer().render(document)


def family_schema_view(request, family: str):
    """GET /api/v5/schema/<family>: the document the docs page shows for one family."""
    from django.http import HttpResponse

    from glow.core.errors import api_not_found

    body = family_schema_json(family)
    if body is None:
        return api_not_found(request)
    return HttpResponse(body, content_type="application/vnd.oai.openapi+json")


def docs_view():
    """GET /api/v5/docs/try?family=<name>: Swagger UI on one family's document (to try requests),
    with a picker of the others (plain links) and a link to the full schema."""
    from django.urls import reverse
    from drf_spectacular.utils import extend_schema
    from drf_spectacular.views import SpectacularSwaggerView

    class FamilyDocsView(SpectacularSwaggerView):
        template_name = "api/docs.html"

        @extend_schema(exclude=True)
        def get(self, request, *args, **kwargs):
            families = docs_families()
            self.family = request.GET.get("family") or families[0]
            response = super().get(request, *args, **kwargs)
            response.data.update(
                families=families,
                family=self.family,
                known=self.family in families,
                docs_url=reverse("api-docs-try"),
                full_schema_url=reverse("schema"),
            )
            if self.family not in families:
                response.status_code = 404
            return response

        def _get_schema_url(self, request):
            return reverse("schema-family", args=[self.family])

    return FamilyDocsView.as_view()


# -- the reference page: the same slice, drawn on the server ----------------------------------
#
# Swagger UI spends about a second running its 1.4 MB script before it draws anything, so the
# docs page is plain HTML built from the family's slice (readable without JS, on a phone, by a
# screen reader); Swagger UI stays one link away for trying requests.

METHOD_ORDER = ("get", "post", "put", "patch", "delete")


def _deref(node: dict, document: dict) -> tuple[str, dict]:
    ref = node.get("$ref", "") if isinstance(node, dict) else ""
    if ref.startswith("#/components/"):
        _, _, section, name = ref.split("/", 3)
        return name, document["components"].get(section, {}).get(name, {})
    return "", node if isinstance(node, dict) else {}


def _type_of(schema: dict, document: dict) -> str:
    name, resolved = _deref(schema, document)
    if name:
        return name
    if "items" in resolved:
        return f"list of {_type_of(resolved['items'], document)}"
    if "enum" in resolved:
        return "one of " + ", ".join(str(value) for value in resolved["enum"] if value is not None)
    for key in ("oneOf", "anyOf", "allOf"):
        if key in resolved:
            # dict.fromkeys: two branches that differ only in a pattern read as one type.
            kinds = dict.fromkeys(_type_of(option, document) for option in resolved[key])
            return " or ".join(kinds)
    kind = resolved.get("type", "any")
    if resolved.get("format") in ("uuid", "date-time", "date", "binary", "uri"):
        kind = f"{kind} ({resolved['format']})"
    if resolved.get("nullable"):
        kind = f"{kind}, or null"
    return kind


def _fields(schema: dict, document: dict) -> tuple[list[dict], str]:
    """The properties of a body or query schema as rows, and the schema's own description
    (where the one-of rules are said in words)."""
    _, resolved = _deref(schema, document)
    required = set(resolved.get("required", []))
    rows = []
    for name, field in resolved.get("properties", {}).items():
        _, inner = _deref(field, document)
        rows.append(
            {
                "name": name,
                "type": _type_of(field, document),
                "required": name in required,
                "description": inner.get("description") or field.get("description", ""),
            }
        )
    return rows, resolved.get("description", "")


def family_reference(name: str) -> list[dict] | None:
    """The family's ops for the reference page: method, path, summary, aliases, the request's
    fields and rule, and every status it answers."""
    document = family_schema(name)
    if document is None:
        return None
    operations = []
    for path, item in document["paths"].items():
        for method in METHOD_ORDER:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            fields, rule, media = [], "", ""
            body = operation.get("requestBody", {}).get("content", {})
            if body:
                media = next(iter(body))
                fields, rule = _fields(body[media].get("schema", {}), document)
            for parameter in operation.get("parameters", []):
                _, parameter = _deref(parameter, document)
                if parameter.get("in") != "query":
                    continue
                schema = parameter.get("schema", {})
                if parameter.get("explode") and "properties" in _deref(schema, document)[1]:
                    more, rule = _fields(schema, document)
                    fields += more
                else:
                    fields.append(
                        {
                            "name": parameter["name"],
                            "type": _type_of(schema, document),
                            "required": parameter.get("required", False),
                            "description": parameter.get("description", ""),
                        }
                    )
            responses = []
            for status, answer in sorted(operation.get("responses", {}).items()):
                _, answer = _deref(answer, document)
                responses.append({"status": status, "description": answer.get("description", "")})
            operations.append(
                {
                    "id": operation.get("operationId", f"{method}-{path}"),
                    "method": method.upper(),
                    "path": path,
                    "op": operation.get("x-glow-op", path.rsplit("/", 1)[-1]),
                    "summary": (operation.get("description") or "").split("\n\nAlias:")[0],
                    "aliases": operation.get("x-glow-aliases", []),
                    "media": media,
                    "fields": fields,
                    "rule": rule,
                    "responses": responses,
                }
            )
    return operations


def reference_view(request):
    """GET /api/v5/docs?family=<name>: one family's ops as a page of plain HTML."""
    from django.shortcuts import render
    from django.urls import reverse

    families = docs_families()
    family = request.GET.get("family") or families[0]
    operations = family_reference(family) if family in families else None
    context = {
        "families": families,
        "family": family,
        "known": operations is not None,
        "operations": operations or [],
        "docs_url": reverse("api-docs"),
        "try_url": reverse("api-docs-try"),
        "family_schema_url": reverse("schema-family", args=[family]) if operations else "",
        "full_schema_url": reverse("schema"),
    }
    return render(request, "api/reference.html", context, status=200 if operations else 404)
