"""The package's import graph has no cycles, counting imports inside functions too.

A cycle is how "one owner per concept" silently erodes: two modules that need each other
are one concept split in two. Edges are the modules each file names (``import a.b``,
``from a import b`` where ``a.b`` is a module, ``from a.b import name``); the implicit
import of a parent package is not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import imgsearch

PACKAGE = Path(imgsearch.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
                targets = subs or [base]
            graph[name] |= {t for t in targets if t in modules and t != name and t != "imgsearch"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, " → ".join(cycle or [])


def test_the_checker_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_counts_imports_inside_functions():
    graph = import_graph()
    assert "imgsearch.encoders.litert_export" in graph["imgsearch.encoders"]  # imported lazily
    assert "imgsearch.search.searcher" in graph["imgsearch.train.evaluate"]


# --- bench/ and recipes/: scripts that import the package ------------------------------------------

ROOT = PACKAGE.parent
SCRIPT_DIRS = ("bench", "recipes")


def _top_level_names(path: Path) -> set[str]:
    """Names a module defines or imports at its top level (what ``from module import name`` finds)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.If | ast.Try):  # names bound under `if TYPE_CHECKING:` and the like
            for sub in ast.walk(node):
                if isinstance(sub, ast.Import | ast.ImportFrom):
                    names |= {(a.asname or a.name).split(".")[0] for a in sub.names}
    return names


def script_modules() -> dict[str, Path]:
    """``recipes.x`` for the recipes package, ``bench:x`` for a bench script (bench scripts import
    each other by their bare names, ``bench/`` being first on their path)."""
    out = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    out |= {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in (ROOT / "recipes").glob("*.py")
    }
    out |= {f"bench:{p.stem}": p for p in (ROOT / "bench").glob("*.py")}
    return out


def script_imports() -> list[tuple[str, str, str | None, int]]:
    """(importing module, imported module, imported name or None, line) for every import of the
    package, the recipes or a bench script, in bench/ and recipes/ (inside functions too)."""
    modules = script_modules()
    found = []
    for name, path in modules.items():
        if not (name.startswith("recipes") or name.startswith("bench:")):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(name, a.name, None, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found += [(name, node.module or "", a.name, node.lineno) for a in node.names]
    return found


def _resolve(target: str, modules: dict[str, Path], importer: str) -> str | None:
    if importer.startswith("bench:") and f"bench:{target}" in modules:
        return f"bench:{target}"
    return target if target in modules else None


def test_bench_and_recipes_import_only_what_exists():
    modules = script_modules()
    names = {m: _top_level_names(p) for m, p in modules.items()}
    broken = []
    for importer, target, name, line in script_imports():
        ours = target.split(".")[0] in ("imgsearch", "recipes") or f"bench:{target}" in modules
        if not ours:
            continue
        resolved = _resolve(target, modules, importer)
        if resolved is None:
            broken.append(f"{modules[importer].relative_to(ROOT)}:{line}: no module {target}")
        elif name and f"{target}.{name}" not in modules and name not in names[resolved]:
            broken.append(f"{modules[importer].relative_to(ROOT)}:{line}: {target} has no {name}")
    assert not broken, "\n".join(broken)


def test_bench_and_recipes_have_no_import_cycles_and_one_direction():
    """recipes/ never imports bench/ (bench measures what recipes make); the package imports neither;
    no cycle among recipes and bench modules, counting imports inside functions."""
    modules = script_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules if not m.startswith("imgsearch")}
    for importer, target, name, _ in script_imports():
        for candidate in (f"{target}.{name}" if name else None, target):
            resolved = candidate and _resolve(candidate, modules, importer)
            if resolved and not resolved.startswith("imgsearch") and resolved != importer:
                graph[importer].add(resolved)
                break
    for importer, targets in graph.items():
        if importer.startswith("recipes"):
            assert not any(t.startswith("bench:") for t in targets), f"{importer} imports bench: {targets}"
    cycle = find_cycle(graph)
    assert cycle is None, " → ".join(cycle or [])
    package = import_graph()
    assert not any(t.split(".")[0] in SCRIPT_DIRS for targets in package.values() for t in targets)
    for path in PACKAGE.rglob("*.py"):  # nor by a bare name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom | ast.Import):
                mods = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any((m or "").split(".")[0] in SCRIPT_DIRS for m in mods), path
