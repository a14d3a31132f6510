"""The market data desk: subscriptions (keepUpToDate history, 5-second bars, ticks), what each
gets when a minute closes, and the closed bars history requests are cut from; IB's caps on open
historical requests (322, counted here, checked by the history desk) and market data lines
(101), and `cancel-stream` (162 and silence)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from momentumbot.data.calendar import TradingCalendar
from momentumbot.gateway import protocol as p
from momentumbot.gateway.broker import Bar
from momentumbot.gateway.desks.connection import ClientSession, HistSub, MktSub, RtSub, Sub
from momentumbot.gateway.desks.contracts import ContractDesk
from momentumbot.gateway.desks.sessions import Handlers, SessionDesk, ignore, register
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import (
    DAILY,
    NS_PER_MINUTE,
    AggBars,
    MarketData,
    aggregate,
    bar_row,
    bar_rows,
    bucket_bounds,
    five_second_bars,
    ny_time,
    ticks_for_bar,
)
from momentumbot.gateway.protocol import Reader

MinuteBars = dict[str, tuple[int, Bar]]  # symbol -> (index in its bars, the bar)

HMDS = "Historical Market Data Service error message:"
MAX_TICKERS = "Max number of tickers has been reached"


class MarketDataDesk:
    def __init__(
        self,
        market: MarketData,
        calendar: TradingCalendar,
        contracts: ContractDesk,
        sessions: SessionDesk,
        faults: Faults,
        now: Callable[[], int],
    ) -> None:
        self.market = market
        self.calendar = calendar
        self.contracts = contracts
        self.sessions = sessions
        self.faults = faults
        self.now = now
        self._subs_by_symbol: dict[str, list[Sub]] = {}
        self._agg_subs: list[HistSub] = []
        self._opens_cache: dict[dt.date, np.ndarray] = {}
        # keepUpToDate streams get nothing while the HMDS farm is down (the farms desk)
        self.hmds_down: Callable[[], bool] = lambda: False
        self.hist_peak = 0  # most historical requests one client had open at once (322's cap)
        self.lines_peak = 0  # most market data lines one client had open at once (101's cap)

    def register(self, handlers: Handlers) -> None:
        register(
            handlers,
            {
                1: self._req_mkt_data,
                2: self._cancel_sub,  # cancelMktData
                25: self._cancel_sub,  # cancelHistoricalData
                50: self._req_realtime_bars,
                51: self._cancel_sub,  # cancelRealTimeBars
                59: ignore,  # reqMarketDataType: every type gets the replayed data
            },
        )

    # ---- subscriptions

    def add(self, s: ClientSession, sub: Sub) -> None:
        old = s.subs.pop(sub.req_id, None)
        if old is not None:
            self.drop(old)
        s.subs[sub.req_id] = sub
        self._subs_by_symbol.setdefault(sub.stock.symbol, []).append(sub)
        if isinstance(sub, HistSub) and sub.minutes > 1:
            self._agg_subs.append(sub)

    def drop(self, sub: Sub) -> None:
        if sub in self._agg_subs:
            self._agg_subs.remove(sub)
        subs = self._subs_by_symbol.get(sub.stock.symbol)
        if subs and sub in subs:
            subs.remove(sub)
            if not subs:
                del self._subs_by_symbol[sub.stock.symbol]

    def minute_streams(self) -> Iterator[tuple[str, list[HistSub]]]:
        """Each symbol with its 1-minute keepUpToDate subscriptions (the forming-bars desk)."""
        for sym, subs in self._subs_by_symbol.items():
            hist = [s for s in subs if isinstance(s, HistSub) and s.minutes == 1]
            if hist:
                yield sym, hist

    def drop_all(self, s: ClientSession) -> None:
        """Every subscription of a session ends (it went away, or data was lost)."""
        for sub in list(s.subs.values()):
            self.drop(sub)
        s.subs.clear()

    # ---- IB's caps

    @staticmethod
    def hist_open(s: ClientSession) -> int:
        """Historical requests the client has open: its keepUpToDate streams."""
        return sum(isinstance(x, HistSub) for x in s.subs.values())

    @staticmethod
    def lines_open(s: ClientSession) -> int:
        """Market data lines the client has open: tick lines and 5-second bars."""
        return sum(isinstance(x, (MktSub, RtSub)) for x in s.subs.values())

    def hist_slot(self, s: ClientSession, req_id: int) -> bool:
        """Room for one more historical request (it counts while it is answered); else 322."""
        n = self.hist_open(s) + 1
        cap = self.faults.max_hist_requests
        if cap and n > cap:
            s.error(
                req_id,
                322,
                "Error processing request.-'bW' : cause - "
                f"Only {cap} simultaneous API historical data requests allowed.",
            )
            return False
        self.hist_peak = max(self.hist_peak, n)
        return True

    def _line_slot(self, s: ClientSession, req_id: int) -> bool:
        """Room for one more market data line; else 101."""
        n = self.lines_open(s) + 1
        cap = self.faults.max_market_data_lines
        if cap and n > cap:
            s.error(req_id, 101, MAX_TICKERS)
            return False
        self.lines_peak = max(self.lines_peak, n)
        return True

    def cancel_streams(self, symbol: str) -> int:
        """`cancel-stream`: every keepUpToDate stream of `symbol` gets 162 and goes silent."""
        subs = [x for x in self._subs_by_symbol.get(symbol, ()) if isinstance(x, HistSub)]
        for sub in subs:
            sub.session.error(
                sub.req_id, 162, f"{HMDS}API historical data query cancelled: {sub.req_id}"
            )
            sub.session.subs.pop(sub.req_id, None)
            self.drop(sub)
        return len(subs)

    def _cancel_sub(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        sub = s.subs.pop(req_id, None)
        if sub is not None:
            self.drop(sub)

    def _req_realtime_bars(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        c = r.contract()
        bar_size = r.integer()
        what = r.text().upper()
        r.flag()
        stock = self.contracts.resolve(c)
        if stock is None:
            self.contracts.no_security(s, req_id)
            return
        if self.faults.no_data_for(stock.symbol):
            s.error(req_id, 354, "Requested market data is not subscribed.")
            return
        if bar_size != 5 or what not in ("TRADES", "MIDPOINT"):
            s.error(
                req_id,
                321,
                "Error validating request: real-time bars are 5 seconds of TRADES or MIDPOINT",
            )
            return
        if not self._line_slot(s, req_id):
            return
        self.add(s, RtSub(s, req_id, stock))

    def _req_mkt_data(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        c = r.contract()
        if c.sec_type.upper() == "BAG":
            r.skip(4 * r.integer())
        if r.flag():
            r.skip(3)
        r.text()  # genericTickList
        snapshot = r.flag()
        r.flag()  # regulatorySnapshot
        stock = self.contracts.resolve(c)
        if stock is None:
            self.contracts.no_security(s, req_id)
            return
        if self.faults.no_data_for(stock.symbol):
            s.error(
                req_id,
                354,
                "Requested market data is not subscribed.Delayed market data is not enabled.",
            )
            return
        if not snapshot and not self._line_slot(s, req_id):
            return
        s.send(p.msg_tick_req_params(req_id, stock.min_tick))
        s.send(p.msg_market_data_type(req_id, 1))
        sub = MktSub(s, req_id, stock)
        i = self.market.last_closed_index(stock.symbol, self.now())
        if i >= 0:
            self._send_ticks(sub, i)
        if snapshot:
            s.send(p.msg_tick_snapshot_end(req_id))
            return
        self.add(s, sub)

    # ---- bars

    def closed_bars(
        self, symbol: str, start_ns: int, end_ns: int, minutes: int, use_rth: bool
    ) -> AggBars:
        """Bars of `minutes` starting in [start, end) that have closed by now."""
        now = self.now()
        bars = self.market.history(symbol, start_ns, now)
        if use_rth and len(bars):
            bars = bars.mask(self.calendar.session_of(bars.ts) >= 0)
        agg = aggregate(bars, minutes, self.calendar, use_rth)
        keep = (agg.start < end_ns) & (agg.end <= now)
        return agg if keep.all() else agg.select(keep)

    def bars_at(self, label: int, symbols: set[str]) -> MinuteBars:
        """Bar `label` of every subscribed symbol and of `symbols`, where it exists."""
        bars: MinuteBars = {}
        for sym in set(self._subs_by_symbol) | symbols:
            i = self.market.bar_at(sym, label)
            if i >= 0:
                b = self.market.bars(sym)
                bars[sym] = (i, Bar(*b.row(i)))
        return bars

    # ---- the minute

    def publish(self, label: int, bars: MinuteBars) -> None:
        """Minute `label` closed: each subscriber gets its part of it."""
        close_ns = label + NS_PER_MINUTE
        for sym, (i, bar) in bars.items():
            for sub in self._subs_by_symbol.get(sym, ()):
                self._publish(sub, i, bar, label, close_ns)
        # aggregated subscriptions may close a bucket in a minute their symbol did not trade
        for sub in self._agg_subs:
            if sub.stock.symbol not in bars:
                self._publish_agg(sub, label, close_ns)

    def _publish(self, sub: Sub, i: int, bar: Bar, label: int, close_ns: int) -> None:
        s = sub.session
        if isinstance(sub, HistSub):
            if self.hmds_down():
                return
            if sub.minutes == 1:
                if label > sub.last_start:
                    sub.last_start = label
                    row = bar_row(label, *bar, sub.format_date)
                    s.send(p.msg_historical_update(sub.req_id, row))
            else:
                self._publish_agg(sub, label, close_ns)
        elif isinstance(sub, RtSub):
            for fb in five_second_bars(label, bar.open, bar.high, bar.low, bar.close, bar.volume):
                s.send(
                    p.msg_realtime_bar(
                        sub.req_id,
                        fb.time_s,
                        fb.open,
                        fb.high,
                        fb.low,
                        fb.close,
                        fb.volume,
                        fb.wap,
                        fb.count,
                    )
                )
        else:
            self._send_ticks(sub, i)

    def _publish_agg(self, sub: HistSub, label: int, close_ns: int) -> None:
        if self.hmds_down():
            return
        if not (sub.bucket[0] <= label < sub.bucket[1]):
            lo, hi = bucket_bounds(
                np.array([label], np.int64), sub.minutes, self.calendar, sub.use_rth
            )
            sub.bucket = (int(lo[0]), int(hi[0]))
        start, end = sub.bucket
        if close_ns != end or start <= sub.last_start:
            return
        agg = self.closed_bars(sub.stock.symbol, start, end, sub.minutes, sub.use_rth)
        if len(agg) == 0:
            return
        sub.last_start = start
        row = bar_rows(agg, sub.format_date, sub.minutes >= DAILY)[-1]
        sub.session.send(p.msg_historical_update(sub.req_id, row))

    def _send_ticks(self, sub: MktSub, i: int) -> None:
        b = self.market.bars(sub.stock.symbol)
        label = int(b.ts[i])
        session_open = self._session_open_of(label)
        prev = self.market.last_closed_index(sub.stock.symbol, session_open)
        prev_close = float(b.close[prev]) if prev >= 0 else 0.0
        ticks = ticks_for_bar(
            sub.ticks,
            session_open,
            prev_close,
            float(b.open[i]),
            float(b.high[i]),
            float(b.low[i]),
            float(b.close[i]),
            float(b.volume[i]),
            label + NS_PER_MINUTE,
            sub.stock.min_tick,
        )
        s = sub.session
        for kind, tick_type, value, size in ticks:
            if kind == "price":
                s.send(p.msg_tick_price(sub.req_id, tick_type, value, size))
            elif kind == "size":
                s.send(p.msg_tick_size(sub.req_id, tick_type, value))
            else:
                s.send(p.msg_tick_string(sub.req_id, tick_type, str(int(value))))

    def _session_open_of(self, label: int) -> int:
        """Open (UTC ns) of the latest session that opened at or before `label`."""
        day = ny_time(label).date()
        opens = self._opens_cache.get(day)
        if opens is None:
            d = pd.Timestamp(day)
            opens = self.calendar.grid(self.calendar.sessions(d - pd.Timedelta(days=10), d)).open_ns
            self._opens_cache[day] = opens
        k = int(np.searchsorted(opens, label, side="right")) - 1
        return int(opens[k]) if k >= 0 else label
