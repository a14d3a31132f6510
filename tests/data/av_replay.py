"""A local HTTP server that answers like Alpha Vantage's TIME_SERIES_INTRADAY, from recorded files.

Month 2019-02 is served from the provider's own files in ../shared/data/eqker_alphavantage_2019-02
(read in place at test time, never copied into the repo). Months 2019-01 and 2019-03 are the same
answers with every New York date moved by -4 / +4 weeks (Jan 14-18 and Mar 11-15 2019, both plain
trading weeks; March is after the DST change, so its UTC times differ): they exist only to make
multi-month fetches. Refusals are the provider's documented JSON answers.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd

RECORDED_DIR = "eqker_alphavantage_2019-02"
RECORDED_MONTH = "2019-02"
DERIVED_MONTHS = {"2019-01": -28, "2019-03": 28}  # days moved from the recorded week

# The provider's answers when it refuses (they come with HTTP 200, as JSON, even for datatype=csv).
RATE_LIMIT_NOTE = {
    "Note": "Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per "
    "minute and 500 calls per day. Please visit https://www.alphavantage.co/premium/ if you "
    "would like to target a higher API call frequency."
}
RATE_LIMIT_INFORMATION = {
    "Information": "Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests "
    "per day. Please subscribe to any of the premium plans at "
    "https://www.alphavantage.co/premium/ to instantly remove all daily rate limits."
}
INVALID_CALL = {
    "Error Message": "Invalid API call. Please retry or visit the documentation "
    "(https://www.alphavantage.co/documentation/) for TIME_SERIES_INTRADAY."
}
INVALID_KEY = {
    "Error Message": "the parameter apikey is invalid or missing. Please claim your free API key "
    "on (https://www.alphavantage.co/support/#api-key). It should take less than 20 seconds."
}


def recorded_body(shared_data: Path, symbol: str) -> bytes:
    """The provider's 2019-02 answer for `symbol`, as it was recorded."""
    return gzip.decompress((shared_data / RECORDED_DIR / f"{symbol}_1min.csv.gz").read_bytes())


def shifted_body(body: bytes, days: int) -> bytes:
    """The same answer with every (New York wall-clock) timestamp moved by whole days."""
    lines = body.decode().splitlines()
    out = [lines[0]]
    delta = pd.Timedelta(days=days)
    for line in lines[1:]:
        stamp, rest = line.split(",", 1)
        moved = pd.Timestamp(stamp) + delta
        out.append(f"{moved:%Y-%m-%d %H:%M:%S},{rest}")
    return "\n".join(out).encode()


def month_bodies(shared_data: Path, symbols: list[str]) -> dict[tuple[str, str], bytes]:
    bodies: dict[tuple[str, str], bytes] = {}
    for sym in symbols:
        base = recorded_body(shared_data, sym)
        bodies[(sym, RECORDED_MONTH)] = base
        for month, days in DERIVED_MONTHS.items():
            bodies[(sym, month)] = shifted_body(base, days)
    return bodies


@dataclass
class Behaviour:
    """One scripted answer: csv | json | drop | cut-transport | cut-body | status."""

    kind: str
    doc: dict[str, str] | None = None
    keep: float = 0.5  # share of the body sent by the cut-* kinds
    status: int = 503


@dataclass
class ReplayState:
    bodies: dict[tuple[str, str], bytes]
    api_key: str
    scripted: dict[tuple[str, str], list[Behaviour]] = field(default_factory=dict)
    limit_after: int | None = None  # answers the rate-limit note once this many CSVs went out
    limit_doc: dict[str, str] = field(default_factory=lambda: dict(RATE_LIMIT_INFORMATION))
    requests: list[dict[str, str]] = field(default_factory=list)
    served: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, params: dict[str, str]) -> Behaviour | tuple[str, bytes]:
        with self.lock:
            self.requests.append(params)
            if params.get("apikey") != self.api_key:
                return Behaviour("json", INVALID_KEY)
            key = (params.get("symbol", ""), params.get("month", ""))
            queue = self.scripted.get(key)
            if queue:
                return queue.pop(0)
            if self.limit_after is not None and self.served >= self.limit_after:
                return Behaviour("json", self.limit_doc)
            body = self.bodies.get(key)
            if body is None or params.get("function") != "TIME_SERIES_INTRADAY":
                return Behaviour("json", INVALID_CALL)
            self.served += 1
            return ("csv", body)

    def csv_requests(self) -> list[tuple[str, str]]:
        return [(r["symbol"], r["month"]) for r in self.requests if "symbol" in r]


def _handler(state: ReplayState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            params = {k: v[-1] for k, v in query.items()}
            what = state.answer(params)
            self.close_connection = True
            if isinstance(what, tuple):
                self._send(200, what[1], "text/csv")
                return
            if what.kind == "json":
                import json

                self._send(200, json.dumps(what.doc, indent=4).encode(), "application/json")
            elif what.kind == "drop":
                return  # close without answering
            elif what.kind == "status":
                self._send(what.status, b"Service Unavailable", "text/plain")
            elif what.kind in ("cut-transport", "cut-body"):
                body = state.bodies[(params["symbol"], params["month"])]
                part = body[: int(len(body) * what.keep)]
                if what.kind == "cut-body":  # a complete HTTP answer whose CSV is cut mid-row
                    self._send(200, part, "text/csv")
                else:  # promises the whole body, sends part of it, hangs up
                    self.send_response(200)
                    self.send_header("Content-Type", "text/csv")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(part)
                    self.wfile.flush()
            else:  # pragma: no cover
                raise AssertionError(what.kind)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

    return Handler


class AvReplay:
    """The server: `url` is its /query endpoint; `state` scripts and records its answers."""

    def __init__(self, state: ReplayState) -> None:
        self.state = state
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/query"

    def __enter__(self) -> AvReplay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
