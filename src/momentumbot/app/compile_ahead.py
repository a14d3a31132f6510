"""Compile the backtest's kernels ahead, on every core, when the compiled-code cache lacks them.

numba compiles one function at a time and holds the GIL while it does, so a cold first
backtest compiles its thirty-odd functions one after another on one core. Here a worker
process compiles the minute loop (filling the on-disk cache) while this one compiles the
functions the loop calls, and the rest of a backtest's; the two meet in the cache. Compiling
never changes what a function computes (a test compares a cold and a warm run folder).

The signatures are those a backtest passes (built from the same constructors, on two
symbols); a mismatch would only cost a compile at the first call, never a wrong result.
`compile_ahead` does nothing when the loop is already cached for them (a warm run pays
one look at the cache's index).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from momentumbot.domain.machine import second_core_free
from momentumbot.engine import kernel as k

Job = tuple[Any, tuple[Any, ...]]  # a compiled function and sample arguments of its call


def _samples(kp: k.KernelParams | None = None) -> dict[str, Any]:
    """Arguments of the kernel's calls, with the types a backtest gives them (`kp`: the
    run's parameters, which choose the loop; the default config's when None)."""
    from momentumbot.config.schema import AppConfig
    from momentumbot.engine.backtest import kernel_params
    from momentumbot.execution.costs import cost_params

    n, m = 2, 4
    cfg = AppConfig.model_validate({"symbols": ["A", "B"]})
    kp = kernel_params(cfg, n) if kp is None else kp
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


def _callees(x: dict[str, Any]) -> tuple[list[Job], list[Job]]:
    """The loop's compiled callees (not inlined), with the types the loop passes, in two
    groups of about equal compile time: the first holds those the loop's compilation meets
    first (this process compiles them while the worker compiles the second group), and each
    group holds what its functions call (`_flatten` before `_check_daily_loss`), so nothing
    is compiled twice."""
    from momentumbot.engine.kernel import allocator, fills, limits, loop, orders

    i, f = x["i64"], x["f64"]
    st, ords, kp, cp = x["st"], x["orders"], x["kp"], x["cp"]
    first = [
        (loop._session_start, (st, kp)),
        (fills._fill_working, (i, x["o"], x["v"], i, st, ords, x["fills"], cp)),
        (orders._flatten, (st, ords, i)),
        (loop._flatten_session, (st, ords, i)),
        (limits._check_daily_loss, (i, i, st, ords, x["out"], f)),
    ]
    second = [
        (allocator._run_allocator, (i, st, x["allocs"], kp, x["qv_at"][0], x["qv_n"][0])),
        (limits._cut_new_buys, (i, st, ords, kp)),
        (limits._cut_to_settled_cash, (i, i, st, ords, cp)),
        (fills._bench_buys, (i, x["o"], i, st, kp, cp)),
    ]
    return first, second


def _others(x: dict[str, Any]) -> list[Job]:
    """What else a backtest and its report compile: the bars put on the minute grid, quiet
    volume, the transposes, the band plotted in the report."""
    from momentumbot.allocation.quiet_volume import _walk_symbols
    from momentumbot.data.forward import _frozen
    from momentumbot.engine.backtest import _scatter_row, _transpose_blocks
    from momentumbot.reporting.symbols import band_path

    i, f, b, st = x["i64"], x["f64"], x["b"], x["st"]
    walk = (
        i, i, x["cols"], x["cols"], x["alloc_row"], st.qv_ring, st.qv_sorted, st.qv_count,
        st.qv_head, st.qv_started, i, x["qv_at"], x["qv_n"],
    )  # fmt: skip
    path = np.zeros(2)
    bars = _frozen(x["labels"], x["labels"] * 1.0, x["labels"] * 1.0, x["labels"] * 1.0)
    return [
        (_scatter_row, (i, *bars, x["labels"], x["cols"], x["cols"], x["cols"])),
        (_walk_symbols, walk),
        (_transpose_blocks, (i, i, x["cols"], x["o"])),
        (band_path, (path, path, np.zeros(2, np.bool_), f, f, b)),
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


def compile_ahead(
    say: Callable[[str], None] | None = None, kp: k.KernelParams | None = None
) -> bool:
    """Compile the backtest's kernels now, on two cores, unless the cache has them; returns
    whether it compiled. `say` hears a line per step (the precompile command's progress).

    A worker process compiles half of the minute loop's callees, then the loop itself (its
    own code is the largest part); this process compiles the other half, tells the worker
    (by closing its stdin) that they are cached, compiles the rest of a backtest's
    functions while the worker compiles the loop, and then loads the loop from the cache.
    Nothing is compiled twice. A process running uncompiled (`compiled.run_uncompiled`)
    compiles nothing."""
    from momentumbot.compiled import uncompiled

    if uncompiled():
        return False
    x = _samples(kp)
    top = _top(x)
    if is_cached(top):
        return False
    mine, theirs = _callees(x)
    worker = None
    if second_core_free():
        worker = subprocess.Popen(
            [sys.executable, "-m", "momentumbot.app.compile_ahead"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if say is not None:
            say(
                f"  compiling {', '.join(j[0].py_func.__name__ for j in theirs)} and the minute "
                "loop (run_minutes) in a second process ..."
            )
    else:
        mine = mine + theirs
    for job in mine:
        if say is not None:
            say(f"  compiling {job[0].py_func.__name__} ...")
        _compile(job)
    if worker is not None and worker.stdin is not None:
        worker.stdin.close()  # the loop's first callees are in the cache: the worker goes on
    for job in _others(x):
        if say is not None:
            say(f"  compiling {job[0].py_func.__name__} ...")
        _compile(job)
    if worker is not None:
        worker.wait()  # if it failed, what it left is compiled below, here
    if say is not None:
        verb = "loading" if worker is not None else "compiling"
        say(f"  {verb} the minute loop ({top[0].py_func.__name__}) ...")
    _compile(top)
    return True


def _main() -> None:
    """The worker: its half of the callees, then (once the parent closed our stdin: its
    half is cached, or it is gone) the loop."""
    x = _samples()
    for job in _callees(x)[1]:
        _compile(job)
    sys.stdin.read()
    _compile(_top(x))


if __name__ == "__main__":
    _main()
