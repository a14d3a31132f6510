"""Whether a backtest runs its kernels compiled or as plain Python.

A backtest whose compiled code is not in the cache yet (the first run of a version, before
`momentumbot precompile`, which `make install` runs) would compile the kernels first: 20-30 s
on two cores. The same kernels run as plain Python compute the same numbers (the run folders
are byte-identical; a test compares them) at about 25 us a symbol-minute, so a run of up to
`UNCOMPILED_MAX_BARS` symbol-minutes is over sooner uncompiled than its compile would be.
Larger runs, and every run once the cache holds the code, run compiled.

`MOMENTUMBOT_JIT=on` always compiles, `off` never does (plain Python everywhere: slow, but a
debugger can step through the kernels), `auto` (the default) chooses as above.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

from momentumbot.compiled import JIT_ENV, has_cached_code, run_uncompiled
from momentumbot.data.store import BarStore
from momentumbot.domain.errors import ConfigError, DataError

# about 8 s of plain Python on this project's 2-core reference machine: under a cold compile
UNCOMPILED_MAX_BARS = 300_000
MODES = ("auto", "on", "off")


def jit_mode() -> str:
    """MOMENTUMBOT_JIT's value (auto when unset); a clear error for anything else."""
    mode = os.environ.get(JIT_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ConfigError(f"{JIT_ENV}={mode!r}: use on, off or auto (the default)")
    return mode


def _day_ns(day: str | None, plus_days: int) -> int | None:
    if day is None:
        return None
    try:
        d = dt.date.fromisoformat(day) + dt.timedelta(days=plus_days)
    except ValueError:
        return None  # the backtest itself says what is wrong with the date
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) * 10**9


def planned_bars(
    store: BarStore, symbols: Sequence[str], start: str | None, end: str | None
) -> int:
    """An upper estimate of a run's symbol-minutes: each symbol's stored rows, times the
    share of its stored span that the run's dates cover (from the files' metadata)."""
    lo, hi = _day_ns(start, -1), _day_ns(end, 2)  # a day's margin for the exchange's zone
    total = 0
    for sym in symbols:
        try:
            info = store.info(sym)
        except DataError:
            continue  # the backtest itself reports a missing or broken symbol
        if info.rows == 0:
            continue
        first = max(info.first_ns, lo) if lo is not None else info.first_ns
        last = min(info.last_ns, hi) if hi is not None else info.last_ns
        if last < first:
            continue
        span = max(info.last_ns - info.first_ns, 1)
        total += min(info.rows, int(info.rows * (last - first) / span) + 1)
    return total


def choose_uncompiled(
    store: BarStore,
    symbols: Sequence[str],
    start: str | None,
    end: str | None,
    *,
    one_shot: bool = True,
) -> int | None:
    """Run this process's kernels uncompiled when MOMENTUMBOT_JIT says so, or (auto) when the
    compiled minute loop is not cached and the run is small; returns the run's estimated
    symbol-minutes when it chose plain Python for that reason, else None. Call it before
    anything imports the kernels. The switch lasts as long as the process: `one_shot` says
    the process ends with this run (the command line, not a script or notebook calling it,
    whose later runs would all go uncompiled)."""
    mode = jit_mode()
    if mode == "off":
        run_uncompiled()
        return None
    if mode == "on" or not one_shot or has_cached_code("engine/kernel/loop.py", "run_minutes"):
        return None
    bars = planned_bars(store, symbols, start, end)
    if bars > UNCOMPILED_MAX_BARS or not run_uncompiled():
        return None
    return bars
