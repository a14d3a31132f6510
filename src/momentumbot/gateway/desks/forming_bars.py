"""The forming-bars desk (`forming-bars=SECONDS`): the current minute's partial bar, cut from
the minute's 5-second path (the one real-time bars walk), sent to 1-minute keepUpToDate streams
every SECONDS market seconds with the minute's own date (as IB revises the forming bar) until
the closed bar goes out at the minute's close; and the forming bar that ends the answer to a
history request ending now. Only inside a regular session (where minutes close)."""

from __future__ import annotations

from collections.abc import Callable

from momentumbot.gateway import protocol as p
from momentumbot.gateway.broker import Bar
from momentumbot.gateway.desks.market_data import MarketDataDesk
from momentumbot.gateway.desks.sessions import SessionDesk
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import NS, NS_PER_MINUTE, MarketData, bar_row, five_second_bars

NEVER = 2**62
FIVE_SECONDS = 5 * NS


def partial_bar(label: int, bar: Bar, elapsed_ns: int) -> Bar | None:
    """The minute `label` as it stood `elapsed_ns` into it: the OHLCV of the 5-second bars
    complete by then (None before the first one)."""
    k = min(int(elapsed_ns // FIVE_SECONDS), 12)
    if k <= 0:
        return None
    fbs = five_second_bars(label, *bar)[:k]
    return Bar(
        fbs[0].open,
        max(f.high for f in fbs),
        min(f.low for f in fbs),
        fbs[-1].close,
        float(sum(f.volume for f in fbs)),
    )


class FormingBarsDesk:
    def __init__(
        self,
        market: MarketData,
        market_data: MarketDataDesk,
        sessions: SessionDesk,
        faults: Faults,
        session_open: Callable[[], bool],
        now: Callable[[], int],
    ) -> None:
        self.market = market
        self.market_data = market_data
        self.sessions = sessions
        self.faults = faults
        self.session_open = session_open
        self.now = now
        self.hmds_down: Callable[[], bool] = lambda: False  # the farms desk: no revisions

    def next_time(self) -> int:
        """Market time of the next forming-bar update (NEVER when off or between sessions)."""
        secs = self.faults.forming_bars
        if secs <= 0 or not self.session_open():
            return NEVER
        now = self.now()
        step = int(secs * NS)
        label = now - now % NS_PER_MINUTE
        t = label + ((now - label) // step + 1) * step
        if t >= label + NS_PER_MINUTE:
            t = label + NS_PER_MINUTE + step
        return t

    def forming_bar(self, symbol: str) -> tuple[int, Bar] | None:
        """(label, partial bar) of `symbol`'s forming minute now, if forming bars are on."""
        if self.faults.forming_bars <= 0 or not self.session_open():
            return None
        now = self.now()
        label = now - now % NS_PER_MINUTE
        i = self.market.bar_at(symbol, label)
        if i < 0:
            return None
        part = partial_bar(label, Bar(*self.market.bars(symbol).row(i)), now - label)
        return None if part is None else (label, part)

    def run(self) -> None:
        """An update falls due: every 1-minute stream whose minute has a bar gets its revision
        (nothing during an outage, as for closed bars)."""
        if self.sessions.outage or self.hmds_down():
            return
        for sym, subs in self.market_data.minute_streams():
            got = self.forming_bar(sym)
            if got is None:
                continue
            label, part = got
            for sub in subs:
                if label > sub.last_start:
                    row = bar_row(label, *part, sub.format_date)
                    sub.session.send(p.msg_historical_update(sub.req_id, row))
