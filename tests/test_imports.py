"""The package's import structure: no import cycles, and every deferred import says why."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "utnet_diag"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def _edges(modules: dict[str, ast.Module], deferred: bool) -> dict[str, set[str]]:
    """Module -> the package modules it imports (module level; with ``deferred`` also those
    imported inside functions)."""
    edges: dict[str, set[str]] = {}
    for name, tree in modules.items():
        targets: set[str] = set()
        for node in ast.walk(tree) if deferred else tree.body:
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("utnet_diag")
            ):
                targets.add(node.module)
                # ``from utnet_diag.mano import layer`` imports a submodule
                targets.update(
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if f"{node.module}.{a.name}" in modules
                )
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.startswith("utnet_diag"))
        edges[name] = {t for t in targets if t in modules and t != name}
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_cycle_finder_finds_a_planted_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_cycle_at_module_level_nor_through_deferred_imports():
    modules = _modules()
    assert _cycle(_edges(modules, deferred=False)) is None
    assert _cycle(_edges(modules, deferred=True)) is None


def _undocumented_deferred_imports(path: Path, root: Path = PACKAGE.parent) -> list[str]:
    lines = path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))
    bad = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        imports = [
            n
            for n in ast.walk(fn)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            and n is not fn
            and (
                (isinstance(n, ast.ImportFrom) and (n.module or "").startswith("utnet_diag"))
                or (isinstance(n, ast.Import) and n.names[0].name.startswith("utnet_diag"))
            )
        ]
        import_lines = {
            i
            for n in ast.walk(fn)
            if isinstance(n, (ast.Import, ast.ImportFrom))
            for i in range(n.lineno, n.end_lineno + 1)
        }
        for node in imports:
            if any("#" in lines[i - 1] for i in range(node.lineno, node.end_lineno + 1)):
                continue
            above = node.lineno - 1
            while above in import_lines or not lines[above - 1].strip():
                above -= 1
            if "#" not in lines[above - 1]:
                bad.append(f"{path.relative_to(root)}:{node.lineno}")
    return bad


def test_every_deferred_import_of_the_package_says_why():
    """A function-level import of the package's own code is there for startup cost only; the
    comment above it (or on it) says what it defers."""
    bad = [b for p in sorted(PACKAGE.rglob("*.py")) for b in _undocumented_deferred_imports(p)]
    assert bad == []


def test_the_deferred_import_rule_flags_a_bare_one(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text(
        "def f():\n    x = 1\n    from utnet_diag.errors import InputError\n    return x\n\n"
        "def g():\n    # deferred: reason\n    from utnet_diag.errors import InputError\n"
        "    from utnet_diag.errors import nearest\n    return 1\n"
    )
    assert _undocumented_deferred_imports(planted, tmp_path) == ["planted.py:3"]


# functions allowed past 80 lines, and why (the reason is in the function too)
LONG_ALLOWED = {"utnet_diag/logs/parse.py:parse_log": "the per-line hot loop (a split cost 12%)"}


def test_no_function_runs_past_80_lines():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{path.relative_to(PACKAGE.parent)}:{node.name}"
                if node.end_lineno - node.lineno + 1 > 80 and name not in LONG_ALLOWED:
                    long.append(name)
    assert long == []
