"""Every family's row factory for the generic framework tests (and bench), found by app discovery."""

from __future__ import annotations

from importlib import import_module
from importlib.util import find_spec

import pytest
from django.apps import apps

from glow.core.registry import Family, registry


def install_family_factories() -> None:
    """Each app's tests/factories.py may define register_family_factories(registry).

    Discovered like glow_demo discovers demo.py, so the generic tests name no app; a family added later
    is covered by the generic tests as soon as its app ships that hook.
    """
    for config in apps.get_app_configs():
        module_name = f"{config.name}.tests.factories"
        try:
            if find_spec(module_name) is None:
                continue
        except ModuleNotFoundError:
            continue
        hook = getattr(import_module(module_name), "register_family_factories", None)
        if hook is not None:
            hook(registry)


def model_families() -> list[Family]:
    return [family for family in registry.families() if family.model is not None]


def row_factory(family: Family):
    factory = family.extra.get("factory")
    if factory is None:
        pytest.skip(
            f"family {family.name!r} has no test factory: add register_family_factories() to "
            "its app's tests/factories.py to cover it with the generic tests"
        )
    return factory
