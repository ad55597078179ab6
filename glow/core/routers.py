"""Mounts every registered family's ops at /api/v5/artifacts/<family>/<op> (and each op's aliases)."""

from __future__ import annotations

from functools import cache

from django.urls import include, path

from glow.core.ops import OpSpec
from glow.core.registry import Family, registry


@cache
def viewset_class(family: Family):
    from glow.core.viewsets import viewset_for

    return viewset_for(family)


def family_ops(family: Family) -> list[str]:
    names = []
    for spec in viewset_class(family).op_specs():
        names.extend([spec.name, *spec.aliases])
    return sorted(names)


@cache
def _specs_by_name(family: Family) -> dict[str, OpSpec]:
    return {
        name: spec
        for spec in viewset_class(family).op_specs()
        for name in (spec.name, *spec.aliases)
    }


def op_spec(family: Family | str, op_name: str) -> OpSpec | None:
    """The mounted op of that name (or alias) in the family, or None."""
    if isinstance(family, str):
        family = registry.find(family)
        if family is None:
            return None
    return _specs_by_name(family).get(op_name)


def op_allows(family: Family | str, op_name: str, actor) -> bool:
    """Whether the actor's role may call the op: the same declaration the API's gate enforces,
    for the pages, the admin and MCP to ask before they offer or call an op. (Which rows the
    actor reaches is still the selectors' answer.)"""
    spec = op_spec(family, op_name)
    if spec is None:
        return False
    resolved = registry.find(family) if isinstance(family, str) else family
    return spec.allows(resolved, actor)


def artifact_urlpatterns() -> list:
    """One include per family, its ops inside: Django's resolver copies the list of every
    pattern it tried before the match into the match, so one flat list of all ~600 ops cost
    each request of a late family a few milliseconds."""
    patterns = []
    for family in registry.families():
        viewset = viewset_class(family)
        ops = []
        for spec in viewset.op_specs():
            initkwargs = getattr(getattr(viewset, spec.attr), "kwargs", {})
            view = viewset.as_view(dict.fromkeys(spec.methods, spec.attr), **initkwargs)
            for name in (spec.name, *spec.aliases):
                ops.append(path(name, view, name=f"{family.name}-{name}"))
        patterns.append(path(f"{family.name}/", include(ops)))
    return patterns
