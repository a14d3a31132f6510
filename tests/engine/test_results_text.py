"""The engine's tables hold their times as ISO 8601 text formatted with integer arithmetic
(engine.results.iso_text): the very strings numpy's datetime formatting gives, and the
same categorical whether the times come in order or not."""

from __future__ import annotations

import numpy as np

from momentumbot.engine.results import _iso, iso_text

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
