"""IB market data through ib_async, for the IB broker adapter: the live-data entitlement
check, the market-data lines kept open for quotes, and paced history requests kept up to date
as 1-minute bar streams (formatDate 2: UTC), or for symbols beyond the streams' cap a one-shot
history plus 5-second real-time bars made into minutes (`five_second_minutes`); their bars come
out as `StreamBar`s. A stream's own errors (162 cancelled, 10182, 322, 101) are told to the
`on_stream_lost` callback with its symbol."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from ib_async import IB, BarDataList, Contract, RealTimeBarList, RequestError, Ticker

from momentumbot.domain.errors import DataError
from momentumbot.domain.units import NS
from momentumbot.execution.broker_protocol import BarArrays, BrokerUnavailable, OnBar, StreamBar
from momentumbot.execution.five_second_minutes import FiveSecondMinutes

log = logging.getLogger("momentumbot.broker")

MARKET_DATA_PROBLEMS = {
    354: "market data not subscribed",
    10090: "part of the market data is not subscribed",
    10167: "delayed market data shown instead of live",
    10168: "market data not subscribed (delayed not enabled)",
    10197: "no market data during competing live session",
    10186: "market data is not subscribed (delayed)",
    101: "no market data line left (IB's limit of market data lines reached)",
}
MARKET_DATA_BATCH = 50
MAX_TICKERS = 101  # market data lines used up: that symbol gets no market data
# a stream's own errors: it ended (162 query cancelled; 10182 after a farm drop) or never
# started (322: too many open historical requests; 101: too many market data lines)
STREAM_ERRORS = {162: "cancelled", 10182: "failed (data farm)", 322: "refused", 101: "refused"}
# one-shot history requests in flight: with at most 45 streams open (`[broker] max_streams`),
# IB's 50 open historical requests are never reached
ONE_SHOTS_IN_FLIGHT = 4

Stream = BarDataList | RealTimeBarList
OnStreamLost = Callable[[str, str, bool], None]  # symbol, why, no market data (101)


def ib_ns(t: Any) -> int:
    """An ib_async datetime as UTC ns (whole seconds, as IB sends them)."""
    return int(round(t.timestamp())) * NS


def _stream_bar(bar: Any) -> StreamBar:
    return StreamBar(ib_ns(bar.date), float(bar.open), float(bar.close), float(bar.volume))


class _Pacer:
    """At most `per_minute` request starts a minute (real time: IB's pacing is wall-clock)."""

    def __init__(self, per_minute: float) -> None:
        self.interval = 60.0 / per_minute
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        delay = self._next - now
        self._next = max(now, self._next) + self.interval
        if delay > 0:
            await asyncio.sleep(delay)

    def hold(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)


class IbMarketData:
    """Market-data lines and bar streams of one ib_async connection."""

    def __init__(
        self,
        ib: IB,
        contracts: dict[str, Contract],
        *,
        request_timeout: float,
        requests_per_minute: float,
        pacing_backoff: float,
        max_retries: int,
        on_stream_lost: OnStreamLost | None = None,
    ) -> None:
        self.ib = ib
        self.contracts = contracts  # shared with the broker, which qualifies them
        self.request_timeout = request_timeout
        self.pacing_backoff = pacing_backoff
        self.max_retries = max_retries
        self._streams: dict[str, Stream] = {}
        self._stream_req: dict[int, str] = {}  # reqId of a stream -> its symbol
        self.on_stream_lost = on_stream_lost
        self._one_shots = asyncio.Semaphore(ONE_SHOTS_IN_FLIGHT)
        self._tickers: dict[str, Ticker] = {}
        self._mkt_req: dict[int, str] = {}
        self._md_problem: dict[str, str] = {}
        self._pacer = _Pacer(requests_per_minute)
        self.pacing_violations = 0
        self.history_requests = 0
        self.hmds_broken = False  # 2105 seen, no 2106 / 2107 since (the broker tracks it)

    def clear(self) -> None:
        """The connection dropped: every line and stream went with it."""
        self._streams.clear()
        self._stream_req.clear()
        self._tickers.clear()
        self._mkt_req.clear()

    def on_error(self, req_id: int, code: int, text: str = "") -> bool:
        """An error about a market-data line or a bar stream: dealt with (True), else not
        about market data. A stream's own error ends it: its symbol goes to
        `on_stream_lost` (101: no market data for it)."""
        stream_sym = self._stream_req.get(req_id)
        if stream_sym is not None and code in STREAM_ERRORS:
            del self._stream_req[req_id]
            stream = self._streams.get(stream_sym)
            if stream is not None and stream.reqId == req_id:
                del self._streams[stream_sym]
            why = f"bar stream {STREAM_ERRORS[code]}: error {code} {text}".strip()
            log.warning("%s: %s", stream_sym, why)
            if self.on_stream_lost is not None:
                self.on_stream_lost(stream_sym, why, code == MAX_TICKERS)
            return True
        sym = self._mkt_req.get(req_id)
        if sym is None or code not in MARKET_DATA_PROBLEMS:
            return False
        self._md_problem[sym] = f"{code} {MARKET_DATA_PROBLEMS[code]}"
        return True

    # ------------------------------------------------------------ market data

    async def problems(
        self, symbols: Sequence[str], wait_seconds: float, *, keep: bool = False
    ) -> dict[str, str]:
        """Which symbols have no live market data (354, 10167, 10168, delayed type, nothing).

        Checked MARKET_DATA_BATCH symbols at a time (IB allows about 100 market-data lines);
        with `keep` the lines stay open for quotes (marketable limits), so at most that many.
        """
        self.ib.reqMarketDataType(1)
        self._md_problem.clear()
        out: dict[str, str] = {}
        batch = len(symbols) if keep else MARKET_DATA_BATCH
        for i in range(0, len(symbols), max(batch, 1)):
            out.update(await self._check_batch(symbols[i : i + batch], wait_seconds, keep))
        return out

    async def _check_batch(
        self, symbols: Sequence[str], wait_seconds: float, keep: bool
    ) -> dict[str, str]:
        for sym in symbols:
            t = self.ib.reqMktData(self.contracts[sym], "", False, False)
            self._tickers[sym] = t
            req = self._ticker_req(t)
            if req is not None:
                self._mkt_req[req] = sym
        deadline = time.monotonic() + wait_seconds
        while time.monotonic() < deadline:
            if all(s in self._md_problem or self._has_data(self._tickers[s]) for s in symbols):
                break
            await asyncio.sleep(0.02)
        out: dict[str, str] = {}
        for sym in symbols:
            t = self._tickers[sym]
            if sym in self._md_problem:
                out[sym] = self._md_problem[sym]
            elif not self._has_data(t):
                out[sym] = f"no market data within {wait_seconds:g} s"
            elif t.marketDataType != 1:
                out[sym] = f"market data type {t.marketDataType} (delayed or frozen), not live"
        if not keep:
            for sym in symbols:
                with contextlib.suppress(Exception):
                    self.ib.cancelMktData(self.contracts[sym])
                self._tickers.pop(sym, None)
            self._mkt_req = {r: s for r, s in self._mkt_req.items() if s not in set(symbols)}
        return out

    def _ticker_req(self, t: Ticker) -> int | None:
        for req, ticker in self.ib.wrapper.reqId2Ticker.items():
            if ticker is t:
                return int(req)
        return None

    @staticmethod
    def _has_data(t: Ticker) -> bool:
        return any(
            isinstance(x, float) and not math.isnan(x) and x > 0
            for x in (t.last, t.close, t.bid, t.ask)
        )

    def quote(self, symbol: str) -> tuple[float, float]:
        """(bid, ask) from the market data line kept open for marketable limits; NaN if none."""
        t = self._tickers.get(symbol)
        if t is None:
            return math.nan, math.nan
        bid = t.bid if isinstance(t.bid, float) and t.bid > 0 else math.nan
        ask = t.ask if isinstance(t.ask, float) and t.ask > 0 else math.nan
        return bid, ask

    # ------------------------------------------------------------------ bars

    async def subscribe_bars(
        self, symbol: str, duration: str, on_bar: OnBar, *, realtime_bars: bool = False
    ) -> BarArrays:
        """Regular-session 1-minute TRADES bars over `duration`, then kept up to date: every
        later bar goes to `on_bar(symbol, bar)`. IB revises the forming minute under its own
        date, which ib_async writes over the last bar (`hasNewBar` False): each revision goes
        to `on_bar` too, and when a new bar starts the one before it goes once more, as it
        ended. Which bars are closed is the caller's to judge (`trading.minutes`); the answer
        returned may end with the forming minute. Paced; pacing violations back off and retry;
        any other error or an empty answer raises.

        With `realtime_bars` the history is a one-shot request and the bars after it come
        from 5-second real-time bars (a market data line, not a historical request), made
        into the same minutes (`five_second_minutes`). The symbol's old stream is cancelled
        before the new one is asked for (IB counts both against its caps)."""
        self._cancel(symbol)
        if not realtime_bars:
            bars = await self._history(symbol, duration, keep_up=True)
            self._streams[symbol] = bars
            self._stream_req[bars.reqId] = symbol

            def handler(b: BarDataList, has_new: bool, sym: str = symbol) -> None:
                if self._streams.get(sym) is not b:
                    return
                if has_new and len(b) >= 2:
                    on_bar(sym, _stream_bar(b[-2]))
                if b:
                    on_bar(sym, _stream_bar(b[-1]))

            bars.updateEvent += handler
            return self._arrays(bars)
        async with self._one_shots:
            history = await self._history(symbol, duration, keep_up=False)
        self._realtime(symbol, on_bar)
        return self._arrays(history)

    def _realtime(self, symbol: str, on_bar: OnBar) -> None:
        """5-second TRADES bars of the regular session, made into forming minutes."""
        rt = self.ib.reqRealTimeBars(self.contracts[symbol], 5, "TRADES", True)
        self._streams[symbol] = rt
        self._stream_req[rt.reqId] = symbol
        minutes = FiveSecondMinutes()
        fixing: list[StreamBar] = []  # bars held while an incomplete first minute is fetched

        def handler(b: RealTimeBarList, has_new: bool, sym: str = symbol) -> None:
            if self._streams.get(sym) is not b or not b:
                return
            r = b[-1]
            bars = minutes.sends(ib_ns(r.time), float(r.open_), float(r.close), float(r.volume))
            for bar in bars:
                if minutes.partial_label >= 0 and not fixing:
                    # the first minute was joined late: its closed bar comes from the history
                    label, minutes.partial_label = minutes.partial_label, -1
                    fixing.append(bar)
                    task = asyncio.ensure_future(self._fix_minute(sym, label, on_bar, fixing))
                    task.add_done_callback(lambda t: t.cancelled() or t.exception())
                elif fixing:
                    fixing.append(bar)
                else:
                    on_bar(sym, bar)

        rt.updateEvent += handler

    async def _fix_minute(
        self, symbol: str, label: int, on_bar: OnBar, held: list[StreamBar]
    ) -> None:
        """The closed bar of a minute the 5-second bars joined late, from the history; then
        the bars held meanwhile (so the minute is never closed without it)."""
        try:
            async with self._one_shots:
                bars = await self._history(symbol, "300 S", keep_up=False)
            for b in bars:
                if ib_ns(b.date) == label:
                    on_bar(symbol, _stream_bar(b))
        except (BrokerUnavailable, DataError) as exc:
            log.warning("%s: the minute joined late stays without a bar (%s)", symbol, exc)
        finally:
            rest = list(held)
            held.clear()
            for bar in rest:
                on_bar(symbol, bar)

    async def _history(self, symbol: str, duration: str, *, keep_up: bool) -> BarDataList:
        """One paced history request (pacing violations back off and retry)."""
        contract = self.contracts[symbol]
        retries = 0
        backoff = self.pacing_backoff
        while True:
            await self._pacer.wait()
            self.history_requests += 1
            try:
                bars = await self.ib.reqHistoricalDataAsync(
                    contract,
                    endDateTime="",
                    durationStr=duration,
                    barSizeSetting="1 min",
                    whatToShow="TRADES",
                    useRTH=True,
                    formatDate=2,
                    keepUpToDate=keep_up,
                    timeout=self.request_timeout,
                )
            except RequestError as exc:
                text = str(exc.message)
                if exc.code == 162 and "pacing" in text.lower() and retries < self.max_retries:
                    self.pacing_violations += 1
                    retries += 1
                    log.warning(
                        "history pacing violation for %s; waiting %.1f s (retry %d)",
                        symbol, backoff, retries,
                    )  # fmt: skip
                    self._pacer.hold(backoff)
                    backoff = min(backoff * 2, 60.0)
                    continue
                if exc.code == 162 and "no data" in text.lower() and not self.hmds_broken:
                    raise DataError(
                        f"{symbol}: the broker has no 1-minute bars for it over {duration} "
                        "(HMDS query returned no data); remove it from `symbols`"
                    ) from None
                raise BrokerUnavailable(
                    f"{symbol}: historical data request failed: error {exc.code} {text}"
                ) from None
            if not bars:
                raise BrokerUnavailable(
                    f"{symbol}: historical data request returned nothing within "
                    f"{self.request_timeout:g} s (timeout); not trading on missing history"
                )
            return bars

    def _cancel(self, symbol: str) -> None:
        """End a symbol's stream (before its replacement is asked for)."""
        old = self._streams.pop(symbol, None)
        if old is None:
            return
        self._stream_req.pop(old.reqId, None)
        with contextlib.suppress(Exception):
            if isinstance(old, RealTimeBarList):
                self.ib.cancelRealTimeBars(old)
            else:
                self.ib.cancelHistoricalData(old)

    @staticmethod
    def _arrays(bars: Sequence[Any]) -> BarArrays:
        n = len(bars)
        ts = np.fromiter((ib_ns(b.date) for b in bars), np.int64, n)
        return BarArrays(
            ts=ts,
            open=np.fromiter((b.open for b in bars), np.float64, n),
            high=np.fromiter((b.high for b in bars), np.float64, n),
            low=np.fromiter((b.low for b in bars), np.float64, n),
            close=np.fromiter((b.close for b in bars), np.float64, n),
            volume=np.fromiter((float(b.volume) for b in bars), np.float64, n),
        )

    def cancel_streams(self) -> None:
        for symbol in list(self._streams):
            self._cancel(symbol)
