"""The library's layers (ARCHITECTURE.md): imports run downwards only, and there are no circles.

Every ``import`` / ``from ... import`` in ``lib/visxai`` (function-level imports included) is read
with :mod:`ast`; each module belongs to one floor, and a module may import only modules on its own
floor or below. The test fails with the offending file, line and the two floors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "visxai"

# floor of each top-level part of the package (higher imports lower, never the reverse)
FLOORS: dict[str, int] = {
    # the bottom floor: no imports from the project above it
    "errors": 0,
    "paths": 0,
    "layers": 0,
    "targets": 0,
    "device": 0,
    "checks": 0,
    "stats": 0,
    "citations": 0,
    "transforms": 1,  # uses checks
    "controls": 1,
    "scorecard": 1,
    "plotting": 1,
    "data": 2,
    "metrics": 2,
    "models": 3,
    "methods": 4,
    "evaluation": 5,
    "cli": 6,
    "distributed": 6,
    "__main__": 7,
    "__init__": 7,
}


def _part(module: str) -> str:
    """``visxai.models.zoo`` -> ``models``; ``visxai`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(LIB.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, absolute module)`` of every project import in ``path``."""
    return _imports_in(path.read_text(), _module_name(path), path.name == "__init__.py")


def _from_module(node: ast.ImportFrom, package: str) -> str:
    """The absolute module of ``from [.]*module import ...`` inside ``package``."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports_in(text: str, name: str, is_package: bool = False) -> list[tuple[int, str]]:
    package = name if is_package else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("visxai")]
        elif isinstance(node, ast.ImportFrom):
            mod = _from_module(node, package)
            if not mod.startswith("visxai"):
                continue
            if node.module is None or mod.count(".") == 0:
                # ``from . import x`` / ``from visxai import x``: x is a module of the package
                out += [(node.lineno, f"{mod}.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, mod))
    return out


def test_the_reader_resolves_relative_and_function_level_imports():
    """The checker itself: an upward import hidden in a function is found and resolved."""
    text = "from ..layers import Sum2\n\ndef f():\n    from ..evaluation import eval_case\n"
    got = _imports_in(text, "visxai.models.zoo")
    assert got == [(1, "visxai.layers"), (4, "visxai.evaluation")]
    assert FLOORS[_part(got[1][1])] > FLOORS["models"]  # the case test_imports_run_downwards flags
    assert _imports_in("from . import rules\n", "visxai.methods.agf", True) == [
        (1, "visxai.methods.agf.rules")
    ]


SOURCES = sorted(LIB.rglob("*.py"))


def test_every_part_has_a_floor():
    parts = {_part(_module_name(p)) for p in SOURCES}
    assert parts <= set(FLOORS), f"give these a floor in FLOORS: {sorted(parts - set(FLOORS))}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(LIB)))
def test_imports_run_downwards(path: Path):
    here = _part(_module_name(path))
    upward = [
        f"{path.relative_to(LIB)}:{line} imports {mod} ({_part(mod)}, floor "
        f"{FLOORS[_part(mod)]}) from floor {FLOORS[here]} ({here})"
        for line, mod in _imports(path)
        if _part(mod) in FLOORS and FLOORS[_part(mod)] > FLOORS[here]
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    names = {_module_name(p): p for p in SOURCES}

    def resolve(mod: str) -> str | None:
        while mod and mod not in names:
            mod = mod.rsplit(".", 1)[0] if "." in mod else ""
        return mod or None

    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        deps = {resolve(mod) for _, mod in _imports(path)}
        # a package's __init__ re-exporting its own modules is not a circle of the design
        graph[name] = {d for d in deps if d and d != name and not name.startswith(d + ".")}
    for name in graph:
        graph[name] = {d for d in graph[name] if not (names[d].name == "__init__.py")}

    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph[n]):
            if state.get(d) == 1:
                circles.append(stack[stack.index(d) :] + [d])
            elif d not in state:
                visit(d)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_no_system_exit_in_library_code():
    allowed = {"cli.py", "distributed.py", "__main__.py"}
    offenders = [
        f"{p.relative_to(LIB)}:{n.lineno}"
        for p in SOURCES
        if p.name not in allowed or p.parent != LIB
        for n in ast.walk(ast.parse(p.read_text()))
        if isinstance(n, ast.Raise) and n.exc is not None and "SystemExit" in ast.unparse(n.exc)
    ]
    assert not offenders, f"library code raises SystemExit (raise a library exception): {offenders}"


def test_no_private_names_cross_layers():
    """A ``_name`` stays inside its part of the package (``methods.agf`` may share one inside)."""
    offenders = []
    for p in SOURCES:
        name = _module_name(p)
        package = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        for n in ast.walk(ast.parse(p.read_text())):
            if not isinstance(n, ast.ImportFrom):
                continue
            mod = _from_module(n, package)
            if not mod.startswith("visxai") or _part(mod) == _part(name):
                continue
            offenders += [
                f"{p.relative_to(LIB)}:{n.lineno} imports {a.name} from {mod}"
                for a in n.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    assert not offenders, "\n".join(offenders)
