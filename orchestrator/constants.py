"""Every Redis key prefix, channel and Celery task name, in one place."""

from __future__ import annotations

#: Celery task names (the client sends by name; ``workers`` registers them).
START_FLOW_RUN = "orchestrator.start_flow_run"
NODE = "orchestrator.node"
MIRROR = "orchestrator.mirror"
FINALIZE = "orchestrator.finalize"

KEY_PREFIX = "orchestrator:"
#: Pub/sub channel announcing each state change of a flow run.
FLOW_RUN_CHANNEL = KEY_PREFIX + "flow-run:{id}"
#: Lock held while a child run is created for an idempotency key.
CHILD_LOCK = KEY_PREFIX + "lock:child:{key}"

#: Seconds a duplicate node waits before looking again at a run held elsewhere.
DUPLICATE_RECHECK_SECONDS = 1.0
#: The longest a task may run (its Celery hard time limit when it sets no timeout).
DEFAULT_TIME_LIMIT = 6 * 3600
