"""The `docs` op's body: a family described from the registry and its mounted ops."""

from __future__ import annotations

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
