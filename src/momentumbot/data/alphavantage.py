"""Alpha Vantage TIME_SERIES_INTRADAY month files fetched into the store: paced, retried, resumable."""

from __future__ import annotations

import csv
import json
import logging
import re
import tempfile
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import pandas as pd

from momentumbot.config.schema import DataConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.importers import ImportedBars, Label, read_bars_file
from momentumbot.data.manifest import FetchManifest, fetch_lock
from momentumbot.data.store import BarStore, check_symbol, format_ns, validate_bars
from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS_PER_DAY

log = logging.getLogger("momentumbot.data.alphavantage")

DEFAULT_BASE_URL = "https://www.alphavantage.co/query"
ENV_API_KEY = "ALPHAVANTAGE_API_KEY"
ENV_BASE_URL = "ALPHAVANTAGE_BASE_URL"
MANIFEST_SOURCE = "alphavantage"
FIRST_MONTH = "2000-01"  # the provider's intraday history starts here
_MONTH = re.compile(r"(\d{4})-(\d{2})")

# Extended hours run 04:00-20:00 New York: a bar labelled 04:00 can only be start-labelled,
# one labelled 20:00 only end-labelled.
_PRE_MARKET_OPEN_MIN = 4 * 60
_POST_MARKET_CLOSE_MIN = 20 * 60

StopKind = Literal["rate_limit", "refused", "network", "api_key", "http", "budget"]
# words of the provider's rate-limit notes, old and new ("5 calls per minute and 500 calls per
# day", "25 requests per day", "spreading out your free API requests", "higher API call volume")
_RATE_WORDS = ("rate limit", "call frequency", "per day", "per minute", "per second",
               "spreading out", "call volume")  # fmt: skip


# ---- settings


