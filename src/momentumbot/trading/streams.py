"""Which symbols get a keepUpToDate stream and which real-time bars (`plan_streams`, checked at
start), and the health of each symbol's stream (`StreamHealth`): a stream that ends alone
(cancelled, failed, refused) or goes quiet while its symbol trades every minute is
resubscribed alone; the minutes go on for the others all the while (`trading.minutes` closes a
minute without a symbol's bar once the server clock is past it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from momentumbot.config.schema import BrokerConfig
from momentumbot.domain.errors import ConfigError, DataError
from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.engine.live import LiveEngine
from momentumbot.execution.broker_protocol import BrokerUnavailable
from momentumbot.trading.connection import ConnectionState
from momentumbot.trading.minutes import MinuteAssembler
from momentumbot.trading.run import RunState, ny
from momentumbot.trading.supervisor import Supervisor

log = logging.getLogger("momentumbot.trade")

MIN_WINDOW_MINUTES = 30  # quiet-volume minutes needed before "trades every minute" is said


def plan_streams(symbols: Sequence[str], b: BrokerConfig, *, quote_lines: bool) -> set[str]:
    """The symbols fed by 5-second real-time bars: those after the first `max_streams`, when
    `beyond_max_streams = "realtime_bars"`; a universe that does not fit is a ConfigError.
    `quote_lines`: every symbol also keeps a quote line open (marketable limits)."""
    n = len(symbols)
    if n <= b.max_streams:
        return set()
    if b.beyond_max_streams != "realtime_bars":
        raise ConfigError(
            f"{n} symbols need {n} bar streams, but [broker] max_streams is {b.max_streams} "
            "(IB allows 50 open historical requests, streams included): set [broker] "
            'beyond_max_streams = "realtime_bars" to feed the rest from 5-second real-time '
            "bars, or trade fewer symbols"
        )
    realtime = set(symbols[b.max_streams :])
    lines = len(realtime) + (n if quote_lines else 0)
    if lines > b.max_market_data_lines:
        raise ConfigError(
            f"{len(realtime)} real-time bar lines"
            + (f" and {n} quote lines (marketable_limit)" if quote_lines else "")
            + f" need {lines} market data lines, but [broker] max_market_data_lines is "
            f"{b.max_market_data_lines}: trade fewer symbols"
            + (' or use order_type = "market"' if quote_lines else "")
        )
    log.info(
        "%d symbols: %d keepUpToDate streams, %d fed by 5-second real-time bars (%s...)",
        n, b.max_streams, len(realtime), ", ".join(list(symbols[b.max_streams :])[:3]),
    )  # fmt: skip
    return realtime


@dataclass
class StreamHealth:
    """Per-symbol stream watch; see the module docstring. `resubscribe(symbol)` renews one
    symbol's stream (the feed's); `blocked` marks symbols without market data (no buys)."""

    engine: LiveEngine
    minutes: MinuteAssembler
    cfg: BrokerConfig
    conn: ConnectionState
    run: RunState
    sup: Supervisor
    blocked: np.ndarray
    resubscribe: Callable[[str], Awaitable[object]]
    every_minute: np.ndarray = field(init=False)
    last_try: dict[str, int] = field(default_factory=dict)  # server ns of the last resubscribe
    lost: dict[str, str] = field(default_factory=dict)  # streams the broker ended: why
    no_data: set[str] = field(default_factory=set)  # blocked by 101, unblocked when bars come
    # each renewed symbol's latest bar when its new stream started (its history's included):
    # a later one came from the stream
    renewed_at: dict[str, int] = field(default_factory=dict)
    resubscribed: int = 0
    _judged_label: int = -1

    def __post_init__(self) -> None:
        self.every_minute = np.zeros(len(self.engine.symbols), bool)

    def after_steps(self) -> None:
        """After the minute loop stepped: judge the symbols that had a bar in the last
        minute stepped (see `after_step`)."""
        e = self.engine
        if not e.started:
            return
        t = e.next_label - NS_PER_MINUTE
        if t != self._judged_label:
            self._judged_label = t
            self.after_step(self.minutes.last_label >= t)

    # ---------------------------------------------------------------- judging

    def after_step(self, seen: np.ndarray) -> None:
        """After a minute is stepped: each symbol with a bar in it is judged again by its
        quiet-volume window (every minute of it traded). A silent symbol keeps its verdict:
        its empty minutes do not talk it out of being watched."""
        st = self.engine.st
        full = (st.qv_count >= MIN_WINDOW_MINUTES) & (st.qv_sorted[:, 0] > 0)
        self.every_minute[seen] = full[seen]
        for sym in [s for s in self.no_data if self._streaming(s)]:
            self.no_data.discard(sym)
            self.blocked[self.minutes.index[sym]] = False
            log.warning("%s: market data is back; buys allowed again", sym)

    def _streaming(self, sym: str) -> bool:
        """A bar of the symbol came from its stream since it was last renewed."""
        return bool(self.minutes.last_label[self.minutes.index[sym]] > self.renewed_at.get(sym, -1))

    def stale(self) -> list[str]:
        """Symbols that trade every minute without a closed bar for stale_symbol_minutes."""
        e, run = self.engine, self.run
        if not e.started or not self.conn.can_trade:
            return []
        limit = int(self.cfg.stale_symbol_minutes * NS_PER_MINUTE)
        since = max(e.session_open_ns, 0)
        if not (since + limit < run.server_ns <= e.session_close_ns):
            return []
        # a symbol's latest bar closed at last_label + 1 minute (or never, this session)
        last_close = np.maximum(self.minutes.last_label + NS_PER_MINUTE, since)
        quiet = self.every_minute & (run.server_ns - last_close > limit)
        return [e.symbols[j] for j in np.flatnonzero(quiet)]

    # ---------------------------------------------------------------- acting

    def check(self) -> None:
        """Resubscribe each symbol whose stream the broker ended, and each stale symbol,
        alone (each at most once per stale_symbol_minutes)."""
        for sym, why in list(self.lost.items()):
            self.renew(sym, why)
        for sym in self.stale():
            quiet = f"{self.cfg.stale_symbol_minutes:g}"
            self.renew(sym, f"no closed bar for {quiet} minutes though it trades every minute")

    def on_stream_lost(self, symbol: str, why: str, *, no_market_data: bool) -> None:
        """The broker ended or refused one symbol's stream: renew it alone (now, or at a
        later check if it was renewed less than stale_symbol_minutes ago); without market
        data (no line left) the symbol gets no new buys until its bars come back."""
        if symbol not in self.minutes.index:
            return
        self.lost[symbol] = why
        if no_market_data and symbol not in self.no_data:
            self.no_data.add(symbol)
            self.blocked[self.minutes.index[symbol]] = True
            log.error("%s: no market data (%s); no new buys for it", symbol, why)
        self.renew(symbol, why)

    def renew(self, symbol: str, why: str) -> None:
        run = self.run
        last = self.last_try.get(symbol)
        wait = int(self.cfg.stale_symbol_minutes * NS_PER_MINUTE)
        if last is not None and run.server_ns - last < wait:
            return
        if not self.conn.can_trade:
            return  # the resync renews every stream
        self.last_try[symbol] = run.server_ns
        self.resubscribed += 1
        log.warning(
            "%s: %s (server time %s); resubscribing it alone", symbol, why, ny(run.server_ns)
        )
        self.sup.spawn(
            f"resubscribe {symbol}", lambda: self._renew(symbol), policy="retry", replace=False
        )

    async def _renew(self, symbol: str) -> None:
        try:
            await self.resubscribe(symbol)
        except (ConnectionError, TimeoutError, OSError, BrokerUnavailable, DataError) as exc:
            # the next check (or the resync after a drop) tries again; the others go on
            log.warning("%s: resubscribing it failed (%s)", symbol, exc)
            return
        self.renewed_at[symbol] = int(self.minutes.last_label[self.minutes.index[symbol]])
        self.lost.pop(symbol, None)  # a refusal that follows (101) brings it back
        log.info("%s: resubscribed", symbol)
