"""Every Redis key prefix, channel and Celery task name, in one place."""

from __future__ import annotations

#: Celery task names (the client sends by name; ``workers`` registers them).
START_FLOW_RUN = "orchestrator.start_flow_run"
NODE = "orchestrator.node"
MIRROR = "orchestrator.mirror"
FINALIZE = "orchestrator.finalize"
BARRIER = "orchestrator.barrier"
COLLECT_MAP = "orchestrator.collect_map"
RESUBMIT = "orchestrator.resubmit"
RELEASE_SLOTS = "orchestrator.release_slots"
WAKE_LABEL = "orchestrator.wake_label"

KEY_PREFIX = "orchestrator:"
#: Pub/sub channel announcing each state change of a flow run.
FLOW_RUN_CHANNEL = KEY_PREFIX + "flow-run:{id}"
#: Lock held while a child run is created for an idempotency key.
CHILD_LOCK = KEY_PREFIX + "lock:child:{key}"

#: Redis lock held by the one active beat (a lease, renewed each tick); one per
#: database, so fleets sharing a Redis but not a database do not block each other.
BEAT_LEADER_LOCK = KEY_PREFIX + "beat:leader:{scope}"
#: Seconds the beat leader lock lasts without renewal: a second beat takes over
#: at most this long (plus one tick) after the leader dies.
BEAT_LEASE_SECONDS = 15.0
#: Seconds between two beat ticks.
BEAT_TICK_SECONDS = 1.0
#: Seconds between two reads of the registered schedules by beat.
BEAT_REFRESH_SECONDS = 5.0

#: Hash of concurrency limits: label -> slots (a cache of the database's table).
LIMITS = KEY_PREFIX + "limits"
#: Set once the limits and the slots of the Running runs are loaded into this Redis
#: from the database; gone after a flush or a restart without persistence, which
#: makes the next slot request load them again.
LIMITS_LOADED = KEY_PREFIX + "limits:loaded"
#: Sorted set of the flow runs holding a label's slots, scored by lease expiry (ms).
SLOTS = KEY_PREFIX + "slots:"
#: Sorted set of the flow runs waiting for a label, scored by arrival (ms).
WAITING = KEY_PREFIX + "waiting:"
#: Set of the labels a flow run holds.
HELD = KEY_PREFIX + "held:"
#: The flow run a spliced child runs under (for lease renewal and exemptions).
PARENT = KEY_PREFIX + "parent:"
#: Hash counting how often the sweeper resubmitted a stuck flow run.
RESUBMITS = KEY_PREFIX + "resubmits"

#: A worker process's liveness key (``alive:{host}:{pid}``), set with a short TTL and
#: refreshed every second by the process's liveness thread.
ALIVE = KEY_PREFIX + "alive:"
#: Set of the worker processes (``host:pid``) that registered a liveness key.
WORKERS = KEY_PREFIX + "workers"
#: Set of the broker delivery tags a worker's main process received (its messages
#: held unacknowledged), so a live worker can hand them back when it dies.
RESERVED = KEY_PREFIX + "reserved:"
#: Redis lock held by the one worker taking over dead workers' runs.
TAKEOVER_LOCK = KEY_PREFIX + "lock:takeover"
#: Redis lock held (till it expires) by the worker sweeping for stuck runs when no
#: beat is alive, one per database like the beat leader lock.
SWEEP_LOCK = KEY_PREFIX + "lock:sweep:{scope}"
#: Hash of a flow run's task runs whose code runs now: task run id -> the Celery task
#: id running it (what a cancel revokes, terminating the code).
RUNNING_CODE = KEY_PREFIX + "running-code:{id}"
#: The field of :data:`RUNNING_CODE` a cancel sets (before it reads the others), so
#: that code recorded after that read sees the cancel and does not start.
RUNNING_CODE_CANCELLED = "!cancelled"
#: Seconds a running-code entry outlives a worker that died without removing it.
RUNNING_CODE_TTL = 86_400
