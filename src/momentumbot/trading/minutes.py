"""Each minute's bars, assembled from the symbols' streams until the minute can be stepped.

A bar can arrive before its minute has closed: IB's keepUpToDate stream revises the forming
minute every few seconds under the same date, and the answer to a request ending now ends with
it. Each revision replaces the stored values; a minute is stepped only once it is closed for
every symbol (see `MinuteAssembler`), so a provisional revision is never stepped."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from momentumbot.domain.units import NS_PER_MINUTE


@dataclass
class MinuteBars:
    o: np.ndarray
    c: np.ndarray
    v: np.ndarray
    seen: np.ndarray  # bool per symbol

    @classmethod
    def empty(cls, n: int) -> MinuteBars:
        return cls(np.full(n, np.nan), np.full(n, np.nan), np.full(n, np.nan), np.zeros(n, bool))


class MinuteAssembler:
    """Bars by minute label (UTC ns, bar start) until stepped.

    A minute is closed for a symbol only when a later bar of that symbol has arrived, or the
    server's clock is `grace_ns` past the minute's close (a symbol with no trades has no bar)
    and the streams are alive (one arrived within `stale_ns`); a minute is complete when it is
    closed for every symbol. The server's clock is the latest time it told us, or the start of
    the latest bar to arrive (a bar is sent only once its minute has begun). `alive_ns` is the
    latest time the streams are known to have been alive (a bar's close, a resubscribe)."""

    def __init__(self, symbols: list[str], grace_ns: int, stale_ns: int) -> None:
        self.n = len(symbols)
        self.index = {s: i for i, s in enumerate(symbols)}
        self.grace_ns = grace_ns
        self.stale_ns = stale_ns
        self.pending: dict[int, MinuteBars] = {}
        self.max_label = -1
        self.last_label = np.full(self.n, -1, np.int64)  # latest bar of each symbol
        self.alive_ns = 0

    def store(self, sym: str, label: int, o: float, c: float, v: float) -> MinuteBars:
        row = self.pending.get(label)
        if row is None:
            row = self.pending[label] = MinuteBars.empty(self.n)
        j = self.index[sym]
        row.o[j] = o
        row.c[j] = c
        row.v[j] = v
        row.seen[j] = True
        if label > self.max_label:
            self.max_label = label
        if label > self.last_label[j]:
            self.last_label[j] = label
        self.alive_ns = max(self.alive_ns, label + NS_PER_MINUTE)
        return row

    def pop(self, label: int) -> MinuteBars:
        return self.pending.pop(label, None) or MinuteBars.empty(self.n)

    def drop_before(self, label: int) -> None:
        for t in [t for t in self.pending if t < label]:
            del self.pending[t]

    def mark_alive(self, ns: int) -> None:
        self.alive_ns = max(self.alive_ns, ns)

    def alive(self, server_ns: int, session_open_ns: int) -> int:
        """When the streams were last alive; a session's open counts (no bar before it)."""
        return (
            max(self.alive_ns, session_open_ns) if server_ns >= session_open_ns else self.alive_ns
        )

    def complete(self, t: int, server_ns: int, session_open_ns: int) -> bool:
        """Minute `t` is closed for every symbol (see the class docstring)."""
        if bool((self.last_label > t).all()):
            return True  # every symbol has a later bar
        close = t + NS_PER_MINUTE
        clock = max(server_ns, self.max_label)
        alive = self.alive(server_ns, session_open_ns)
        return clock >= close + self.grace_ns and close - alive <= self.stale_ns
