"""The pages under ``/``: server-rendered templates and one small script, no build step.
``runs`` (the root runs and a run's live tree), ``catalog`` (flows, schedules, limits),
``login`` (signing in with a token). This ``__init__`` only hands the routers on."""

from orchestrator.server.web import catalog, login, runs

ROUTERS = [runs.router, catalog.router, login.router]

__all__ = ["ROUTERS"]
