"""What runs inside a worker or beat process: the node tasks, the canvas compiler,
the beat scheduler, locks and semaphores. ``celery -A workers worker`` loads it:
importing the package imports every module that registers a task on
:data:`app` (and connects to nothing). Modules inside import each other by module
path, never through this package."""

# each import registers that module's tasks on the app (all bind the one name
# `workers`, which ruff sees as unused once)
import workers.finalize
import workers.liveness
import workers.mapping
import workers.mirroring
import workers.node
import workers.signatures
import workers.starting  # noqa: F401
from workers.app import app

__all__ = ["app"]
