"""Mounts every registered family's ops at /api/v5/artifacts/<family>/<op> (and each op's aliases)."""

from __future__ import annotations

from functools import cache

from django.urls import path

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


def artifact_urlpatterns() -> list:
    patterns = []
    for family in registry.families():
        viewset = viewset_class(family)
        for spec in viewset.op_specs():
            initkwargs = getattr(getattr(viewset, spec.attr), "kwargs", {})
            view = viewset.as_view(dict.fromkeys(spec.methods, spec.attr), **initkwargs)
            for name in (spec.name, *spec.aliases):
                patterns.append(path(f"{family.name}/{name}", view, name=f"{family.name}-{name}"))
    return patterns
