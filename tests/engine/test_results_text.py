"""The engine's tables hold their times as ISO 8601 text formatted with integer arithmetic
(engine.results.iso_text): the very strings numpy's datetime formatting gives, and the
same categorical whether the times come in order or not; the categories' ns and text are
remembered for the readers while the categories live, and only when the text is exact."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pandas as pd

from momentumbot.engine.results import _iso, iso_text
from momentumbot.engine.time_text import _KNOWN, known_times

NS = 1_000_000_000


def _numpy_text(ns: np.ndarray) -> list[str]:
    text = np.datetime_as_string(ns.astype("datetime64[ns]"), unit="s")
    return [str(t) for t in np.char.add(text, "+00:00")]


def test_iso_text_is_numpys_text_for_any_time() -> None:
    rng = np.random.default_rng(5)
    # 1970 .. 2262 (int64 nanoseconds end in April 2262): the integer arithmetic's range
    seconds = np.sort(rng.integers(0, 9_223_372_036, 200_000))
    # leap days and century edges: 2000-02-29, 2000-03-01, 2100-02-28, 2100-03-01, 2262
    edges = np.array([0, 951_782_400, 951_868_800, 4_107_456_000, 4_107_542_400, 9_223_372_035])
    for ns in (seconds * NS, edges * NS, np.array([1_704_205_860 * NS])):
        assert ns.min() >= 0  # no overflow: the path under test, not numpy's
        got = iso_text(ns)
        assert got.dtype == object and list(got) == _numpy_text(ns)
    # not whole seconds, before 1970: numpy's own formatting
    odd = np.array([-86_400 * NS, 1_704_205_860 * NS + 5], dtype=np.int64)
    assert list(iso_text(odd)) == _numpy_text(odd)
    assert iso_text(np.empty(0, dtype=np.int64)).size == 0


def test_times_in_order_or_not_give_the_same_categorical() -> None:
    rng = np.random.default_rng(6)
    minutes = rng.integers(28_000_000, 28_400_000, 5_000) * 60 * NS
    ordered = np.sort(minutes)
    for ns in (minutes, ordered):
        column = _iso(ns)
        assert list(np.asarray(column, dtype=object)) == _numpy_text(ns)
        assert list(column.categories) == sorted(set(_numpy_text(ns)))


def test_the_categories_ns_and_text_are_remembered_while_they_live() -> None:
    ns = (1_704_205_860 + 60 * np.array([0, 0, 1, 3, 3, 3])) * NS
    column = _iso(ns)
    known = known_times(column.categories)
    assert known is not None
    assert list(known.ns) == sorted(set(ns.tolist()))
    assert known.text.to_pylist() == list(column.categories)
    # a copy of the strings is not the engine's Index: nothing is assumed about it
    assert known_times(pd.Index(list(column.categories), dtype=object)) is None
    key, ref = id(column.categories), weakref.ref(column.categories)
    del column, known
    gc.collect()
    assert ref() is None and key not in _KNOWN._entries  # dropped with its categories


def test_times_whose_text_is_not_exact_are_not_remembered() -> None:
    # not whole seconds: the text drops the fraction, so parsing it back gives other ns
    column = _iso(np.array([1_704_205_860 * NS + 5, 1_704_205_920 * NS]))
    assert known_times(column.categories) is None
    whole = np.array([1_704_205_860, 1_704_205_920]) * NS
    assert list(column.categories) == _numpy_text(whole)
