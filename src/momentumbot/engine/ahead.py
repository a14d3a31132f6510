"""Compile the backtest's kernels ahead, on every core, when the compiled-code cache lacks them.

numba compiles one function at a time and holds the GIL while it does, so a cold first
backtest compiles its thirty-odd functions one after another on one core. The minute loop
is split into steps (`kernel.loop`) that are compiled apart; here they are compiled in
parallel: worker processes compile some (each filling the on-disk cache), this process the
rest, then the loop itself, whose callees now all load from the cache. Compiling never
changes what a function computes (a test compares a cold and a warm run folder).

The signatures are those a backtest passes (built from the same constructors, on two
symbols); a mismatch would only cost a compile at the first call, never a wrong result.
`compile_ahead` does nothing when the loop is already cached for them (a warm run pays
one look at the cache's index).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from momentumbot.engine import kernel as k

Job = tuple[Any, tuple[Any, ...]]  # a compiled function and sample arguments of its call


def _samples() -> dict[str, Any]:
    """Arguments of the kernel's calls, with the types a backtest gives them."""
    from momentumbot.config.schema import AppConfig
    from momentumbot.engine.backtest import kernel_params
    from momentumbot.execution.costs import cost_params

    n, m = 2, 4
    cfg = AppConfig.model_validate({"symbols": ["A", "B"]})
    kp = kernel_params(cfg, n)
    grid = np.zeros((m, n))
    return {
        "o": grid,
        "c": grid,
        "v": grid,
        "cols": np.zeros((n, m)),
        "labels": np.zeros(m, np.int64),
        "flags": np.zeros(m, np.int32),
        "month_id": np.zeros(m, np.int64),
        "alloc_row": np.zeros(m, np.int64),
        "qv_at": np.zeros((1, n)),
        "qv_n": np.zeros((1, n), np.int64),
        "kp": kp,
        "cp": cost_params(cfg.execution),
        "st": k.new_state(n, kp.quiet_window, cfg.portfolio.initial_cash),
        "orders": k.new_orders(8),
        "fills": k.new_fills(8),
        "allocs": k.new_allocs(8),
        "out": k.new_minute_out(m),
        "signals": np.zeros(n, np.int64),
        "i64": 0,
        "i32": np.int32(0),
        "f64": 0.0,
        "b": False,
    }


def _jobs(x: dict[str, Any]) -> list[list[Job]]:
    """The loop's steps in groups of about equal compile time (their callees come along)."""
    from momentumbot.allocation.quiet_volume import _walk_symbols
    from momentumbot.engine.backtest import _transpose_blocks
    from momentumbot.engine.kernel import fills, limits, loop
    from momentumbot.reporting.symbols import band_path

    i, i32, f, b = x["i64"], x["i32"], x["f64"], x["b"]
    st, orders, kp, cp = x["st"], x["orders"], x["kp"], x["cp"]
    open_phase = (
        loop._open_phase,
        (i, x["o"], x["v"], i, i32, i, st, orders, x["fills"], kp, cp),
    )
    walk = (
        i, i, x["cols"], x["cols"], x["alloc_row"], st.qv_ring, st.qv_sorted, st.qv_count,
        st.qv_head, st.qv_started, i, x["qv_at"], x["qv_n"],
    )  # fmt: skip
    decide_phase = (
        loop._decide_phase,
        (i32, i, i, b, x["signals"], x["qv_at"], x["qv_n"], st, orders, x["allocs"], kp, cp),
    )
    flags = np.zeros(2, np.bool_)
    return [
        [
            decide_phase,
            (loop._band_phase, (i, x["o"], x["c"], b, b, x["signals"], st, kp)),
            (loop._mark, (i, i32, st, orders, x["out"], kp)),
            (_walk_symbols, walk),
        ],
        [
            open_phase,
            (limits._check_daily_loss, (i, i, st, orders, x["out"], f)),
            (limits._cut_to_settled_cash, (i, i, st, orders, cp)),
            (limits._cut_new_buys, (i, st, orders, kp)),
            (fills.apply_fill, (i, i, f, i, f, i, st, orders, x["fills"])),
            (_transpose_blocks, (i, i, x["cols"], x["o"])),
            (band_path, (x["labels"].astype(float), x["labels"].astype(float), flags, f, f, b)),
        ],
    ]


def _top(x: dict[str, Any]) -> Job:
    return (
        k.run_minutes,
        (x["o"], x["c"], x["v"], x["labels"], x["flags"], x["month_id"], x["alloc_row"],
         x["qv_at"], x["qv_n"], 0, 0, x["kp"], x["cp"], x["st"], x["orders"], x["fills"],
         x["allocs"], x["out"]),
    )  # fmt: skip


def _signature(job: Job) -> tuple[Any, ...]:
    from numba import typeof

    return tuple(typeof(a) for a in job[1])


def _compile(job: Job) -> None:
    job[0].compile(_signature(job))


def is_cached(job: Job) -> bool:
    """Whether numba's on-disk cache holds `job`'s function for its signature (a peek at
    the cache's index; if numba's internals cannot be read, say yes: compile on demand)."""
    fn, _ = job
    sig = _signature(job)
    if sig in fn.overloads:
        return True
    try:
        index = fn._cache._cache_file._load_index()
        return any(key[0] == sig for key in index)
    except Exception:  # numba internals: any failure means "do not compile ahead"
        return True


def _workers() -> int:
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1, 2))


def compile_ahead(say: Callable[[str], None] | None = None) -> bool:
    """Compile the backtest's kernels now, in parallel, unless the cache has them; returns
    whether it compiled. `say` hears a line per step (the precompile command's progress)."""
    x = _samples()
    top = _top(x)
    if is_cached(top):
        return False
    groups = _jobs(x)
    n_workers = _workers()
    procs = []
    if n_workers > 1:
        for g in range(1, len(groups)):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "momentumbot.engine.ahead", str(g)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    mine = groups[0] if procs else [job for group in groups for job in group]
    for job in mine:
        if say is not None:
            say(f"  compiling {job[0].py_func.__name__} ...")
        _compile(job)
    for p in procs:
        p.wait()  # a failed worker leaves its functions to be compiled below, on demand
    if say is not None:
        say("  compiling the minute loop (run_minutes) ...")
    _compile(top)
    return True


def _main(group: int) -> None:
    for job in _jobs(_samples())[group]:
        _compile(job)


if __name__ == "__main__":
    _main(int(sys.argv[1]))
