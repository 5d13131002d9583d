"""What ``celery -A bench.plain_worker worker`` loads: the plain app built from
``ORCHESTRATOR_REDIS_URL`` and ``BENCH_PLAIN_QUEUE``."""

import os

from bench.plain import plain_app

app = plain_app(os.environ["ORCHESTRATOR_REDIS_URL"], os.environ["BENCH_PLAIN_QUEUE"])
