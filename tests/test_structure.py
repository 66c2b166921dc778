"""The house rules of the package layout, measured on the source: imports run downhill through the
rooms (one lazy arrow up: the package facade's ``maest.load`` / ``create_model`` / ``predict`` /
``read_video``, from :mod:`maest.eval.api`), no import circles, modules of at most 450 lines and
functions of at most 80."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import maest

PACKAGE = Path(maest.__file__).parent
# rooms from the bottom up: a module may import from its own room and the rooms below it
ROOMS = ["runs", "runtime", "overrides", "data", "targets", "models", "upgrade", "loading", "convert", "figures",
         "eval", "train", "bench", "commands", "cli"]
# the one arrow up: the package facade imports its top-level functions lazily from one module, to keep
# ``import maest`` free of torch
ALLOWED_UP = {("maest", "maest.eval.api")}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 450, 80


def _module_name(p: Path) -> str:
    return ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def _room(module: str) -> int:
    """The rank of ``module``'s room; the package facade ``maest`` itself is below every room."""
    parts = module.split(".")
    return -1 if len(parts) == 1 else ROOMS.index(parts[1])


def _imports(path: Path, package: Path) -> set[str]:
    """maest modules imported anywhere in ``path`` (function-level imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("maest"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("maest"))
    modules = {".".join(p.relative_to(package.parent).with_suffix("").parts) for p in package.rglob("*.py")}
    modules = {m.removesuffix(".__init__") for m in modules}
    return {m for m in found if m in modules}


def test_no_import_circles():
    """Modules import downward only, lazy imports included (the package facade ``maest`` and the CLI,
    which names command modules as strings, are left out)."""
    package = Path(maest.__file__).parent
    graph = {}
    for p in package.rglob("*.py"):
        name = ".".join(p.relative_to(package.parent).with_suffix("").parts).removesuffix(".__init__")
        if name in ("maest",):
            continue
        graph[name] = {m for m in _imports(p, package) if m != name and m != "maest"}
    # a package's __init__ re-exports its modules: importing "maest.models" means those modules
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt.startswith(node + "."):
                continue  # a package importing its own modules
            if state.get(nxt) == 1:
                pytest.fail("import circle: " + " -> ".join(trail[trail.index(nxt):] + [nxt])
                            if nxt in trail else f"import circle through {nxt}")
            if not state.get(nxt):
                visit(nxt, trail + [nxt])
        state[node] = 2

    for n in sorted(graph):
        if not state.get(n):
            visit(n, [n])


def test_every_module_is_in_a_room():
    unknown = sorted({_module_name(p).split(".")[1] for p in PACKAGE.rglob("*.py") if _module_name(p) != "maest"}
                     - set(ROOMS))
    assert not unknown, f"modules outside the known rooms {ROOMS}: {unknown}; give them a room in ROOMS"


def test_imports_run_downhill():
    """Lazy (function-level) imports count as well: a lazy import up is still a dependency up."""
    up = set()
    for p in PACKAGE.rglob("*.py"):
        name = _module_name(p)
        for m in _imports(p, PACKAGE):
            if _room(m) > _room(name):
                up.add((name, m))
    assert up <= ALLOWED_UP, f"imports running up: {sorted(up - ALLOWED_UP)}"
    assert len(up) <= 1


def test_modules_and_functions_are_short():
    long = []
    for p in sorted(PACKAGE.rglob("*.py")):
        text = p.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            long.append(f"{p.relative_to(PACKAGE)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{p.relative_to(PACKAGE)}:{node.lineno} {node.name}: {n} lines")
    assert not long, "over the limits: " + "; ".join(long)
