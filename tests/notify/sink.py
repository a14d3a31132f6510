"""A real local HTTP server standing in for an Apprise JSON target (`json://127.0.0.1:PORT/...`):
it records every message it is sent, and can answer 500 or hang until released."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    title: str
    message: str
    type: str
    raw: str


@dataclass
class AlertSink:
    """`mode`: "ok" (200), "error" (500) or "hang" (the answer waits for `release`)."""

    mode: str = "ok"
    received: list[Received] = field(default_factory=list)
    entered: threading.Event = field(default_factory=threading.Event)  # a request came
    release: threading.Event = field(default_factory=threading.Event)  # hang: answer now
    answered: threading.Event = field(default_factory=threading.Event)  # an answer went out
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> AlertSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                body: dict[str, Any] = json.loads(raw) if raw else {}
                with sink._cond:
                    sink.received.append(
                        Received(self.path, body.get("title", ""), body.get("message", ""),
                                 body.get("type", ""), raw)
                    )  # fmt: skip
                    sink._cond.notify_all()
                sink.entered.set()
                if sink.mode == "hang":
                    sink.release.wait(30)
                code = 500 if sink.mode == "error" else 200
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                    return
                sink.answered.set()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def url(self, path: str = "alerts") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def wait_for(self, n: int, timeout: float = 20.0) -> list[Received]:
        """The messages once at least n came (fails the test after `timeout`)."""
        with self._cond:
            ok = self._cond.wait_for(lambda: len(self.received) >= n, timeout)
            assert ok, f"expected {n} alerts, got {len(self.received)}"
            return list(self.received)

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
