"""The package layout holds: no import cycles, no import against the layers, click in cli/ only.

The graph is read with ``ast`` from every ``import`` in ``src/evalledger``: at module level,
inside functions and under ``TYPE_CHECKING`` alike, since each is a dependency a reader
has to follow. The layers are the ones README's "Architecture" section draws.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "evalledger"

#: The small core at the top of the package: everything may import it, it imports only itself.
CORE = {
    "atomic", "dvcyaml", "errors", "gitinfo", "manifest", "manifestview", "matrix", "metrics",
    "params",
    "runsettings",
    "heartbeat_state", "names", "prompts", "safeload",
    "plugin_types", "project", "provenance", "redact", "secret_keys",
}  # fmt: skip
#: The plugin types and their registry (``plugins.py``): model adapters, benchmarks,
#: scorers and Tracker mirrors, each a group of entry points.
PLUGINS = {"plugins", "models", "benchmarks", "scorers", "mirrors"}
#: What each layer may import besides itself. ``cli`` and the package root may import all.
ALLOWED = {
    "core": {"core"},
    "plugins": {"core"},
    "ledger": {"core"},
    "analysis": {"core", "ledger"},
    "execution": {"core", "plugins", "ledger"},
    "track": {"core", "plugins", "ledger", "execution"},
    "share": {"core", "ledger", "analysis", "execution"},
    "report": {"core", "ledger", "analysis"},
    "testing": {"core", "plugins"},
}
#: Modules may be this long; a longer one says why in its docstring.
MAX_LINES = 500
LONG_REASON = "longer than 500 lines because"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    """The layer of ``evalledger.<first>...``; the root and ``__main__`` are "api"."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":
        return "api"
    first = parts[1]
    if first in CORE:
        return "core"
    if first in PLUGINS:
        return "plugins"
    if first in ALLOWED or first == "cli":
        return first
    raise AssertionError(
        f"{module} is in no layer: add it to CORE, PLUGINS or ALLOWED in {__file__} "
        "and to README's Architecture section"
    )


def _target(name: str) -> str | None:
    """The evalledger module that an imported name lives in (the longest known prefix)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> dict[str, set[str]]:
    """Top-level packages and evalledger modules that ``module`` imports, with line numbers."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".") if is_package else module.split(".")[:-1]
                here = here[: len(here) - node.level + 1]
                base = ".".join([*here, base] if base else here)
            # `from pkg import sub` is an edge to the submodule pkg.sub when there is one,
            # and `from pkg import name` an edge to pkg itself.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        for name in names:
            top = name.split(".")[0]
            target = _target(name) if top == "evalledger" else top
            if target is not None and target != module:
                found.setdefault(target, set()).add(f"{path.relative_to(SRC)}:{node.lineno}")
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def internal_edges(module: str) -> list[str]:
    return sorted(t for t in GRAPH[module] if t.startswith("evalledger"))


def test_the_graph_sees_the_whole_package() -> None:
    # A walk that found nothing would pass every check below.
    assert len(MODULES) > 60
    assert "evalledger.execution.runner" in GRAPH["evalledger.cli.run"]
    assert "evalledger.plugin_types" in GRAPH["evalledger.benchmarks.base"]
    assert "click" in GRAPH["evalledger.cli"]


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One import cycle in ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_find_cycle_finds_a_loop_through_three_modules() -> None:
    loop = {"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}
    assert find_cycle(loop) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": ["c"], "c": []}) is None


def test_no_import_cycle_between_modules() -> None:
    # The package root imports everything lazily for the public API, and nothing in the
    # package imports the root back; it is checked separately below.
    graph = {m: [t for t in internal_edges(m) if t != "evalledger"] for m in MODULES}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_nothing_imports_the_package_root_from_inside() -> None:
    offenders = [
        f"{m} ({', '.join(sorted(GRAPH[m]['evalledger']))})"
        for m in MODULES
        if "evalledger" in GRAPH[m] and layer(m) not in ("api", "cli")
    ]
    assert offenders == [], "import the defining module, not `evalledger`: " + "; ".join(offenders)


def test_imports_follow_the_layers() -> None:
    wrong = []
    for module in MODULES:
        here = layer(module)
        if here in ("api", "cli"):
            continue
        for target in internal_edges(module):
            there = layer(target)
            if there != here and there not in ALLOWED[here]:
                where = ", ".join(sorted(GRAPH[module][target]))
                wrong.append(f"{module} ({here}) imports {target} ({there}) at {where}")
    assert wrong == [], "imports against the layers:\n" + "\n".join(wrong)


def test_only_cli_imports_click() -> None:
    wrong = [
        f"{m}: {', '.join(sorted(GRAPH[m]['click']))}"
        for m in MODULES
        if "click" in GRAPH[m] and layer(m) != "cli"
    ]
    assert wrong == [], "click outside cli/: " + "; ".join(wrong)


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("evalledger.execution.runner", "evalledger.analysis.diff"),
        ("evalledger.ledger.history", "evalledger.execution.cell"),
        ("evalledger.analysis.leaderboard", "evalledger.share.remote"),
        ("evalledger.models.base", "evalledger.ledger.history"),
    ],
)
def test_the_layer_check_refuses_an_upward_import(module: str, target: str) -> None:
    assert layer(target) not in ALLOWED[layer(module)]


def test_every_package_says_what_it_does_and_may_import() -> None:
    missing = []
    for module, path in MODULES.items():
        if path.name != "__init__.py" or layer(module) in ("api", "cli", "core"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if layer(module) in ALLOWED and "import" not in doc:
            missing.append(module)
    assert missing == [], "package docstrings without their import rule: " + ", ".join(missing)


def test_long_modules_say_why() -> None:
    long = []
    for module, path in MODULES.items():
        if module.startswith("evalledger.testing"):
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        doc = ast.get_docstring(ast.parse(text)) or ""
        if lines > MAX_LINES and LONG_REASON not in " ".join(doc.split()):
            long.append(f"{module} ({lines} lines)")
    assert long == [], (
        f"split these along their seams, or say '{LONG_REASON} ...' in the docstring: "
        + ", ".join(long)
    )


def test_plugins_written_against_the_base_modules_keep_working() -> None:
    import evalledger.benchmarks.base as benchmarks_base
    import evalledger.models.base as models_base
    import evalledger.plugin_types as types
    import evalledger.scorers.base as scorers_base

    assert benchmarks_base.Item is types.Item
    assert benchmarks_base.ItemScore is scorers_base.ItemScore is types.ItemScore
    assert models_base.Completion is types.Completion
    assert models_base.AdapterSettings is types.AdapterSettings
    assert models_base.validate_settings is types.validate_settings


def test_every_public_name_resolves_and_run_stays_a_function() -> None:
    import evalledger
    import evalledger.execution.runner  # would shadow `evalledger.run` if it were `run/`

    missing = [name for name in evalledger.__all__ if not hasattr(evalledger, name)]
    assert missing == []
    assert callable(evalledger.run) and evalledger.run.__module__ == "evalledger.execution.runner"
