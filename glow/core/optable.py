"""Where each op's code lives, read from the registry: the tables of docs/architecture.md."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
import types
from functools import cache
from pathlib import Path

from django.apps import apps
from django.conf import settings

from glow.core.registry import registry
from glow.core.routers import viewset_class

START = "<!-- op-table:start (python manage.py glow_op_table --write) -->"
END = "<!-- op-table:end -->"
# Plumbing every view uses: naming it in every row would hide the service or selector.
PLUMBING = {"glow.core.serializers", "glow.core.ops", "glow.core.errors", "glow.core.identity"}


@cache
def _project_packages() -> frozenset[str]:
    """Top-level packages of the installed apps that live in this project (not in site-packages)."""
    base = Path(settings.BASE_DIR).resolve()
    return frozenset(
        config.name.split(".")[0]
        for config in apps.get_app_configs()
        if Path(config.path).resolve().is_relative_to(base)
    )


def _first_party(module: str) -> bool:
    return module.split(".")[0] in _project_packages()


def _local_imports(tree: ast.AST) -> dict:
    """Names bound by imports inside a function (views import some services lazily)."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                if value is None:
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                bound[alias.asname or alias.name] = value
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = importlib.import_module(alias.name)
    return bound


def _is_super(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "super"
    )


def _inherited(func, owner: type, name: str):
    """What `super().<name>` means inside `func`: the next definition of `name` up the owner's MRO
    past the class that defines `func`."""
    mro = owner.__mro__
    for index, klass in enumerate(mro):
        if any(inspect.unwrap(value) is func for value in vars(klass).values() if callable(value)):
            return next((vars(up)[name] for up in mro[index + 1 :] if name in vars(up)), None)
    return None


def _called(func, owner: type, seen: set) -> set[str]:
    """Functions of other first-party modules a handler calls, through `self.<method>()` and
    `super().<method>()` too."""
    func = inspect.unwrap(func)
    if func in seen or not isinstance(func, types.FunctionType):
        return set()
    seen.add(func)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return set()
    names = {**func.__globals__, **_local_imports(tree)}
    found = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = node.func
        value = None
        if isinstance(target, ast.Attribute) and _is_super(target.value):
            found |= _called(_inherited(func, owner, target.attr), owner, seen)
            continue
        if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            if target.value.id == "self":
                method = getattr(owner, target.attr, None)
                if isinstance(method, types.FunctionType):
                    found |= _called(method, owner, seen)
                continue
            module = names.get(target.value.id)
            if isinstance(module, types.ModuleType):
                value = getattr(module, target.attr, None)
        elif isinstance(target, ast.Name):
            value = names.get(target.id)
        if not isinstance(value, types.FunctionType):
            continue
        module = value.__module__
        if _first_party(module) and module not in PLUMBING:
            found.add(f"{module}.{value.__name__}")
    return found


def _row(family, spec):
    viewset = viewset_class(family)
    handler = getattr(viewset, spec.attr)
    code = inspect.unwrap(handler)
    defined = next((klass for klass in viewset.__mro__ if spec.attr in vars(klass)), viewset)
    view = f"{code.__module__}.{defined.__name__}.{spec.attr}"
    name = " / ".join((spec.name, *spec.aliases))
    calls = ", ".join(f"`{call}`" for call in sorted(_called(handler, viewset, set()))) or "-"
    return code.__module__, name, f"`{view}`", calls


def tables() -> str:
    """Markdown: the universal ops (glow.core) once, then each family's own ops."""
    universal: dict[tuple, list[str]] = {}
    own: list[tuple] = []
    families = registry.families()
    for family in families:
        for spec in viewset_class(family).op_specs():
            module, name, view, calls = _row(family, spec)
            if module.startswith("glow.core."):
                universal.setdefault((name, view, calls), []).append(family.name)
            else:
                own.append((family.name, name, view, calls))
    lines = [
        f"Universal ops, written once in glow/core and mounted per family ({len(families)} "
        "families):",
        "",
        "| op | view | calls | families |",
        "|---|---|---|---|",
    ]
    for (name, view, calls), names in sorted(universal.items()):
        where = "all" if len(names) == len(families) else ", ".join(names)
        lines.append(f"| {name} | {view} | {calls} | {where} |")
    lines += [
        "",
        "Each family's own ops (and the universal ops it overrides):",
        "",
        "| family | op | view | calls |",
        "|---|---|---|---|",
    ]
    lines += [f"| {family} | {name} | {view} | {calls} |" for family, name, view, calls in own]
    return "\n".join(lines) + "\n"


def document() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "architecture.md"


def rendered(text: str) -> str:
    """The document with the generated part between its markers replaced by the current tables."""
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{tables()}{END}{tail}"
