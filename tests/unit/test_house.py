"""The structure of the code, checked like any other behaviour: every import
arrow points one way (no circle, imports inside functions counted), no module is
longer than one sitting, no function longer than one screen, and `# fmt: skip`
carries its reason.

Imports under ``if TYPE_CHECKING:`` are left out: they never run. A
function-local import counts as an arrow, because deferring an import hides a
circle without removing it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("orchestrator", "workers")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _sources() -> dict[str, Path]:
    """Every module of our packages by dotted name (migrations aside: Alembic owns them)."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if "migrations" in rel.parts:
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


MODULES = _sources()


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """Ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.If):
            continue
        test = node.test
        name = getattr(test, "id", None) or getattr(test, "attr", None)
        if name == "TYPE_CHECKING":
            for child in node.body:
                skipped.update(id(n) for n in ast.walk(child))
    return skipped


def _own_module(name: str) -> str | None:
    """The module of ours that an imported name lives in, if any."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module.split(".")
        if MODULES[module].name != "__init__.py":
            package = package[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    """module -> the modules of ours it imports, anywhere in its code."""
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skipped = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skipped:
                for name in _imported_names(module, node):
                    target = _own_module(name)
                    if target is not None and target != module:
                        graph[module].add(target)
    return graph


def _cycle_from(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path of imports leading from ``start`` back to it, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        module, path = stack.pop()
        for target in sorted(graph[module]):
            if target == start:
                return [*path, start]
            if target not in seen:
                seen.add(target)
                stack.append((target, [*path, target]))
    return None


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def test_no_import_circle() -> None:
    # Given every import of orchestrator/ and workers/, inside functions too,
    # leaving out the arrows into a package's __init__ (which re-exports its children)
    graph = _graph()
    pruned = {m: {t for t in targets if not _is_package(t)} for m, targets in graph.items()}
    # When we look for a path from each module back to itself
    circles = [c for m in sorted(pruned) if (c := _cycle_from(pruned, m)) is not None]
    # Then there is none
    assert not circles, "import circle: " + " -> ".join(circles[0])


def test_no_module_imports_its_package_init() -> None:
    # An arrow into `orchestrator/__init__.py` (which imports the client) from inside
    # the package closes a circle through the whole house; a `__main__` may import
    # its package (nothing imports a `__main__`)
    offenders = [
        f"{m} imports {t}"
        for m, targets in _graph().items()
        for t in targets
        if _is_package(t)
        and not _is_package(m)
        and m.startswith(t + ".")
        and not m.endswith(".__main__")
    ]
    assert not offenders, offenders


def test_orchestrator_never_imports_workers() -> None:
    offenders = [
        f"{m} imports {t}"
        for m, targets in _graph().items()
        if m.split(".")[0] == "orchestrator"
        for t in targets
        if t.split(".")[0] == "workers"
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_reads_in_one_sitting(module: str) -> None:
    lines = MODULES[module].read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, f"{module} has {lines} lines"


def test_functions_fit_on_one_screen() -> None:
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > MAX_FUNCTION_LINES:
                    long.append(f"{module}:{node.name} ({size} lines)")
    assert not long, long


def test_fmt_skip_gives_its_reason() -> None:
    bare = []
    for module, path in MODULES.items():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            _, marker, reason = line.partition("# fmt: skip")
            if marker and not reason.strip(" :-—()"):
                bare.append(f"{module}:{number}")
    assert not bare, f"`# fmt: skip` without a reason at {bare}"


def test_every_module_says_what_it_holds() -> None:
    missing = [
        m
        for m, path in MODULES.items()
        if path.stat().st_size and ast.get_docstring(ast.parse(path.read_text("utf-8"))) is None
    ]
    assert not missing, missing
