"""The history desk: historical bars (and keepUpToDate subscriptions handed to the market data
desk), the trading schedule, head timestamps, and the `pacing` fault's window of requests."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from momentumbot.data.calendar import TradingCalendar
from momentumbot.gateway import protocol as p
from momentumbot.gateway.clock import Monotonic
from momentumbot.gateway.desks.connection import ClientSession, HistSub
from momentumbot.gateway.desks.contracts import ContractDesk
from momentumbot.gateway.desks.forming_bars import FormingBarsDesk
from momentumbot.gateway.desks.market_data import MarketDataDesk
from momentumbot.gateway.desks.sessions import Handlers, ignore, register
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import (
    DAILY,
    NS,
    AggBars,
    MarketData,
    bar_row,
    bar_rows,
    duration_start,
    format_bar_date,
    ny_time,
    parse_bar_size,
    parse_end_datetime,
)
from momentumbot.gateway.protocol import Reader

log = logging.getLogger("momentumbot.gateway")

HMDS = "Historical Market Data Service error message:"
HMDS_NO_DATA = HMDS + "HMDS query returned no data"


class HistoryDesk:
    def __init__(
        self,
        market: MarketData,
        calendar: TradingCalendar,
        contracts: ContractDesk,
        market_data: MarketDataDesk,
        forming: FormingBarsDesk,
        faults: Faults,
        real: Monotonic,
        now: Callable[[], int],
    ) -> None:
        self.forming = forming
        self.market = market
        self.calendar = calendar
        self.contracts = contracts
        self.market_data = market_data
        self.faults = faults
        self.real = real
        self.now = now
        self._hist_times: deque[float] = deque()  # real times of recent requests (pacing)
        # the farms desk: while the HMDS farm is down (or connectivity is), requests get 162
        self.hmds_down: Callable[[], bool] = lambda: False

    def register(self, handlers: Handlers) -> None:
        register(
            handlers,
            {
                20: self._req_historical_data,
                87: self._req_head_timestamp,
                90: ignore,  # cancelHeadTimestamp
            },
        )

    def _pacing_violation(self) -> bool:
        rule = self.faults.pacing
        if rule is None:
            return False
        n, window = rule
        now = self.real.now()
        while self._hist_times and now - self._hist_times[0] > window:
            self._hist_times.popleft()
        if len(self._hist_times) >= n:
            return True
        self._hist_times.append(now)
        return False

    def _req_historical_data(self, s: ClientSession, r: Reader) -> None:
        req_id = r.integer()
        c = r.contract()
        r.flag()  # includeExpired
        end_text = r.text()
        bar_size = r.text()
        duration = r.text()
        use_rth = r.flag()
        what = r.text().upper()
        format_date = r.integer(1)
        if c.sec_type.upper() == "BAG":
            r.skip(4 * r.integer())
        keep_up = r.flag()
        r.text()  # chartOptions
        stock = self.contracts.resolve(c)
        if stock is None:
            self.contracts.no_security(s, req_id)
            return
        if self.hmds_down():
            s.error(req_id, 162, HMDS_NO_DATA)
            return
        if not self.market_data.hist_slot(s, req_id):
            return
        if self._pacing_violation():
            s.error(req_id, 162, HMDS + "Historical data request pacing violation")
            return
        if what == "SCHEDULE":
            if s.server_version < 165:  # historicalSchedule is a server version 165 message
                s.error(req_id, 162, HMDS + "No data of type SCHEDULE is available")
                return
            self._send_schedule(s, req_id, end_text, duration)
            return
        if what not in ("TRADES", "MIDPOINT", "ADJUSTED_LAST"):
            s.error(req_id, 162, HMDS + f"No data of type {what} is available")
            return
        if keep_up and end_text.strip():
            s.error(
                req_id,
                321,
                "Error validating request.-'bP' : cause - End date not supported with live updates",
            )
            return
        now = self.now()
        try:
            minutes = parse_bar_size(bar_size)
            end_ns = min(parse_end_datetime(end_text, now), now)
            start_ns = duration_start(duration, end_ns, self.calendar, use_rth)
        except ValueError as exc:
            s.error(req_id, 162, HMDS + str(exc))
            return
        agg = self.market_data.closed_bars(stock.symbol, start_ns, end_ns, minutes, use_rth)
        daily = minutes >= DAILY
        if what == "MIDPOINT":
            agg = _midpoint(agg)
        rows = bar_rows(agg, format_date, daily) if len(agg) else []
        last_closed = int(agg.start[-1]) if len(agg) else start_ns - 1
        # a request ending now ends with the forming minute (forming-bars), as at IB
        forming = None
        if minutes == 1 and what == "TRADES" and not end_text.strip():
            forming = self.forming.forming_bar(stock.symbol)
        if forming is not None:
            rows.append(bar_row(forming[0], *forming[1], format_date))
        if not rows:
            s.error(req_id, 162, HMDS + f"HMDS query returned no data: {stock.symbol}@SMART Trades")
            return
        s.send(
            p.msg_historical_data(
                req_id,
                format_bar_date(start_ns, 1, False),
                format_bar_date(end_ns, 1, False),
                rows,
            )
        )
        log.info(
            "client %d: history %s %s %s -> %d bars",
            s.client_id,
            stock.symbol,
            duration,
            bar_size,
            len(rows),
        )
        if keep_up:
            sub = HistSub(s, req_id, stock, minutes, use_rth, format_date, last_closed)
            self.market_data.add(s, sub)

    def _send_schedule(self, s: ClientSession, req_id: int, end_text: str, duration: str) -> None:
        try:
            end_ns = parse_end_datetime(end_text, self.now())
            start_ns = duration_start(duration, end_ns, self.calendar, True)
        except ValueError as exc:
            s.error(req_id, 162, HMDS + str(exc))
            return
        start_day = ny_time(start_ns).date()
        end_day = ny_time(end_ns).date()
        sessions = self.calendar.sessions(start_day, end_day)
        g = self.calendar.grid(sessions)
        rows = [
            (
                ny_time(int(o)).strftime("%Y%m%d-%H:%M:%S"),
                ny_time(int(c)).strftime("%Y%m%d-%H:%M:%S"),
                ny_time(int(o)).strftime("%Y%m%d"),
            )
            for o, c in zip(g.open_ns, g.close_ns, strict=True)
        ]
        s.send(
            p.msg_historical_schedule(
                req_id,
                ny_time(start_ns).strftime("%Y%m%d-%H:%M:%S"),
                ny_time(end_ns).strftime("%Y%m%d-%H:%M:%S"),
                "US/Eastern",
                rows,
            )
        )

    def _req_head_timestamp(self, s: ClientSession, r: Reader) -> None:
        req_id = r.integer()
        c = r.contract()
        stock = self.contracts.resolve(c)
        if stock is None:
            self.contracts.no_security(s, req_id)
            return
        first = self.market.history(stock.symbol, 0, self.now())
        if len(first) == 0:
            s.error(req_id, 162, HMDS + "HMDS query returned no data")
            return
        s.send(p.msg_head_timestamp(req_id, str(int(first.ts[0]) // NS)))


def _midpoint(agg: AggBars) -> AggBars:
    """MIDPOINT bars: the TRADES prices with no volume (IB sends -1)."""
    return replace(
        agg,
        volume=np.full(len(agg), -1.0),
        wap=np.full(len(agg), -1.0),
        count=np.full(len(agg), -1),
    )
