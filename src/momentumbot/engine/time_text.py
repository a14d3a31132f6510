"""The engine's tables hold their times as ISO 8601 text ('2024-01-02T14:31:00+00:00'), each
distinct time once (a categorical). The text is made from the kernel's UTC nanoseconds with
integer arithmetic, and both are remembered beside the categories for as long as they live
(`known_times`): reading the times back (the figures) needs no parsing, and writing them
(the CSV files) no second conversion of the Python strings to Arrow text."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
import pyarrow as pa

# "YYYY-MM-DDTHH:MM:SS+00:00": the digits' columns, filled in below
_ISO_TEMPLATE = np.frombuffer(b"0000-00-00T00:00:00+00:00", dtype=np.uint8)
_ISO_WIDTH = _ISO_TEMPLATE.size
_NS_PER_S = 1_000_000_000
_YEAR_10000_S = 253_402_300_800  # 10000-01-01T00:00:00Z
_INT32_BYTES = 2**31 - 1  # Arrow's string (not large_string) holds this many bytes at most


def _whole_seconds(ns: np.ndarray) -> bool:
    """Whether every time is a whole second from 1970 to 9999 (the text is then exact)."""
    if ns.size == 0:
        return True
    seconds = ns // _NS_PER_S
    return bool(
        ns.min() >= 0 and seconds.max() < _YEAR_10000_S and not np.any(ns - seconds * _NS_PER_S)
    )


def iso_arrow(ns: np.ndarray) -> pa.Array:
    """UTC ns to 'YYYY-MM-DDTHH:MM:SS+00:00' as Arrow text (see `iso_text`)."""
    ns = np.asarray(ns, dtype=np.int64)
    if ns.size == 0:
        return pa.array([], type=pa.string())
    if not _whole_seconds(ns):
        text = np.datetime_as_string(ns.astype("datetime64[ns]"), unit="s")
        return pa.array(np.char.add(text, "+00:00").astype(object), type=pa.string())
    seconds = ns // _NS_PER_S
    days = (seconds // 86_400).astype(np.int32)
    sod = (seconds - days.astype(np.int64) * 86_400).astype(np.int32)
    z = days + 719_468  # days from 0000-03-01
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + np.where(mp < 10, 3, -9)
    year = yoe + era * 400 + (month <= 2)
    hour = sod // 3_600
    minute = sod // 60 - hour * 60
    second = sod - (sod // 60) * 60
    chars = np.empty((ns.size, _ISO_WIDTH), dtype=np.uint8)
    chars[:] = _ISO_TEMPLATE
    for col, digit in ((0, year // 1000), (1, year // 100 % 10), (2, year // 10 % 10)):
        chars[:, col] = digit + 48
    chars[:, 3] = year % 10 + 48
    for col, value in ((5, month), (8, day), (11, hour), (14, minute), (17, second)):
        tens = value // 10
        chars[:, col] = tens + 48
        chars[:, col + 1] = value - tens * 10 + 48
    small = _ISO_WIDTH * ns.size <= _INT32_BYTES
    offsets = np.arange(
        0, _ISO_WIDTH * (ns.size + 1), _ISO_WIDTH, dtype=np.int32 if small else np.int64
    )
    return pa.Array.from_buffers(
        pa.string() if small else pa.large_string(),
        ns.size,
        [None, pa.py_buffer(offsets), pa.py_buffer(chars)],
    )


def iso_text(ns: np.ndarray) -> np.ndarray:
    """UTC ns to 'YYYY-MM-DDTHH:MM:SS+00:00' (object array of str): what
    numpy.datetime_as_string(unit="s") + "+00:00" gives, without its 200 ns a time. Whole
    seconds from 1970 to 9999 (every time the engine writes) are formatted with integer
    arithmetic (civil dates from days: H. Hinnant's algorithm); anything else by numpy."""
    if np.asarray(ns).size == 0:
        return np.empty(0, dtype=object)
    return cast("np.ndarray", iso_arrow(ns).to_numpy(zero_copy_only=False))


@dataclass(frozen=True)
class KnownTimes:
    """A categorical's times: the categories' UTC ns and their text as an Arrow array."""

    ns: np.ndarray  # int64, one per category
    text: pa.Array  # the categories' strings


class _Registry:
    """KnownTimes by the identity of the categories' Index, dropped when the Index is freed
    (an id is only looked up together with a live weak reference to that very Index).
    Thread-safe: the allocation rows' tables are made on a thread of their own. The lock is
    reentrant: a collection run inside a locked section may free a registered Index, whose
    callback then takes the lock in the same thread."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._entries: dict[int, tuple[weakref.ref[pd.Index], KnownTimes]] = {}

    def add(self, categories: pd.Index, known: KnownTimes) -> None:
        key = id(categories)

        def forget(ref: weakref.ref[pd.Index]) -> None:
            with self._lock:
                entry = self._entries.get(key)
                if entry is not None and entry[0] is ref:
                    del self._entries[key]

        with self._lock:
            self._entries[key] = (weakref.ref(categories, forget), known)

    def get(self, categories: pd.Index) -> KnownTimes | None:
        with self._lock:
            entry = self._entries.get(id(categories))
        if entry is None or entry[0]() is not categories:
            return None
        return entry[1]


_KNOWN = _Registry()


def known_times(categories: pd.Index) -> KnownTimes | None:
    """The ns and Arrow text of categories that `iso_categorical` made, else None."""
    return _KNOWN.get(categories)


def iso_categorical(ns: np.ndarray) -> pd.Categorical[str]:
    """UTC ns to ISO 8601 strings with an explicit +00:00 offset, each distinct time
    formatted once (a categorical: allocation rows repeat one time per symbol); its
    categories' ns and text are remembered (`known_times`) when the text is exact (whole
    seconds: parsing it back gives those ns)."""
    ns = np.asarray(ns, dtype=np.int64)
    if ns.size and bool(np.all(ns[1:] >= ns[:-1])):  # the tables' times are in order: no sort
        head = np.empty(ns.size, dtype=bool)
        head[0] = True
        np.not_equal(ns[1:], ns[:-1], out=head[1:])
        uniq, codes = ns[head], np.cumsum(head, dtype=np.int64) - 1
    else:
        uniq, codes = np.unique(ns, return_inverse=True)
    text = iso_arrow(uniq)
    column = categorical(codes, text.to_numpy(zero_copy_only=False))
    if _whole_seconds(uniq):
        _KNOWN.add(column.categories, KnownTimes(uniq, text))
    return column


def names_categorical(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical[str]:
    """Small integer codes to their names, as a categorical (cheap to build and to write)."""
    return categorical(codes, np.array(list(names), dtype=object))


def categorical(codes: np.ndarray, categories: np.ndarray) -> pd.Categorical[str]:
    """A categorical whose categories are Python strings (an object index, not pandas'
    Arrow-backed str): the figures parse and read them as Python objects, which an
    Arrow-backed index would convert to on every read (the run's times: twice as long)."""
    dtype = pd.CategoricalDtype(pd.Index(categories, dtype=object))
    return cast(
        "pd.Categorical[str]", pd.Categorical.from_codes(codes.astype(np.int32), dtype=dtype)
    )
