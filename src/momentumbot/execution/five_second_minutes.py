"""1-minute bars from IB's 5-second real-time bars (reqRealTimeBars), for symbols beyond the
keepUpToDate streams' cap: each 5-second bar revises its minute as a forming bar does, so the
minute assembly (`trading.minutes`) closes it the same way (a bar of a later minute, or the
server clock past its end plus the grace).

The minute is the one IB's 1-minute history has: open of its first 5-second bar that traded,
close of its last 5-second bar (a 5-second bar without trades repeats the last price), volume
the sum; a minute without any trade has no bar, as in the history. A minute joined after it
began (the first 5-second bar of a subscription not at :00) is incomplete: it is not sent, and
`partial_label` says which (its closed bar comes from the history instead).

Not every 5-second bar is passed on (`sends`): a minute's first bar (it closes the minute
before), its last (:55, the minute as it ended), and a minute that ended without its :55 bar
when the next one begins; twelve revisions a minute per symbol would only cost the client
time."""

from __future__ import annotations

import math

from momentumbot.domain.units import NS, NS_PER_MINUTE
from momentumbot.execution.broker_protocol import StreamBar

FIVE_SECONDS_NS = 5 * NS


class FiveSecondMinutes:
    """One symbol's forming minute from its 5-second bars; see the module docstring."""

    def __init__(self) -> None:
        self.label = -1  # the minute being formed (UTC ns, bar start)
        self.partial_label = -1  # a minute joined after it began: never sent from here
        self._open = math.nan
        self._close = math.nan
        self._volume = 0.0
        self._first = True
        self._unsent: StreamBar | None = None  # the minute as it stands, not passed on yet

    def add(self, start_ns: int, open_: float, close: float, volume: float) -> StreamBar | None:
        """A 5-second bar starting at `start_ns`: its minute as it now stands (None: nothing
        to send, a minute without trades so far, a stale or incomplete minute)."""
        label = start_ns - start_ns % NS_PER_MINUTE
        if label < self.label:
            return None  # older than the minute being formed
        if self._first:
            self._first = False
            if start_ns != label:
                self.partial_label = label
        if label != self.label:
            self.label = label
            self._open, self._close, self._volume = math.nan, math.nan, 0.0
            self._unsent = None
        if label == self.partial_label:
            return None
        if volume > 0 and math.isnan(self._open):
            self._open = open_
        self._close = close
        self._volume += max(volume, 0.0)
        if self._volume <= 0:
            return None
        return StreamBar(label, self._open, self._close, self._volume)

    def sends(self, start_ns: int, open_: float, close: float, volume: float) -> list[StreamBar]:
        """`add`, and the revisions worth passing on (see the module docstring)."""
        before = self.label
        unsent = self._unsent
        bar = self.add(start_ns, open_, close, volume)
        out: list[StreamBar] = []
        if unsent is not None and self.label != before:
            out.append(unsent)  # the minute before ended without its :55 bar
        if bar is None:
            return out
        first = self.label != before  # the first 5-second bar of a minute
        if first or start_ns % NS_PER_MINUTE >= NS_PER_MINUTE - FIVE_SECONDS_NS:
            out.append(bar)
            self._unsent = None
        else:
            self._unsent = bar
        return out
