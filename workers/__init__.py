"""What runs inside a worker or beat process: the node tasks, the canvas compiler,
the beat scheduler, locks and semaphores. ``celery -A workers worker`` loads it."""

from workers.nodes import app

__all__ = ["app"]
