"""Compiled (numba) functions: the one decorator every compiled function uses.

Owns: how the project's numba functions are compiled, where their machine code is cached,
and how a compiled function's work is split over cores (`in_parts`).

- `jit` is typed (`Callable[P, R] -> Callable[P, R]`), so mypy checks every call of a compiled
  function against its annotations (numba's own decorator returns Any).
- numba keys a cached function on its own file only: an edit to `strategy/band.py` would
  leave the kernel that inlines `band_update` stale in the cache. Here the cache directory is
  keyed by the source of every compiled module (and numba's and Python's versions), so an
  edit to any of them compiles everything afresh and a stale kernel can never run.
  The directory is `$NUMBA_CACHE_DIR/momentumbot-<key>` when that variable is set, else
  `~/.cache/momentumbot/numba/<key>` (`$XDG_CACHE_HOME` is honoured); older keys are pruned.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import numba

P = ParamSpec("P")
R = TypeVar("R")

PACKAGE = Path(__file__).resolve().parent
# every module with a compiled function, and the modules whose constants compiled code reads
# (order codes, time units, the kernel's tables): all are in the cache key (a test keeps this
# list complete)
COMPILED_MODULES = (
    "domain/orders.py",
    "domain/units.py",
    "allocation/quiet_volume.py",
    "allocation/qv_pairs.py",
    "allocation/qv_rank.py",
    "allocation/qv_sorted.py",
    "allocation/rotation.py",
    "engine/backtest.py",
    "engine/kernel/allocator.py",
    "engine/kernel/fills.py",
    "engine/kernel/limits.py",
    "engine/kernel/loop.py",
    "engine/kernel/orders.py",
    "engine/kernel/state.py",
    "engine/kernel/tables.py",
    "execution/costs.py",
    "execution/matching.py",
    "reporting/symbols.py",
    "risk/checks.py",
    "strategy/band.py",
    "strategy/shadow.py",
)
KEEP_KEYS = 3


def source_key(package: Path = PACKAGE) -> str:
    """A short hash of every compiled module's source, numba's and Python's versions."""
    h = hashlib.sha256()
    h.update(f"{numba.__version__}|{sys.version_info[:2]}".encode())
    for rel in COMPILED_MODULES:
        h.update(rel.encode())
        h.update((package / rel).read_bytes())
    return h.hexdigest()[:16]


def cache_dir(key: str) -> Path:
    base = os.environ.get("NUMBA_CACHE_DIR")
    if base:
        return Path(base) / f"momentumbot-{key}"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "momentumbot" / "numba" / key


def _prune(current: Path) -> None:
    """Keep the newest KEEP_KEYS caches beside `current` (each source change makes one)."""
    if current.parent.name != "numba":
        return
    with contextlib.suppress(OSError):
        others = sorted(
            (p for p in current.parent.iterdir() if p.is_dir() and p != current),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in others[KEEP_KEYS - 1 :]:
            shutil.rmtree(old, ignore_errors=True)


def _use_cache_dir() -> Path:
    d = cache_dir(source_key())
    with contextlib.suppress(OSError):
        d.mkdir(parents=True, exist_ok=True)
        _prune(d)
    numba.config.CACHE_DIR = str(d)  # type: ignore[attr-defined]  # read when each compiled function is declared
    return d


CACHE_DIR = _use_cache_dir()


def _compile_plain_calls(dispatcher: Any) -> None:
    """Calls from compiled code compile the callee for its arguments' plain types: a
    constant argument (`fill_price(x, BUY, cp)`) is typed Literal[int](1) by numba, which
    would compile one more machine-code version per constant a caller passes (seconds of
    a cold first run). The code is the same for any value, so one version serves all."""
    original = dispatcher.get_call_template

    def get_call_template(args: tuple[Any, ...], kws: dict[str, Any]) -> Any:
        plain = tuple(numba.types.unliteral(a) for a in args)
        return original(plain, {k: numba.types.unliteral(v) for k, v in kws.items()})

    dispatcher.get_call_template = get_call_template


# MOMENTUMBOT_JIT: `off` runs every compiled function as plain Python (the same numbers,
# slower; a debugger can step through it), `on` always compiles, `auto` (the default) lets a
# small backtest whose compiled code is not cached yet run uncompiled (`app.first_run`).
JIT_ENV = "MOMENTUMBOT_JIT"


class _Mode:
    uncompiled = os.environ.get(JIT_ENV, "").strip().lower() == "off"
    declared = 0  # compiled functions declared so far in this process


_mode = _Mode()


def uncompiled() -> bool:
    """Whether this process runs its compiled functions as plain Python."""
    return _mode.uncompiled


def run_uncompiled() -> bool:
    """Make every compiled function declared from now on plain Python (numba leaves it
    alone): for a run too small to be worth compiling. Only before any is declared (the
    kernels' modules not imported yet), so that no compiled function calls a plain one;
    returns whether the process now runs uncompiled."""
    if not _mode.declared:
        _mode.uncompiled = True
    return _mode.uncompiled


def has_cached_code(module: str, function: str) -> bool:
    """Whether the cache holds machine code of `function` in `module` (a path under the
    package, as in COMPILED_MODULES), for any signature. numba files each source folder's
    functions in a subfolder of its own (the folder's name and the SHA-1 of its absolute
    path: a second checkout of the same source shares the cache directory, not the
    subfolder), and names the index `<file stem>.<function>-<line>.py<version>.nbi`."""
    folder = os.path.dirname(os.path.abspath(os.path.join(os.path.dirname(__file__), module)))
    sub = f"{os.path.basename(folder)}_{hashlib.sha1(folder.encode()).hexdigest()}"
    stem = os.path.splitext(os.path.basename(module))[0]
    try:
        return any((CACHE_DIR / sub).glob(f"{stem}.{function}-*.nbi"))
    except OSError:
        return False


def jit(
    *, inline: bool = False, parallel: bool = False, fastmath: bool = False, nogil: bool = False
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """`numba.njit(cache=True, ...)`, typed so that calls are checked like Python calls;
    the function itself when the process runs uncompiled."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        _mode.declared += 1
        if _mode.uncompiled:
            return fn
        compiled = numba.njit(
            cache=True,
            inline="always" if inline else "never",
            parallel=parallel,
            fastmath=fastmath,
            nogil=nogil,
        )(fn)
        if not inline:
            _compile_plain_calls(compiled)
        return cast(Callable[P, R], compiled)

    return decorate


_POOL: list[ThreadPoolExecutor] = []
# a forked child has none of the parent's threads: it starts its own pool when it needs one
os.register_at_fork(after_in_child=_POOL.clear)


def in_parts(fn: Callable[..., None], n: int, *args: object, min_n: int = 2) -> None:
    """fn(lo, hi, *args) over [0, n) cut into numba.get_num_threads() parts run on threads:
    for a compiled function with nogil=True whose parts touch disjoint data. It stands in
    for parallel=True, whose compilation costs seconds in a cold first run. Below `min_n`
    items (or with one thread) fn runs once, in this thread."""
    parts = min(numba.get_num_threads(), n // max(min_n, 1))
    if parts <= 1 or _mode.uncompiled:  # plain Python holds the GIL: threads would only queue
        fn(0, n, *args)
        return
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(max_workers=numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    bounds = [n * i // parts for i in range(parts + 1)]
    futures = [_POOL[0].submit(fn, bounds[i], bounds[i + 1], *args) for i in range(1, parts)]
    fn(bounds[0], bounds[1], *args)
    for f in futures:
        f.result()
