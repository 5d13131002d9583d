"""Benchmarks: our flows side by side with plain Celery on the same Redis and the
same worker shape. Run ``python -m bench --help``; see ``bench/README.md``."""
