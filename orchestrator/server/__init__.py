"""The server, ``orchestrator server``: a REST API under ``/api`` (one router module
per resource in ``api/``), server-rendered pages under ``/`` (``web/``, with
``templates/`` and ``static/`` shipped as package data, no JavaScript build step),
and the live feed of state changes behind both (``feed``). It reads through the same
Client and repositories as the CLI.

The server sits in the top layer beside the CLI and imports neither the CLI nor the
workers; the CLI starts it by its import reference. This ``__init__`` only hands
:func:`create_app` on."""

from orchestrator.server.app import create_app

__all__ = ["create_app"]
