"""Compile the numba kernels into the on-disk cache ahead of the first run.

A backtest or a trading run whose compiled code is not cached compiles it first (about a
minute on two cores), which a user would otherwise pay silently in their first command.
`momentumbot precompile` (run by `make install`) pays it once, with a line per part: the
backtest's kernels (`app.compile_ahead`: the minute loop and its callees, on two cores
when one is free), then a tiny backtest and a tiny paper-trading engine on built-in synthetic bars, of
the same types the real runs pass (they compile what is left), so every later run loads the
code from the cache.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from momentumbot.app.compile_ahead import compile_ahead
from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.data.memory import MemoryBarSource
from momentumbot.data.synthetic import generate_bars
from momentumbot.engine.backtest import load_matrix
from momentumbot.engine.live import LiveEngine

SYMBOLS = ["WARMA", "WARMB"]


def _bars(cal: TradingCalendar) -> MemoryBarSource:
    sessions = cal.sessions("2024-01-02", "2024-01-05")
    return MemoryBarSource(generate_bars(SYMBOLS, sessions, seed=1, calendar=cal))


def backtest_kernels() -> None:
    """The backtest's path as the demo runs it: a store, quiet volume over chunks, the minute
    loop, the run folder and its report (the band plots are compiled too)."""
    from momentumbot.app.backtest import backtest_to_folder
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import write_synthetic
    from momentumbot.reporting.report import write_report

    cfg = AppConfig.model_validate({"symbols": SYMBOLS})
    with tempfile.TemporaryDirectory(prefix="momentumbot-precompile-") as tmp:
        store = BarStore(Path(tmp) / "store")
        write_synthetic(store, SYMBOLS, start="2024-01-02", n_sessions=3, seed=1)
        out = Path(tmp) / "run"
        backtest_to_folder(cfg, store, out, symbols=SYMBOLS, store_path=store.root)
        write_report(out)


def live_kernels(cal: TradingCalendar, source: MemoryBarSource) -> None:
    """Paper and live trading's path: the warm-up, one minute at a time, broker fills."""
    cfg = AppConfig.model_validate({"symbols": SYMBOLS})
    eng = LiveEngine(cfg, SYMBOLS, cal)
    first = pd.Timestamp("2024-01-04")
    warm = eng.warmup_grid(first)
    o, c, v = load_matrix(source, SYMBOLS, warm.label_ns)
    eng.start(first, o, c, v, np.ones(len(SYMBOLS), dtype=bool))
    grid = cal.grid(pd.DatetimeIndex([first]))
    ro, rc, rv = load_matrix(source, SYMBOLS, grid.label_ns)
    filled = False
    for m, label in enumerate(grid.label_ns):
        res = eng.step(int(label), ro[m], rc[m], rv[m])
        if filled or m + 1 >= len(grid.label_ns):
            continue
        for oid in res.new_orders:  # one broker fill, of one share, at the next bar's open
            sym, _side, _qty, _reason, _decided, status, _filled = eng.order_row(oid)
            price = ro[m + 1][SYMBOLS.index(sym)]
            if status == "working" and not np.isnan(price):
                eng.apply_fill(oid, 1, float(price), 1_000_000, int(grid.label_ns[m + 1]))
                filled = True
                break
    eng.result()


def precompile(say: Callable[[str], None], extra: dict[str, Callable[[], object]]) -> float:
    """Run each part, saying what it compiles and how long it took; returns the total seconds.
    `extra` names further parts (the sweeps' fast path, which lives above this layer)."""
    t_all = time.perf_counter()
    cal = TradingCalendar("XNYS")
    source = _bars(cal)
    parts: dict[str, Callable[[], object]] = {
        "backtest": lambda: compile_ahead(say),
        "backtest and report": backtest_kernels,
        "paper and live trading": lambda: live_kernels(cal, source),
        **extra,
    }
    for name, part in parts.items():
        say(f"compiling the {name} kernels ...")
        t0 = time.perf_counter()
        part()
        say(f"compiled the {name} kernels in {time.perf_counter() - t0:.1f} s")
    return time.perf_counter() - t_all
