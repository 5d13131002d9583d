"""A local webhook for the state handler tests: an HTTP server on 127.0.0.1 that keeps
the JSON bodies posted to it (:class:`Webhook`; the ``webhook`` fixture is in
tests/conftest.py)."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class Webhook:
    """A local HTTP server that keeps the JSON bodies posted to it."""

    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.posted.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
