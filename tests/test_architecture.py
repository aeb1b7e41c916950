"""The layout's rules, checked on the source (docs/ARCHITECTURE.md states them):

* imports point one way: cli / server / api / bench → policies / pruning / judge / io →
  runtime → backends → models → grading; no module imports a higher layer, whether at
  module level, under TYPE_CHECKING or inside a function;
* bench/ never imports cli/ (shared click options live in cli/);
* no import cycles among module-level imports (TYPE_CHECKING blocks included);
* every source and test file stays within 300 lines.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import ROOT

PACKAGE = ROOT / "parareason"
LAYERS = {"grading": 0, "thread_env": 0, "models": 1, "backends": 2, "runtime": 3,
          "io": 4, "policies": 4, "pruning": 4, "judge": 4,
          "api": 5, "cli": 5, "server": 5, "bench": 5, "testing": 5, "": 5}
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def area(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def resolve(target: str, names: list[str]) -> list[str]:
    """`from target import names`: the modules it loads (a name may be a submodule)."""
    subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
    return subs or [target]


def imports(tree: ast.AST, *, module_level_only: bool) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                if child.module.split(".")[0] == "parareason":
                    found.extend((child.lineno, m) for m in resolve(child.module, [a.name for a in child.names]))
            elif isinstance(child, ast.Import):
                found.extend((child.lineno, a.name) for a in child.names if a.name.split(".")[0] == "parareason")
            visit(child)

    visit(tree)
    return found


TREES = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in MODULES.items()}


def test_no_module_imports_a_higher_layer():
    wrong = []
    for mod, tree in TREES.items():
        for line, target in imports(tree, module_level_only=False):
            src, dst = area(mod), area(target)
            if LAYERS[dst] > LAYERS[src] or (src == "bench" and dst == "cli"):
                wrong.append(f"{MODULES[mod].relative_to(ROOT)}:{line}: {mod} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_no_import_cycles_at_module_level():
    graph = {m: {t for _, t in imports(tree, module_level_only=True) if t in MODULES and t != m}
             for m, tree in TREES.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[str] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                walk(nxt, path + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    assert not cycles, "module-level import cycles:\n" + "\n".join(cycles)


SHORT_FILES = sorted(str(p.relative_to(ROOT)) for p in [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")])


@pytest.mark.parametrize("path", SHORT_FILES)
def test_source_and_test_files_stay_short(path):
    lines = (ROOT / path).read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{path} has {lines} lines (at most {MAX_LINES})"


def test_backends_are_built_through_the_registry_only():
    """One public `load_backend` (backends/registry.py); a backend package's own factory
    is imported by the registry alone, so a bench or test cannot bypass its checks."""
    defined = [m for m, tree in TREES.items() for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef) and node.name == "load_backend"]
    assert defined == ["parareason.backends.registry"]
    sources = {**MODULES, **{str(p): p for p in (ROOT / "tests").rglob("*.py")}}
    wrong = [str(p.relative_to(ROOT)) for m, p in sources.items() if m != "parareason.backends.registry"
             and any(isinstance(n, ast.ImportFrom) and any(a.name == "build_engine" for a in n.names)
                     for n in ast.walk(ast.parse(p.read_text(encoding="utf-8"))))]
    assert not wrong, f"import the embedded factory outside the registry: {wrong}"
