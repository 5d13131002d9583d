"""Finding flows in code: import references (``module:attribute`` or
``path/to/file.py:attribute``), loading the flow one names (:func:`load_flow`), the
reference of a module-level flow (:func:`import_ref_for`) and every flow a file or
module defines (:func:`flows_in`). Records the source each module it executes was
read from (:mod:`orchestrator.sources`). Pure: imports only the core (errors, flow,
sources)."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path

import orchestrator.sources as sources
from orchestrator.errors import FlowLoadError
from orchestrator.flow import Flow


def _load_module(target: str, fresh: bool = False) -> types.ModuleType:
    path = Path(target)
    if target.endswith(".py") or path.is_file():
        if not path.is_file():
            raise FlowLoadError(f"flow file {target} does not exist")
        resolved = path.resolve()
        name = f"orchestrator_flows_{hashlib.sha1(str(resolved).encode()).hexdigest()[:16]}"
        if not fresh and name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, resolved)
        if spec is None or spec.loader is None:
            raise FlowLoadError(f"cannot import flow file {target}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if str(resolved.parent) not in sys.path:
            sys.path.append(str(resolved.parent))
        sources.record(name, str(resolved))
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise FlowLoadError(f"importing {target} failed: {type(exc).__name__}: {exc}") from None
        return module
    try:
        known = target in sys.modules
        module = importlib.import_module(target)
        if fresh or not known:
            sources.record(target, getattr(module, "__file__", None))
        if fresh:
            module = importlib.reload(module)
        return module
    except Exception as exc:
        raise FlowLoadError(f"cannot import module {target}: {type(exc).__name__}: {exc}") from None


def flows_in(target: str) -> list[Flow]:
    """Every flow defined at the top level of a Python file or module."""
    module = _load_module(target, fresh=True)
    return [v for v in vars(module).values() if isinstance(v, Flow)]


def import_ref_for(flow: Flow) -> str:
    """How a worker can import ``flow``: its module (or file) and variable name."""
    module_name, file = flow.defined_in
    module = sys.modules.get(module_name)
    attr = None
    if module is not None:
        attr = next((k for k, v in vars(module).items() if v is flow), None)
    if attr is None:
        raise FlowLoadError(
            f"flow {flow.name!r} is not a module-level variable; pass import_ref="
            "'module:attribute' to register()"
        )
    if "." not in module_name and file:
        # a script or a top-level module: workers may not have its folder on their
        # path, so point at the file itself
        return f"{Path(file).resolve()}:{attr}"
    if module_name == "__main__" or module_name.startswith("orchestrator_flows_"):
        if not file:
            raise FlowLoadError(f"flow {flow.name!r} has no source file; pass import_ref=")
        return f"{Path(file).resolve()}:{attr}"
    return f"{module_name}:{attr}"


def load_flow(import_ref: str, fresh: bool = False) -> Flow:
    """Import the flow an import reference names.

    Args:
        import_ref: ``module:attribute`` or ``path/to/file.py:attribute``.
        fresh: re-execute the module even when it was imported before.
    """
    target, sep, attr = import_ref.rpartition(":")
    if not sep or not target or not attr:
        raise FlowLoadError(f"import reference {import_ref!r} is not 'module:attribute'")
    module = _load_module(target, fresh=fresh)
    flow = getattr(module, attr, None)
    if not isinstance(flow, Flow):
        raise FlowLoadError(f"{import_ref} is not a Flow (found {type(flow).__name__})")
    return flow
