"""Print the import graph among keras_pbasr modules and the cycles in it (stdlib only).

Reads every ``keras_pbasr/**/*.py`` with :mod:`ast` (nothing is imported), records each import
of another keras_pbasr module as an edge, module-level or function-level (an import inside a
``def``), and folds the edges onto packages (``keras_pbasr.<name>``: a subpackage, or a top-level
module such as ``keras_pbasr.export``). Cycles are the strongly connected components of more
than one node (Tarjan), found in the package graph (all edges: an import inside a function
still ties the two packages together) and in the module graph (module-level edges: the ones
Python follows while importing).

Run: ``python scripts/import_graph.py`` (``--root DIR`` for another checkout). Exit status 1
when a package-level cycle exists; tests/test_import_graph.py runs it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "keras_pbasr"


@dataclass(frozen=True)
class ImportEdge:
    """One import of ``target`` in module ``source``; ``in_function`` when inside a ``def``."""

    source: str
    target: str
    in_function: bool
    line: int


def module_name(path: Path, root: Path) -> str:
    """``keras_pbasr/metrics/psnr.py`` -> ``keras_pbasr.metrics.psnr``; __init__ is its package."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(module: str) -> str:
    """The node a module folds onto: ``keras_pbasr.metrics.psnr`` -> ``keras_pbasr.metrics``."""
    return ".".join(module.split(".")[:2])


def _resolve(known: set[str], name: str) -> str | None:
    """The longest known module that ``name`` (a module or a module attribute) lies in."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


class _ImportVisitor(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str]):
        self.module = module
        self.is_package = is_package
        self.known = known
        self.depth = 0
        self.edges: list[ImportEdge] = []

    def _add(self, name: str, line: int) -> None:
        target = _resolve(self.known, name)
        if target is not None and target != self.module:
            self.edges.append(ImportEdge(self.module, target, self.depth > 0, line))

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            base = base if self.is_package else base[:-1]
            base = base[: len(base) - (node.level - 1)]
            prefix = ".".join(base + ([node.module] if node.module else []))
        else:
            prefix = node.module or ""
        for alias in node.names:
            # ``from pkg import sub`` imports a submodule when one exists, else a name of pkg.
            if _resolve(self.known, f"{prefix}.{alias.name}") == f"{prefix}.{alias.name}":
                self._add(f"{prefix}.{alias.name}", node.lineno)
            else:
                self._add(prefix, node.lineno)


def collect_edges(root: Path) -> list[ImportEdge]:
    """Every import among the keras_pbasr modules under ``root``."""
    files = sorted((root / PACKAGE).rglob("*.py"))
    known = {module_name(path, root) for path in files}
    edges: list[ImportEdge] = []
    for path in files:
        visitor = _ImportVisitor(module_name(path, root), path.name == "__init__.py", known)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges.extend(visitor.edges)
    # ``from pkg import a, b`` gives one edge per name; keep one per line and target.
    return list(dict.fromkeys(edges))


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one node (or a self-loop), sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                lowlink[node] = min(lowlink[node], lowlink[successor])
            elif successor in on_stack:
                lowlink[node] = min(lowlink[node], index[successor])
        if lowlink[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                components.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def package_graph(edges: list[ImportEdge]) -> dict[str, set[str]]:
    """Edges folded onto packages; imports inside one package are left out."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        source, target = package_of(edge.source), package_of(edge.target)
        # The root package re-exports its subpackages; a subpackage importing the root
        # (``keras_pbasr.version`` aside, which is its own node) would be a real cycle.
        if source != target:
            graph.setdefault(source, set()).add(target)
    return graph


def module_graph(edges: list[ImportEdge]) -> dict[str, set[str]]:
    """Module-level edges between modules (what Python follows at import time)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if not edge.in_function:
            graph.setdefault(edge.source, set()).add(edge.target)
    return graph


def report(root: Path) -> tuple[str, int]:
    """The printed report and the number of package-level cycles."""
    edges = collect_edges(root)
    module_level = [edge for edge in edges if not edge.in_function]
    in_function = [edge for edge in edges if edge.in_function]
    packages = package_graph(edges)
    package_edges = sum(len(targets) for targets in packages.values())
    package_cycles = strongly_connected(packages)
    module_cycles = strongly_connected(module_graph(edges))
    lines = [
        f"module edges: {len(edges)} ({len(module_level)} module-level, "
        f"{len(in_function)} function-level)",
        f"package edges: {package_edges}",
        f"package-level cycles: {len(package_cycles)}",
    ]
    for cycle in package_cycles:
        lines.append(f"  {{{', '.join(cycle)}}}")
        members = set(cycle)
        lines += sorted(
            f"    {edge.source}:{edge.line} -> {edge.target}"
            + (" (in a function)" if edge.in_function else "")
            for edge in edges
            if package_of(edge.source) in members
            and package_of(edge.target) in members
            and package_of(edge.source) != package_of(edge.target)
        )
    lines.append(f"module-level import cycles: {len(module_cycles)}")
    lines += [f"  {{{', '.join(cycle)}}}" for cycle in module_cycles]
    lines.append(f"function-level imports: {len(in_function)}")
    lines += [
        f"  {edge.source}:{edge.line} -> {edge.target}"
        for edge in sorted(in_function, key=lambda e: (e.source, e.line, e.target))
    ]
    return "\n".join(lines), len(package_cycles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    text, cycles = report(args.root)
    print(text)
    return 1 if cycles else 0


if __name__ == "__main__":
    raise SystemExit(main())
