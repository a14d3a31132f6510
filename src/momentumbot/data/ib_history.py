"""1-minute TRADES history from TWS / IB Gateway (ib_async) into the store: chunked by session,
paced, retried on pacing violations (162), resumable, every bar exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from momentumbot.config.schema import DataConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.manifest import FetchManifest, fetch_lock
from momentumbot.data.store import BarStore, check_symbol, format_ns
from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.domain.units import EXCHANGE_TZ, NS

log = logging.getLogger("momentumbot.data.ib_history")

MANIFEST_SOURCE = "ib"

StopKind = Literal["connection", "retries"]


@dataclass(frozen=True)
class IbHistorySettings:
    """Where TWS / IB Gateway is and how gently to ask it for history."""

    host: str = "127.0.0.1"
    port: int = 7497
    client_id: int = 91
    requests_per_minute: float = 30.0
    chunk_sessions: int = 1  # sessions per request ("1 D" is IB's advice for 1-minute bars)
    pacing_backoff_seconds: float = 15.0  # first wait after a 162 pacing violation; doubles
    max_backoff_seconds: float = 600.0
    max_retries: int = 8  # per chunk: pacing violations, cancelled queries, timeouts
    request_timeout_seconds: float = 120.0
    connect_timeout_seconds: float = 10.0

    @classmethod
    def from_config(cls, data: DataConfig, chunk_sessions: int = 1) -> IbHistorySettings:
        if not 1 <= chunk_sessions <= 5:
            raise ConfigError("--chunk-days: between 1 and 5 sessions per request")
        return cls(
            host=data.ib_history_host,
            port=data.ib_history_port,
            client_id=data.ib_history_client_id,
            requests_per_minute=data.ib_history_requests_per_minute,
            chunk_sessions=chunk_sessions,
        )


def parse_day(text: str, option: str, *, last: bool) -> dt.date:
    """YYYY-MM-DD, or YYYY-MM meaning the month's first (or, for --to, last) day."""
    s = text.strip()
    try:
        if len(s) == 7:
            first = dt.date.fromisoformat(f"{s}-01")
            if not last:
                return first
            return (pd.Timestamp(first) + pd.offsets.MonthEnd(0)).date()
        return dt.date.fromisoformat(s)
    except ValueError:
        raise ConfigError(
            f"{option}: {text!r} is not a day or month; write YYYY-MM-DD or YYYY-MM"
        ) from None


@dataclass(frozen=True)
class ChunkResult:
    symbol: str
    sessions: tuple[str, ...]  # YYYY-MM-DD
    bars: int
    added: int
    unchanged: int


@dataclass
class IbFetchReport:
    fetched: list[ChunkResult] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (symbol, session)
    not_closed: list[tuple[str, str]] = field(default_factory=list)  # after the server's now
    failed: dict[str, str] = field(default_factory=dict)
    not_fetched: list[tuple[str, str]] = field(default_factory=list)
    stop_kind: StopKind | None = None
    stop_reason: str = ""
    requests: int = 0
    pacing_violations: int = 0
    retries: int = 0

    @property
    def sessions_fetched(self) -> int:
        return sum(len(c.sessions) for c in self.fetched)


class _Stop(Exception):
    def __init__(self, kind: StopKind, reason: str) -> None:
        super().__init__(reason)
        self.kind: StopKind = kind
        self.reason = reason


class _SymbolFailed(Exception):
    pass


