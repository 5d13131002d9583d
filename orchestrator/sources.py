"""The source code behind a flow version: the hash of a module's file as it was
imported (:func:`record`, called by the loader when it executes a module) or, for a
module imported otherwise, as it is on disk (:func:`module_hash`), and the hash of
the modules a flow's code lives in (:func:`modules_hash`). A flow's version changes
when these change, not only when its structure does.

Pure: imports only the standard library."""

from __future__ import annotations

import hashlib
import sys
import threading
from collections.abc import Iterable

_recorded: dict[str, str] = {}
_lock = threading.Lock()


def file_hash(path: str | None) -> str | None:
    """The SHA-256 of a file's bytes, or None when there is no such file."""
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def record(module_name: str, path: str | None) -> None:
    """Remember the hash of ``path`` as the source ``module_name`` was executed from."""
    found = file_hash(path)
    with _lock:
        if found is None:
            _recorded.pop(module_name, None)
        else:
            _recorded[module_name] = found


def module_hash(module_name: str) -> str | None:
    """The hash of a module's source as imported (as on disk for a module the loader
    did not execute), or None for a module without a source file."""
    with _lock:
        found = _recorded.get(module_name)
    if found is not None:
        return found
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None) if module is not None else None
    if path is None or not str(path).endswith(".py"):
        return None
    return file_hash(str(path))


def is_ours(module_name: str) -> bool:
    """Whether a module belongs to this package (its code is no flow's source)."""
    return module_name == "orchestrator" or module_name.startswith("orchestrator.")


def modules_hash(module_names: Iterable[str]) -> str:
    """One hash of the sources of these modules (this package's own left out)."""
    digest = hashlib.sha256()
    for name in sorted(set(module_names)):
        if is_ours(name):
            continue
        digest.update(f"{name}={module_hash(name) or '-'}\n".encode())
    return digest.hexdigest()
