"""IB market data through ib_async, for the IB broker adapter: the live-data entitlement
check, the market-data lines kept open for quotes, and paced history requests kept up to date
as 1-minute bar streams (formatDate 2: UTC), whose bars come out as `StreamBar`s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from ib_async import IB, BarDataList, Contract, RequestError, Ticker

from momentumbot.domain.errors import DataError
from momentumbot.domain.units import NS
from momentumbot.execution.broker_protocol import BarArrays, BrokerUnavailable, OnBar, StreamBar

log = logging.getLogger("momentumbot.broker")

MARKET_DATA_PROBLEMS = {
    354: "market data not subscribed",
    10090: "part of the market data is not subscribed",
    10167: "delayed market data shown instead of live",
    10168: "market data not subscribed (delayed not enabled)",
    10197: "no market data during competing live session",
    10186: "market data is not subscribed (delayed)",
}
MARKET_DATA_BATCH = 50


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
    ) -> None:
        self.ib = ib
        self.contracts = contracts  # shared with the broker, which qualifies them
        self.request_timeout = request_timeout
        self.pacing_backoff = pacing_backoff
        self.max_retries = max_retries
        self._streams: dict[str, BarDataList] = {}
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
        self._tickers.clear()
        self._mkt_req.clear()

    def on_error(self, req_id: int, code: int) -> bool:
        """An error about a market-data line: noted (True), else not about market data."""
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

    async def subscribe_bars(self, symbol: str, duration: str, on_bar: OnBar) -> BarArrays:
        """Regular-session 1-minute TRADES bars over `duration`, then kept up to date: every
        later bar goes to `on_bar(symbol, bar)`. IB revises the forming minute under its own
        date, which ib_async writes over the last bar (`hasNewBar` False): each revision goes
        to `on_bar` too, and when a new bar starts the one before it goes once more, as it
        ended. Which bars are closed is the caller's to judge (`trading.minutes`); the answer
        returned may end with the forming minute. Paced; pacing violations back off and retry;
        any other error or an empty answer raises."""
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
                    keepUpToDate=True,
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
            old = self._streams.get(symbol)
            if old is not None:
                with contextlib.suppress(Exception):
                    self.ib.cancelHistoricalData(old)
            self._streams[symbol] = bars

            def handler(b: BarDataList, has_new: bool, sym: str = symbol) -> None:
                if self._streams.get(sym) is not b:
                    return
                if has_new and len(b) >= 2:
                    on_bar(sym, _stream_bar(b[-2]))
                if b:
                    on_bar(sym, _stream_bar(b[-1]))

            bars.updateEvent += handler
            return self._arrays(bars)

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
        for bars in list(self._streams.values()):
            with contextlib.suppress(Exception):
                self.ib.cancelHistoricalData(bars)
        self._streams.clear()