class _Pacer:
    """At most `per_minute` request starts a minute, and after a pacing violation a pause."""

    def __init__(
        self,
        per_minute: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self.interval = 60.0 / per_minute
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    async def wait(self) -> None:
        delay = self._next - self._clock()
        if delay > 0:
            await self._sleep(delay)
        self._next = self._clock() + self.interval

    def hold(self, seconds: float) -> None:
        """No request before `seconds` from now."""
        self._next = max(self._next, self._clock() + seconds)


class IbHistoryFetcher:
    """Fetches 1-minute TRADES bars (regular hours, epoch-second dates) session by session.

    A session counts as delivered when the manifest (root/manifests/ib.json) records it and
    the store still holds at least that many of its bars. Only sessions closed by the
    server's clock are asked for. Each answer is cut to the chunk's regular-session minutes
    before it is merged, so overlapping answers never duplicate a bar.
    """

    def __init__(
        self,
        settings: IbHistorySettings,
        store: BarStore,
        *,
        calendar: TradingCalendar | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.calendar = calendar or TradingCalendar("XNYS")
        self._sleep = sleep
        self._clock = clock

    # -- resumption

    def _delivered(
        self, manifest: FetchManifest, symbol: str, sessions: pd.DatetimeIndex
    ) -> np.ndarray:
        grid = self.calendar.grid(sessions)
        done = np.zeros(len(sessions), dtype=bool)
        entries = manifest.entries(symbol)
        if not entries or len(sessions) == 0:
            return done
        counts = np.zeros(len(sessions), dtype=np.int64)
        if self.store.has(symbol):
            ts = self.store.read_arrays(symbol, int(grid.open_ns[0]), int(grid.close_ns[-1])).ts
            lo = np.searchsorted(ts, grid.open_ns, side="left")
            hi = np.searchsorted(ts, grid.close_ns, side="left")
            counts = hi - lo
        for i, day in enumerate(sessions):
            entry = entries.get(day.strftime("%Y-%m-%d"))
            if entry is not None and entry.get("complete"):
                done[i] = counts[i] >= int(entry.get("bars", 0))
        return done

    def _chunks(self, todo: pd.DatetimeIndex) -> list[pd.DatetimeIndex]:
        """Runs of consecutive calendar sessions, at most chunk_sessions long."""
        if len(todo) == 0:
            return []
        all_sessions = self.calendar.all_sessions()
        pos = all_sessions.get_indexer(todo)
        chunks: list[pd.DatetimeIndex] = []
        start = 0
        for i in range(1, len(todo) + 1):
            if (
                i == len(todo)
                or pos[i] != pos[i - 1] + 1
                or i - start >= self.settings.chunk_sessions
            ):
                chunks.append(todo[start:i])
                start = i
        return chunks

    # -- the run

    async def fetch(
        self,
        symbols: Sequence[str],
        first: dt.date,
        last: dt.date,
        *,
        replace: bool = False,
        refresh: bool = False,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> IbFetchReport:
        """Fetch every regular session from first to last not yet delivered (all of them with
        `refresh`), for each symbol."""
        from ib_async import IB

        syms = [check_symbol(s) for s in symbols]
        sessions = self.calendar.sessions(first, last)
        if len(sessions) == 0:
            raise ConfigError(f"no trading session between {first} and {last}")
        report = IbFetchReport()
        s = self.settings
        loop = asyncio.get_running_loop()
        pacer = _Pacer(s.requests_per_minute, self._clock or loop.time, self._sleep)
        ib = IB()
        ib.RaiseRequestErrors = True
        with fetch_lock(self.store.root):
            try:
                await ib.connectAsync(
                    s.host, s.port, clientId=s.client_id, timeout=s.connect_timeout_seconds,
                    readonly=True,
                )  # fmt: skip
            except (OSError, TimeoutError) as exc:
                report.stop_kind = "connection"
                report.stop_reason = (
                    f"cannot connect to TWS / IB Gateway at {s.host}:{s.port} with client id "
                    f"{s.client_id} ({type(exc).__name__}: {exc}); is it running with the API "
                    "enabled, and is the client id free?"
                )
                report.not_fetched = [
                    (sym, d.strftime("%Y-%m-%d")) for sym in syms for d in sessions
                ]
                return report
            try:
                server_now = await asyncio.wait_for(ib.reqCurrentTimeAsync(), 10)
                now_ns = int(server_now.timestamp()) * NS
                await self._run(
                    ib, pacer, syms, sessions, now_ns, report, replace, refresh, progress
                )
            finally:
                ib.disconnect()
        return report

    async def _run(
        self,
        ib: Any,
        pacer: _Pacer,
        syms: list[str],
        sessions: pd.DatetimeIndex,
        now_ns: int,
        report: IbFetchReport,
        replace: bool,
        refresh: bool,
        progress: Callable[[int, int, str], None] | None,
    ) -> None:
        manifest = FetchManifest(self.store.root, MANIFEST_SOURCE)
        grid = self.calendar.grid(sessions)
        closed = grid.close_ns <= now_ns
        total = len(syms) * len(sessions)
        done = 0
        for sym in syms:
            names = [d.strftime("%Y-%m-%d") for d in sessions]
            report.not_closed += [(sym, n) for n, c in zip(names, closed, strict=True) if not c]
            delivered = self._delivered(manifest, sym, sessions)
            if refresh:
                delivered[:] = False
            report.skipped += [(sym, n) for n, d in zip(names, delivered, strict=True) if d]
            done += int((~closed | delivered).sum())
            todo = sessions[closed & ~delivered]
            chunks = self._chunks(todo)
            contract = None
            for chunk in chunks:
                days = [d.strftime("%Y-%m-%d") for d in chunk]
                if report.stop_kind is not None or sym in report.failed:
                    report.not_fetched += [(sym, d) for d in days]
                    done += len(days)
                    continue
                try:
                    if contract is None:
                        contract = await self._contract(ib, sym)
                    result = await self._chunk(ib, pacer, contract, sym, chunk, report, replace)
                except _Stop as stop:
                    report.stop_kind, report.stop_reason = stop.kind, stop.reason
                    report.not_fetched += [(sym, d) for d in days]
                except (_SymbolFailed, DataError) as exc:
                    report.failed[sym] = f"{days[0]}: {exc}"
                    report.not_fetched += [(sym, d) for d in days]
                    log.warning("IB history %s: %s", sym, report.failed[sym])
                else:
                    stamp = format_ns(now_ns)
                    for day, n in zip(days, result.per_session, strict=True):
                        manifest.put(sym, day, {"bars": n, "complete": True, "fetched_at": stamp})
                    report.fetched.append(
                        ChunkResult(sym, tuple(days), result.bars, result.added, result.unchanged)
                    )
                done += len(days)
                if progress is not None:
                    progress(done, total, f"{sym} {days[-1]}")
            if progress is not None:
                progress(done, total, sym)

    async def _contract(self, ib: Any, sym: str) -> Any:
        from ib_async import RequestError, Stock

        try:
            details = await asyncio.wait_for(
                ib.reqContractDetailsAsync(Stock(sym, "SMART", "USD")), 30
            )
        except RequestError as exc:
            raise _SymbolFailed(
                f"IB has no stock {sym} (error {exc.code}: {exc.message})"
            ) from None
        except TimeoutError:
            raise _Stop("connection", f"no answer to the contract request for {sym}") from None
        except ConnectionError as exc:
            raise _Stop("connection", f"the connection dropped ({exc})") from None
        if not details:
            raise _SymbolFailed(f"IB has no stock {sym} at SMART in USD")
        if len(details) > 1:
            raise _SymbolFailed(f"{sym} is ambiguous at IB ({len(details)} stocks at SMART)")
        return details[0].contract

    async def _chunk(
        self,
        ib: Any,
        pacer: _Pacer,
        contract: Any,
        sym: str,
        chunk: pd.DatetimeIndex,
        report: IbFetchReport,
        replace: bool,
    ) -> _ChunkBars:
        from ib_async import RequestError

        s = self.settings
        grid = self.calendar.grid(chunk)
        end = pd.Timestamp(int(grid.close_ns[-1]), tz="UTC").to_pydatetime()
        span_days = (chunk[-1] - chunk[0]).days + 1
        duration = f"{span_days} D"
        attempt = 0
        while True:
            if not ib.isConnected():
                raise _Stop("connection", "the connection to TWS / IB Gateway was lost")
            await pacer.wait()
            report.requests += 1
            problem = ""
            try:
                bars = await ib.reqHistoricalDataAsync(
                    contract, end, duration, "1 min", "TRADES", True, formatDate=2,
                    timeout=s.request_timeout_seconds,
                )  # fmt: skip
            except RequestError as exc:
                text = exc.message.lower()
                if exc.code == 162 and "pacing violation" in text:
                    report.pacing_violations += 1
                    problem = "pacing violation (162)"
                elif exc.code == 162 and "no data" in text:
                    bars = []
                    return await self._store(sym, grid, bars, replace)
                elif exc.code in (162, 366, 322):
                    problem = f"error {exc.code}: {exc.message}"
                else:
                    raise _SymbolFailed(f"error {exc.code}: {exc.message}") from None
            except ConnectionError as exc:
                raise _Stop("connection", f"the connection dropped ({exc})") from None
            else:
                if bars:
                    return await self._store(sym, grid, bars, replace)
                problem = "no answer in time (empty result)"
            attempt += 1
            if attempt > s.max_retries:
                raise _Stop("retries", f"{sym} {chunk[0]:%Y-%m-%d}: {problem}, {attempt} times")
            wait = min(s.pacing_backoff_seconds * 2 ** (attempt - 1), s.max_backoff_seconds)
            report.retries += 1
            pacer.hold(wait)
            log.warning(
                "IB history %s %s: %s; retry %d of %d in %.1f s",
                sym, f"{chunk[0]:%Y-%m-%d}", problem, attempt, s.max_retries, wait,
            )  # fmt: skip

    async def _store(self, sym: str, grid: Any, bars: Sequence[Any], replace: bool) -> _ChunkBars:
        """Keep the answer's bars inside the chunk's regular sessions and merge them."""
        n = len(bars)
        ts = np.fromiter((int(b.date.timestamp()) * NS for b in bars), dtype=np.int64, count=n)
        frame = pd.DataFrame(
            {
                "ts": ts,
                "open": np.fromiter((b.open for b in bars), dtype=np.float64, count=n),
                "high": np.fromiter((b.high for b in bars), dtype=np.float64, count=n),
                "low": np.fromiter((b.low for b in bars), dtype=np.float64, count=n),
                "close": np.fromiter((b.close for b in bars), dtype=np.float64, count=n),
                "volume": np.fromiter((float(b.volume) for b in bars), dtype=np.float64, count=n),
            }
        )
        session = np.searchsorted(grid.open_ns, ts, side="right") - 1
        inside = (session >= 0) & (ts < grid.close_ns[np.clip(session, 0, None)])
        frame, session = frame.loc[inside].reset_index(drop=True), session[inside]
        per_session = np.bincount(session, minlength=len(grid.open_ns)).astype(int).tolist()
        if frame.empty:
            return _ChunkBars(0, 0, 0, per_session)
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        day = pd.Timestamp(int(grid.open_ns[0]), tz="UTC").tz_convert(EXCHANGE_TZ)
        source = f"IB {sym} {day:%Y-%m-%d}"
        rep = await asyncio.to_thread(self.store.write, sym, frame, source=source, replace=replace)
        return _ChunkBars(len(frame), rep.added, rep.unchanged, per_session)


@dataclass(frozen=True)
class _ChunkBars:
    bars: int
    added: int
    unchanged: int
    per_session: list[int]


def describe_stop(report: IbFetchReport) -> str:
    left = report.not_fetched
    shown = ", ".join(f"{s} {d}" for s, d in left[:6]) + (", ..." if len(left) > 6 else "")
    return (
        f"stopped: {report.stop_reason}. Fetched {report.sessions_fetched} symbol-sessions "
        f"({len(report.skipped)} were already stored); {len(left)} not fetched: {shown}. "
        "Everything fetched is stored; run the same command again to fetch only what is missing."
    )
