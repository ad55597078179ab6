"""OpenAPI post-processing: each family's tag carries its description (the docs page and the
CLI's `glow <family> --help` show it)."""

from glow.core.registry import registry


def describe_family_tags(result, generator, request, public):
    used = {tag for item in result.get("paths", {}).values() for op in item.values()
            if isinstance(op, dict) for tag in op.get("tags", [])}  # fmt: skip
    result["tags"] = [
        {"name": family.name, "description": family.description}
        for family in registry.families()
        if family.name in used and family.description
    ]
    return result
