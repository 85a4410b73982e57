"""The package's import graph, read from the source with ``ast``: no import cycles, and lower
layers never import higher ones (core -> dem / stokes -> train -> cli)."""

from __future__ import annotations

import ast
from pathlib import Path

import fastinv
import pytest

ROOT = Path(fastinv.__file__).parent

#: Layer of each top-level part of the package; a module may import only its own or lower layers.
LAYERS = {
    "_core": 0,
    "_atomic": 0,
    "_units": 0,
    "_optional": 0,
    "_progress": 0,
    "_fits": 0,
    "status": 0,
    "_plotting": 0,
    "_warnings": 0,
    "_dask": 0,
    "_scheduler": 0,
    "_series": 0,
    "model": 0,
    "embedding": 0,
    "__main__": 3,
    "export": 0,
    "datasets": 0,
    "dem": 1,
    "stokes": 1,
    "train": 2,
    "benchmarking": 2,
    "demo": 3,
    "cli": 3,
}


def _modules() -> dict[str, Path | None]:
    mods: dict[str, Path | None] = {"fastinv._core": None}  # the compiled module
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        mods[".".join(parts)] = path
    return mods


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _runtime_nodes(tree: ast.AST):
    """ast.walk without the ``if TYPE_CHECKING:`` blocks (never executed)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))


def import_graph() -> dict[str, set[str]]:
    """module -> fastinv modules it imports anywhere (also inside functions), without the
    edges to its own ancestor packages (always initialised before it)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        if path is None:
            continue
        is_pkg = path.name == "__init__.py"
        for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, is_pkg, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in mods and t != mod and not mod.startswith(t + "."):
                    graph[mod].add(t)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else 0


def test_the_graph_sees_the_packages_imports():
    graph = import_graph()
    assert "fastinv.stokes.synthesis.training_sets" in graph["fastinv.train.stokes"]
    assert "fastinv.dem.io" in graph["fastinv.dem.pipelines"]
    assert "fastinv._core" in graph["fastinv.stokes.synthesis.voigt"]  # `from ... import _core`


def test_no_import_cycles():
    cycle = _cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_detection_finds_a_planted_cycle():
    graph = import_graph()
    graph["fastinv.stokes.inversion.evaluate"].add("fastinv.train.stokes")  # the old circle
    assert _cycle(graph) is not None


def test_lower_layers_never_import_higher_ones():
    bad = []
    for mod, deps in import_graph().items():
        for dep in deps:
            lm, ld = _layer(mod), _layer(dep)
            assert lm is not None and ld is not None, f"add {mod} / {dep} to LAYERS"
            if ld > lm:
                bad.append(f"{mod} -> {dep}")
            top_m, top_d = mod.split(".")[1:2], dep.split(".")[1:2]
            if {*top_m, *top_d} == {"dem", "stokes"}:
                bad.append(f"{mod} -> {dep} (dem and stokes are independent)")
    assert not bad, "imports against the layering:\n" + "\n".join(sorted(bad))


@pytest.mark.parametrize("package", ["fastinv.stokes", "fastinv.dem", "fastinv.train", "fastinv.cli", "fastinv.export"])
def test_each_package_imports_in_a_fresh_interpreter(package):
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", f"import {package}"], check=True)
