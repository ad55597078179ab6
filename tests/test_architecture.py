"""Dependencies point one way: every import (function-level ones too) goes down the layers.

The layers, lowest first, as read from the code (docs/architecture.md draws them):

    0  glow.celery                   the Celery app: configured from settings by name, it imports
                                     no module of ours, so core may load it in ready()
    1  glow.core                     the generic artifact framework; knows no app
    2  glow.ai, glow.accounts        providers (no Django models); people, roles, API keys
    3  glow.catalog                  the authored artifacts (personas ... models)
    4  system                        sessions, runs, the AI gateway, generation, audit
    5  attempts, tests_app           a learner's attempts; the Test artifact and its engines
    6  lti                           the LTI 1.3 tool: launches into attempts
    7  glow.urls, glow.mcp_server,   the site's URLs; the MCP server over the API;
       glow.settings, glow.wsgi      project plumbing
    8  glow.asgi, glow               the ASGI app (it mounts the MCP server); the package (its
                                     version, and Celery on demand)
    9  glow.cli                      the command line (it launches the MCP server, reads the
                                     package's version)

A module may import its own unit and the layers below, never its own layer's other units nor a
layer above, so no cycle can form. Production code never imports test code (`tests`, `bench`,
any `*.tests` package). glow/core's own tests are held to core's rule; other apps' tests may reach
up (they exercise the whole site), and the framework's cross-family tests live in tests/framework.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYERS: list[tuple[str, ...]] = [
    ("glow.celery",),
    ("glow.core",),
    ("glow.ai", "glow.accounts"),
    ("glow.catalog",),
    ("system",),
    ("attempts", "tests_app"),
    ("lti",),
    ("glow.urls", "glow.mcp_server", "glow.settings", "glow.wsgi"),
    ("glow.asgi", "glow"),
    ("glow.cli",),
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}
PRODUCT = ("glow", "attempts", "tests_app", "system", "lti")
TEST_ONLY = ("tests", "bench", "conftest")
# Calls that import the module named by their first argument.
IMPORTING_CALLS = {"import_module", "import_string", "include"}


def unit_of(module: str) -> str | None:
    """The layered unit a dotted module belongs to (longest match), None outside the product."""
    parts = module.split(".")
    for size in range(len(parts), 0, -1):
        candidate = ".".join(parts[:size])
        if candidate in RANK:
            return candidate
    return None


def is_test_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] in TEST_ONLY or "tests" in parts or parts[-1].startswith("test_")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, module: str, root: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in a file, at any depth, relative ones resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # `from glow import cli` imports the module glow.cli: count members that are modules.
            for alias in node.names:
                member = root.joinpath(*base.split("."), alias.name)
                if member.is_dir() or member.with_suffix(".py").is_file():
                    found.append((node.lineno, f"{base}.{alias.name}"))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in IMPORTING_CALLS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.append((node.lineno, first.value))
    return found


def source_files(root: Path):
    for top in (*PRODUCT, *TEST_ONLY):
        base = root / top
        paths = [root / f"{top}.py"] if not base.is_dir() else sorted(base.rglob("*.py"))
        for path in paths:
            if path.is_file() and ".venv" not in path.parts:
                yield path


def import_edges(root: Path):
    """(importer module, its unit, line, imported module, its unit) for first-party imports."""
    for path in source_files(root):
        module = module_name(path, root)
        for line, name in imported_modules(path, module, root):
            if name.split(".")[0] not in (*PRODUCT, *TEST_ONLY):
                continue
            yield module, unit_of(module), line, name, unit_of(name)


def violations(root: Path) -> list[str]:
    found = set()
    for module, unit, line, name, target in import_edges(root):
        where = f"{module}:{line} imports {name}"
        if is_test_module(module) and not module.startswith("glow.core."):
            continue
        if is_test_module(name) and not is_test_module(module):
            found.add(f"{where}: production code imports test code")
            continue
        if unit is None or target is None or target == unit:
            if unit is None and not is_test_module(module):
                found.add(f"{module} belongs to no layer: place it in LAYERS")
            continue
        if RANK[target] >= RANK[unit]:
            side = "its own layer" if RANK[target] == RANK[unit] else "a higher layer"
            found.add(f"{where}: {unit} (layer {RANK[unit]}) reaches {side} ({target})")
    return sorted(found)


def cycles(root: Path) -> list[list[str]]:
    """Import cycles among units, from production code only (independent of LAYERS' order)."""
    graph: dict[str, set[str]] = {}
    for module, unit, _line, _name, target in import_edges(root):
        if is_test_module(module) or unit is None or target is None or target == unit:
            continue
        graph.setdefault(unit, set()).add(target)
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_every_import_points_down_the_layers():
    assert violations(ROOT) == []


def test_no_import_cycle_among_the_apps():
    assert cycles(ROOT) == []


def test_every_product_package_has_a_layer():
    apps = {path.parent.name for path in ROOT.glob("*/apps.py")}
    apps |= {f"glow.{path.parent.name}" for path in (ROOT / "glow").glob("*/apps.py")}
    assert apps <= set(RANK), f"add to LAYERS: {sorted(apps - set(RANK))}"


def test_no_test_module_holds_a_test_class():
    """pytest collects no class here (python_classes = []): a test method in a class would never run."""
    found = []
    for path in source_files(ROOT):
        if not path.name.startswith("test_"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                and item.name.startswith("test")
                for item in node.body
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert found == [], "write these as test functions"


def test_the_architecture_doc_names_every_layered_package():
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert [unit for unit in RANK if f"`{unit}`" not in text] == []


def test_the_op_table_of_the_architecture_doc_is_current():
    from glow.core import optable

    text = optable.document().read_text()
    assert optable.rendered(text) == text, "run: manage.py glow_op_table --write"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        # A top-level import from core into an app.
        (
            {"glow/core/viewsets.py": "from glow.accounts.auth import actor_of\n"},
            "glow.core.viewsets:1 imports glow.accounts.auth: glow.core (layer 1) reaches a higher",
        ),
        # The same, hidden inside a function.
        (
            {"glow/core/media_ops.py": "def f():\n    from attempts import models\n"},
            "glow.core.media_ops:2 imports attempts: glow.core (layer 1) reaches a higher",
        ),
        # Spelt `from glow import accounts`, or through import_module.
        (
            {"glow/core/x.py": "from glow import accounts\n", "glow/accounts/__init__.py": ""},
            "glow.core.x:1 imports glow.accounts: glow.core (layer 1)",
        ),
        (
            {"glow/core/x.py": "import importlib\nimportlib.import_module('system.models')\n"},
            "glow.core.x:2 imports system.models: glow.core (layer 1)",
        ),
        # Core's own tests are held to core's rule.
        (
            {"glow/core/tests/test_x.py": "from tests_app.models import Test\n"},
            "glow.core.tests.test_x:1 imports tests_app.models: glow.core (layer 1)",
        ),
        # Sideways between two apps of one layer.
        (
            {"attempts/x.py": "from tests_app import services\n"},
            "attempts.x:1 imports tests_app: attempts (layer 5) reaches its own layer",
        ),
        # Production code using a test helper.
        (
            {"glow/ai/x.py": "from tests.support.fakeserver import FakeOpenAIServer\n"},
            "glow.ai.x:1 imports tests.support.fakeserver: production code imports test code",
        ),
        (
            {"system/x.py": "from glow.catalog.tests.factories import AIModelFactory\n"},
            "production code imports test code",
        ),
    ],
    ids=[
        "core-to-app",
        "function-level",
        "from-glow",
        "import_module",
        "core-tests",
        "sideways",
        "test-support",
        "app-tests",
    ],
)
def test_the_checker_refuses_a_wrong_import(tmp_path, files, expected):
    found = violations(write(tmp_path, files))
    assert any(expected in line for line in found), found


def test_the_checker_finds_a_cycle(tmp_path):
    root = write(
        tmp_path,
        {
            "system/a.py": "from attempts import b\n",
            "attempts/b.py": "def f():\n    import system.a\n",
        },
    )
    assert cycles(root) == [["attempts", "system", "attempts"]]
