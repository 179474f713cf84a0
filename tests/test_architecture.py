"""The package's shape: no import cycles between companion's modules, and the core never
importing the desktop shell or the CLI. Read from the sources (every import, including the lazy
ones inside functions), so a cycle hidden behind a function-level import fails too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "companion"


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(name: str, known: dict[str, Path]) -> str | None:
    """The companion module an import refers to (the longest known prefix)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """companion modules `name` imports anywhere in its source."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import sub` names the submodule pkg.sub where one exists, else pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            if t == "companion" or t.startswith("companion."):
                hit = _resolve(t, known)
                if hit is not None and hit != name:
                    out.add(hit)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m) :] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_graph_sees_real_imports():
    """The graph is built from the sources: known edges are in it (so an empty graph cannot pass)."""
    g = import_graph()
    assert len(g) > 40
    assert "companion.engines.base" in g["companion.engines.native"]
    assert "companion.gpu.executor" in g["companion.engines.native"]
    assert "companion.gpu.adapters" in g["companion.gpu.builder"]


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("core", ["companion.engines", "companion.gpu", "companion.model", "companion.memory", "companion.chat"])
def test_core_does_not_import_the_shell_or_cli(core: str):
    """Core parts never import the desktop shell, pywebview or the CLI (STYLE.md)."""
    g = import_graph()
    edge_ok = ("companion.memory.cli",)  # the memory group's own CLI module
    for mod, deps in g.items():
        if not (mod == core or mod.startswith(core + ".")) or mod in edge_ok or mod.endswith(".cli"):
            continue
        bad = {d for d in deps if d.startswith("companion.shell") or d == "companion.cli"}
        assert not bad, f"{mod} imports {sorted(bad)}"


def test_every_package_ships_in_the_wheel():
    """pyproject lists packages by hand (shaders/ and ui/ are mapped in): a new subpackage that
    is missing there would be absent from an installed or frozen app."""
    import tomllib

    listed = set(tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {module_name(p.parent / "__init__.py") for p in ROOT.rglob("__init__.py")}
    assert found - listed == set()
