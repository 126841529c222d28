"""A real HTTP receiver on loopback for the alert tests: records every POST (path, JSON body).

Not a fake of Alertmanager's logic: it only listens on port 0 and keeps what it was sent, so the tests check the
exact requests the engine makes over a real socket.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordingReceiver:
    """``with RecordingReceiver() as rx: ... rx.url, rx.requests`` (each ``{"path", "body", "headers"}``)."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                outer.requests.append(
                    {"path": self.path, "body": json.loads(raw or b"null"), "headers": dict(self.headers)}
                )
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> RecordingReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, path: str | None = None) -> list[Any]:
        return [r["body"] for r in self.requests if path is None or r["path"] == path]

    def alerts(self, path: str | None = None) -> list[dict[str, Any]]:
        """Every alert sent, flattened (webhook payloads' ``alerts[]`` or Alertmanager lists)."""
        out: list[dict[str, Any]] = []
        for b in self.bodies(path):
            out.extend(b["alerts"] if isinstance(b, dict) else b)
        return out
