"""What this machine offers a second process: its usable cores, and whether one is free.

`backtest`, `demo` and `precompile` start a second process (the chart worker, the compile
worker) only when it would get a core of its own: on a busy machine its own start costs
more than it saves."""

from __future__ import annotations

import os


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def running_now() -> int | None:
    """How many threads are runnable this instant, this one included (Linux's
    /proc/loadavg), or None where that is not known."""
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None


def second_core_free() -> bool:
    """Whether a second process would get a core of its own: two cores or more, and the
    minute's load average leaves one idle. The average lags: a run that just ended (an
    install, a demo's first run, the previous backtest of a script) still counts in it for a
    minute, so between that and all cores busy, the threads runnable this instant decide
    (one core left over)."""
    cores = usable_cores()
    if cores < 2:
        return False
    load = os.getloadavg()[0]
    if int(cores - load + 0.5) >= 1:
        return True
    if load >= cores + 0.5:
        return False
    running = running_now()
    return running is not None and running - 1 <= cores - 2