@dataclass(frozen=True)
class AlphaVantageSettings:
    """How to reach the provider; `api_key` never appears in repr, logs or messages."""

    api_key: str = field(repr=False)
    base_url: str = DEFAULT_BASE_URL
    requests_per_minute: float = 5.0
    retries: int = 4
    backoff_seconds: float = 2.0
    max_backoff_seconds: float = 60.0
    timeout_seconds: float = 60.0

    @classmethod
    def from_config(cls, data: DataConfig, env: Mapping[str, str]) -> AlphaVantageSettings:
        """Key and endpoint from the environment first, then the config."""
        key = env.get(ENV_API_KEY, "").strip() or data.alphavantage_api_key.get_secret_value()
        if not key.strip():
            raise ConfigError(
                f"no Alpha Vantage API key: set the environment variable {ENV_API_KEY} "
                "(or data.alphavantage_api_key in the config file); get one at "
                "https://www.alphavantage.co/support/#api-key"
            )
        base_url = env.get(ENV_BASE_URL, "").strip() or data.alphavantage_base_url
        parsed = httpx.URL(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(
                f"Alpha Vantage endpoint {base_url!r} (from {ENV_BASE_URL} or "
                "data.alphavantage_base_url) is not an http(s) URL"
            )
        return cls(
            api_key=key.strip(),
            base_url=base_url,
            requests_per_minute=data.alphavantage_requests_per_minute,
            retries=data.alphavantage_retries,
        )


# ---- months


def parse_month(text: str, option: str = "--from") -> str:
    """A YYYY-MM month, checked; ConfigError naming the option otherwise."""
    m = _MONTH.fullmatch(text.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ConfigError(f"{option}: {text!r} is not a month; write it as YYYY-MM, e.g. 2024-01")
    month = f"{m.group(1)}-{m.group(2)}"
    if month < FIRST_MONTH:
        raise ConfigError(f"{option}: Alpha Vantage intraday history starts at {FIRST_MONTH}")
    return month


def months_between(first: str, last: str) -> list[str]:
    """Every month from first to last inclusive, as YYYY-MM."""
    a, b = parse_month(first, "--from"), parse_month(last, "--to")
    if a > b:
        raise ConfigError(f"--from {a} is after --to {b}")
    return [str(p) for p in pd.period_range(a, b, freq="M")]


def month_bounds_ns(month: str) -> tuple[int, int]:
    """[start, end) of a month in UTC ns: New York midnight to New York midnight."""
    start = pd.Timestamp(f"{month}-01").tz_localize(EXCHANGE_TZ)
    end = (start.tz_localize(None) + pd.offsets.MonthBegin(1)).tz_localize(EXCHANGE_TZ)
    return int(start.tz_convert("UTC").value), int(end.tz_convert("UTC").value)


# ---- answers


class ProviderAnswer:
    """What an HTTP 200 body is: CSV, or one of the provider's JSON notes."""

    CSV = "csv"
    RATE_LIMIT = "rate_limit"
    ERROR = "error"
    UNEXPECTED = "unexpected"


def classify_body(body: bytes) -> tuple[str, str]:
    """(kind, provider text) of a body that came with HTTP 200.

    The provider answers CSV requests with JSON when it refuses: {"Note": ...} or
    {"Information": ...} for its rate limits (and premium-only notes), {"Error Message": ...}
    for a bad symbol, parameter or key.
    """
    head = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head not in (b"{", b"["):
        return ProviderAnswer.CSV, ""
    try:
        doc = json.loads(body.decode("utf-8", errors="replace"))
    except json.JSONDecodeError:
        return ProviderAnswer.UNEXPECTED, body[:200].decode("utf-8", errors="replace")
    if isinstance(doc, dict):
        if "Error Message" in doc:
            return ProviderAnswer.ERROR, str(doc["Error Message"])
        for key in ("Note", "Information"):
            if key in doc:
                return ProviderAnswer.RATE_LIMIT, str(doc[key])
    return ProviderAnswer.UNEXPECTED, json.dumps(doc)[:200]


def truncated_csv(body: bytes) -> bool:
    """True when the last row has fewer fields than the header: the body was cut off.

    A cut inside the last field of a row cannot be seen here; a short read against
    Content-Length or an unfinished chunked body is caught by the HTTP client instead.
    """
    text = body.decode("utf-8", errors="replace").strip("\r\n\ufeff")
    if not text:
        return True
    lines = text.splitlines()
    header = next(csv.reader([lines[0]]))
    if len(lines) == 1:
        return False
    last = next(csv.reader([lines[-1]]), [])
    return len(last) != len(header) or last[-1].strip() == ""


# ---- turning a body into bars


def _extended_label(ts_ns: np.ndarray, source: str) -> Literal["start", "end"]:
    ny = pd.DatetimeIndex(ts_ns.astype("datetime64[ns]")).tz_localize("UTC").tz_convert(EXCHANGE_TZ)
    minute = ny.hour.to_numpy() * 60 + ny.minute.to_numpy()
    at_open = bool((minute == _PRE_MARKET_OPEN_MIN).any())
    at_close = bool((minute == _POST_MARKET_CLOSE_MIN).any())
    if at_open and not at_close:
        return "start"
    if at_close and not at_open:
        return "end"
    why = "bars at both 04:00 and 20:00" if at_open else "no bar at 04:00 or 20:00"
    raise DataError(
        f"{source}: cannot detect the bar label of extended-hours bars ({why} New York time); "
        "force it with --label start or --label end"
    )


def parse_month_body(
    body: bytes,
    symbol: str,
    month: str,
    *,
    extended_hours: bool,
    label: Label = "auto",
    calendar: TradingCalendar | None = None,
) -> ImportedBars | None:
    """The bars of one month answer, validated and normalised to UTC start labels.

    None when the answer holds a header and no bars (no trading in that month).
    """
    source = f"Alpha Vantage {symbol} {month}"
    text = body.decode("utf-8", errors="replace").strip("\r\n\ufeff ")
    if "\n" not in text:
        return None
    with tempfile.TemporaryDirectory(prefix="momentumbot-av-") as tmp:
        path = Path(tmp) / f"{symbol}_{month}.csv"
        path.write_bytes(body)
        read_label: Label = "start" if extended_hours and label == "auto" else label
        try:
            bars = read_bars_file(
                path,
                fmt="alphavantage",
                symbol=symbol,
                tz=EXCHANGE_TZ,
                label=read_label,
                calendar=calendar,
            )[0]
        except DataError as exc:
            raise DataError(str(exc).replace(str(path), source)) from None
    bars = bars._replace(source=source)
    if extended_hours and label == "auto":
        ts = bars.bars["ts"].astype("int64").to_numpy()
        found = _extended_label(ts, source)
        if found == "end":
            frame = bars.bars.copy()
            frame["ts"] = frame["ts"] - pd.Timedelta(minutes=1)
            bars = bars._replace(bars=frame)
        bars = bars._replace(label=found)
    validate_bars(bars.bars, source)
    return bars


# ---- the fetch


@dataclass(frozen=True)
class MonthResult:
    symbol: str
    month: str
    bars: int  # bars of this month in the answer
    added: int
    unchanged: int
    label: str


@dataclass
class FetchReport:
    """What one run did; `stop_kind` is set when it stopped before the end."""

    fetched: list[MonthResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    not_fetched: list[tuple[str, str]] = field(default_factory=list)
    stop_kind: StopKind | None = None
    stop_reason: str = ""
    requests: int = 0
    retries: int = 0

    @property
    def planned(self) -> int:
        return len(self.fetched) + len(self.skipped) + len(self.not_fetched)


@dataclass(frozen=True)
class _Options:
    extended_hours: bool
    adjusted: bool
    label: Label
    replace: bool
    max_requests: int | None


class _Stop(Exception):
    def __init__(self, kind: StopKind, reason: str) -> None:
        super().__init__(reason)
        self.kind: StopKind = kind
        self.reason = reason


class _SymbolFailed(Exception):
    pass


class _KeyTransport(httpx.BaseTransport):
    """Adds the API key to each request on its way out, below httpx's own logging.

    httpx logs and attaches to its errors the request it was handed, which therefore never
    holds the key; only the wire does.
    """

    def __init__(self, api_key: str, inner: httpx.BaseTransport) -> None:
        self._api_key = api_key
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        keyed = httpx.Request(
            request.method,
            request.url.copy_add_param("apikey", self._api_key),
            headers=request.headers,
            extensions=request.extensions,
        )
        return self._inner.handle_request(keyed)

    def close(self) -> None:
        self._inner.close()

    def __repr__(self) -> str:
        return "_KeyTransport(<key hidden>)"


def _inner_transport(base_url: str) -> httpx.BaseTransport:
    """Plain HTTP transport; honours HTTP(S)_PROXY / NO_PROXY like httpx, except on loopback."""
    url = httpx.URL(base_url)
    proxy = urllib.request.getproxies().get(url.scheme)
    loopback = url.host in ("127.0.0.1", "localhost", "::1")
    if proxy and not loopback and not urllib.request.proxy_bypass(url.host):
        return httpx.HTTPTransport(proxy=proxy, retries=0)
    return httpx.HTTPTransport(retries=0)


class _RateGate:
    """At most `per_minute` request starts per minute: each waits for the interval to pass."""

    def __init__(
        self, per_minute: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self.interval = 60.0 / per_minute
        self._clock = clock
        self._sleep = sleep
        self._last: float | None = None

    def wait(self) -> None:
        if self._last is not None:
            delay = self._last + self.interval - self._clock()
            if delay > 0:
                self._sleep(delay)
        self._last = self._clock()


class AlphaVantageFetcher:
    """Fetches symbol-months into a store, skipping those already delivered.

    A month counts as delivered when the manifest (root/manifests/alphavantage.json) says it
    was fetched after the month had ended, with at least the requested hours, and the store
    still holds at least that many of its bars. Months fetched while still running are
    fetched again next time; the store's merge keeps every bar exactly once.
    """

    def __init__(
        self,
        settings: AlphaVantageSettings,
        store: BarStore,
        *,
        calendar: TradingCalendar | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.settings = settings
        self.store = store
        self.calendar = calendar or TradingCalendar("XNYS")
        self._sleep = sleep
        self._clock = clock
        self._now_ns = now_ns

    # -- resumption

    def delivered(
        self,
        manifest: FetchManifest,
        symbol: str,
        month: str,
        extended: bool,
        adjusted: bool = True,
    ) -> bool:
        entry = manifest.get(symbol, month)
        if entry is None or not entry.get("complete"):
            return False
        if extended and not entry.get("extended_hours"):
            return False
        if bool(entry.get("adjusted", True)) != adjusted:
            return False
        want = int(entry.get("bars", 0))
        if want == 0:
            return True
        if not self.store.has(symbol):
            return False
        lo, hi = month_bounds_ns(month)
        return int(self.store.read_arrays(symbol, lo, hi).ts.size) >= want

    # -- the run

    def fetch(
        self,
        symbols: Sequence[str],
        months: Sequence[str],
        *,
        extended_hours: bool = False,
        adjusted: bool = True,
        label: Label = "auto",
        replace: bool = False,
        refresh: bool = False,
        max_requests: int | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> FetchReport:
        """Fetch every (symbol, month) not yet delivered; never raises for provider trouble.

        A rate-limit note, an exhausted retry budget or a refused key stop the run (the report
        says why and what is left); an error answer or bad data for one symbol skips that
        symbol's remaining months and carries on with the others. `adjusted` asks for the
        provider's split- and dividend-adjusted prices (its default); `refresh` fetches months
        the manifest already lists (with `replace`, to take in a new adjustment).
        """
        syms = [check_symbol(s) for s in symbols]
        report = FetchReport()
        total = len(syms) * len(months)
        done = 0
        gate = _RateGate(self.settings.requests_per_minute, self._clock, self._sleep)
        with (
            fetch_lock(self.store.root),
            httpx.Client(
                transport=_KeyTransport(
                    self.settings.api_key, _inner_transport(self.settings.base_url)
                ),
                timeout=self.settings.timeout_seconds,
                headers={"User-Agent": "momentumbot"},
                follow_redirects=True,
            ) as client,
        ):
            manifest = FetchManifest(self.store.root, MANIFEST_SOURCE)
            for sym in syms:
                for month in months:
                    done += 1
                    if report.stop_kind is not None or sym in report.failed:
                        report.not_fetched.append((sym, month))
                    elif not refresh and self.delivered(
                        manifest, sym, month, extended_hours, adjusted
                    ):
                        report.skipped.append((sym, month))
                    else:
                        self._one(
                            client, gate, manifest, report, sym, month,
                            _Options(extended_hours, adjusted, label, replace, max_requests),
                        )  # fmt: skip
                    if progress is not None:
                        progress(done, total, f"{sym} {month}")
        return report

    def _one(
        self,
        client: httpx.Client,
        gate: _RateGate,
        manifest: FetchManifest,
        report: FetchReport,
        sym: str,
        month: str,
        opt: _Options,
    ) -> None:
        extended = opt.extended_hours
        try:
            body = self._get(client, gate, report, sym, month, opt)
            bars = parse_month_body(
                body, sym, month, extended_hours=extended, label=opt.label, calendar=self.calendar
            )
            lo, hi = month_bounds_ns(month)
            if bars is None:
                added = unchanged = in_month = 0
                first = last = None
                used_label = ""
            else:
                rep = self.store.write(sym, bars.bars, source=bars.source, replace=opt.replace)
                added, unchanged = rep.added, rep.unchanged
                ts = bars.bars["ts"].astype("int64").to_numpy()
                in_month = int(((ts >= lo) & (ts < hi)).sum())
                first, last = format_ns(int(ts.min())), format_ns(int(ts.max()))
                used_label = bars.label
        except _Stop as stop:
            report.stop_kind, report.stop_reason = stop.kind, self._redact(stop.reason)
            report.not_fetched.append((sym, month))
            return
        except (_SymbolFailed, DataError) as exc:
            report.failed[sym] = self._redact(f"{month}: {exc}")
            report.not_fetched.append((sym, month))
            log.warning("Alpha Vantage %s: %s", sym, report.failed[sym])
            return
        now = self._now_ns()
        manifest.put(
            sym,
            month,
            {
                "bars": in_month,
                "first": first,
                "last": last,
                "label": used_label,
                "extended_hours": extended,
                "adjusted": opt.adjusted,
                # the last session's bars settle by the next day; until then fetch it again
                "complete": now >= hi + NS_PER_DAY,
                "fetched_at": format_ns(now),
            },
        )
        report.fetched.append(MonthResult(sym, month, in_month, added, unchanged, used_label))
        log.info("Alpha Vantage %s %s: %d bars, %d new", sym, month, in_month, added)

    def _get(
        self,
        client: httpx.Client,
        gate: _RateGate,
        report: FetchReport,
        sym: str,
        month: str,
        opt: _Options,
    ) -> bytes:
        max_requests = opt.max_requests
        params = {
            "function": "TIME_SERIES_INTRADAY",
            "symbol": sym,
            "interval": "1min",
            "month": month,
            "outputsize": "full",
            "datatype": "csv",
            "extended_hours": "true" if opt.extended_hours else "false",
            "adjusted": "true" if opt.adjusted else "false",
        }
        s = self.settings
        attempt = 0
        while True:
            if max_requests is not None and report.requests >= max_requests:
                raise _Stop("budget", f"the request budget of this run ({max_requests}) is spent")
            gate.wait()
            report.requests += 1
            problem = self._attempt(client, params)
            if isinstance(problem, bytes):
                return problem
            attempt += 1
            if attempt > s.retries:
                raise _Stop(
                    "network",
                    f"{sym} {month}: {problem}; gave up after {attempt} attempts",
                )
            wait = min(s.backoff_seconds * 2 ** (attempt - 1), s.max_backoff_seconds)
            report.retries += 1
            log.warning(
                "Alpha Vantage %s %s: %s; retry %d of %d in %.1f s",
                sym, month, self._redact(problem), attempt, s.retries, wait,
            )  # fmt: skip
            self._sleep(wait)

    def _attempt(self, client: httpx.Client, params: dict[str, str]) -> bytes | str:
        """The body of a usable CSV answer, or a description of a problem worth retrying."""
        try:
            resp = client.get(self.settings.base_url, params=params)
        except httpx.TransportError as exc:
            return f"network error ({type(exc).__name__}: {exc})"
        if resp.status_code == 429 or resp.status_code >= 500:
            return f"HTTP {resp.status_code} {resp.reason_phrase}"
        if resp.status_code != 200:
            raise _Stop(
                "http",
                f"the endpoint answered HTTP {resp.status_code} {resp.reason_phrase}; check "
                f"{ENV_BASE_URL} / data.alphavantage_base_url ({self.settings.base_url})",
            )
        body = resp.content
        kind, text = classify_body(body)
        if kind == ProviderAnswer.CSV:
            if truncated_csv(body):
                return f"truncated answer ({len(body):,} bytes, the last row is cut off)"
            return body
        if kind == ProviderAnswer.RATE_LIMIT:
            if any(w in text.lower() for w in _RATE_WORDS):
                raise _Stop("rate_limit", f'Alpha Vantage: "{text}"')
            # e.g. "This is a premium endpoint": waiting will not help
            raise _Stop("refused", f'Alpha Vantage: "{text}"')
        if kind == ProviderAnswer.ERROR:
            if "apikey" in text.lower() or "api key" in text.lower():
                raise _Stop("api_key", f'Alpha Vantage refused the API key: "{text}"')
            raise _SymbolFailed(f'Alpha Vantage answered with an error: "{text}"')
        raise _SymbolFailed(f"unexpected answer from Alpha Vantage: {text}")

    def _redact(self, text: str) -> str:
        key = self.settings.api_key
        return text.replace(key, "***") if key else text


def describe_stop(report: FetchReport) -> str:
    """The operator's message for a run that stopped early: why, what was done, how to resume."""
    left = report.not_fetched
    shown = ", ".join(f"{s} {m}" for s, m in left[:6]) + (", ..." if len(left) > 6 else "")
    why = {
        "rate_limit": "the provider's rate limit was reached",
        "network": "the provider could not be reached reliably",
        "api_key": "the provider refused the API key",
        "http": "the endpoint refused the request",
        "refused": "the provider refused the request",
        "budget": "this run's request budget is spent",
        None: "",
    }[report.stop_kind]
    resume = {
        "api_key": f"fix {ENV_API_KEY} and run the same command again",
        "http": "fix the endpoint and run the same command again",
        "refused": "change the plan or the options and run the same command again",
    }.get(report.stop_kind or "", "run the same command again later")
    return (
        f"stopped: {why} ({report.stop_reason}). Fetched {len(report.fetched)} of "
        f"{report.planned} symbol-months ({len(report.skipped)} were already stored); "
        f"{len(left)} not fetched: {shown}. Everything fetched is stored; {resume} to "
        "fetch only what is missing."
    )


def report_rows(report: FetchReport) -> list[dict[str, Any]]:
    """Per symbol: months fetched / skipped / left, bars added and unchanged, status."""
    syms: dict[str, dict[str, Any]] = {}

    def row(sym: str) -> dict[str, Any]:
        return syms.setdefault(
            sym,
            {"symbol": sym, "fetched": 0, "skipped": 0, "left": 0, "bars": 0, "added": 0,
             "unchanged": 0, "status": "ok"},
        )  # fmt: skip

    for r in report.fetched:
        x = row(r.symbol)
        x["fetched"] += 1
        x["bars"] += r.bars
        x["added"] += r.added
        x["unchanged"] += r.unchanged
    for sym, _ in report.skipped:
        row(sym)["skipped"] += 1
    for sym, _ in report.not_fetched:
        row(sym)["left"] += 1
        row(sym)["status"] = "stopped"
    for sym, why in report.failed.items():
        row(sym)["status"] = f"failed: {why}"
    return list(syms.values())
