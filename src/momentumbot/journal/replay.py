"""Engine inputs as journal records: the one function that applies an input to the live
engine, used both when it happens and when a restarted bot replays its journal, so the two
can never differ."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from momentumbot.engine.live import LiveEngine, StepResult
from momentumbot.journal.journal import Input, Journal, pack, unpack

WARMUP = "warmup"
STEP = "step"
FILL = "fill"
COMMISSION = "commission"
END = "end"
FLATTEN = "flatten"
CANCEL_ALL = "cancel_all"
REISSUE = "reissue"  # a refused sell sent again (trading.sell_retry)
NOTE = "note"  # no effect on the engine (halts, re-arms, stops): kept in order for the record


def warmup_input(
    first_session: pd.Timestamp, o: np.ndarray, c: np.ndarray, v: np.ndarray, started: np.ndarray
) -> tuple[bytes, dict[str, Any]]:
    m, n = o.shape
    data = pack(o.ravel(), c.ravel(), v.ravel(), started.astype(np.float64))
    return data, {"first_session": str(first_session.date()), "minutes": m, "symbols": n}


@dataclass
class Applied:
    step: StepResult | None = None
    fill_index: int | None = None
    changed: bool = True


def apply_input(
    engine: LiveEngine, kind: str, label_ns: int | None, data: bytes | None, info: dict[str, Any]
) -> Applied:
    """Apply one engine input (live, or replayed from the journal)."""
    if kind == WARMUP:
        assert data is not None
        m, n = int(info["minutes"]), int(info["symbols"])
        flat = np.frombuffer(data, dtype="<f8").astype(np.float64)
        o = flat[: m * n].reshape(m, n)
        c = flat[m * n : 2 * m * n].reshape(m, n)
        v = flat[2 * m * n : 3 * m * n].reshape(m, n)
        started = flat[3 * m * n :] > 0.5
        engine.start(pd.Timestamp(info["first_session"]), o, c, v, started)
        return Applied()
    if kind == STEP:
        assert data is not None and label_ns is not None
        o, c, v = unpack(data, 3)
        res = engine.step(int(label_ns), o, c, v)
        for oid, qty, _why in info.get("adjust", ()):
            if int(qty) <= 0:
                engine.veto(int(oid))
            else:
                engine.resize(int(oid), int(qty))
        return Applied(step=res)
    if kind == FILL:
        fid = engine.apply_fill(
            int(info["oid"]),
            int(info["qty"]),
            float(info["price"]),
            int(info["commission_micro"]),
            int(info["label_ns"]),
        )
        return Applied(fill_index=fid)
    if kind == COMMISSION:
        delta = engine.adjust_commission(int(info["fid"]), int(info["commission_micro"]))
        return Applied(changed=delta != 0)
    if kind == END:
        return Applied(changed=engine.end_order(int(info["oid"])))
    if kind == FLATTEN:
        assert label_ns is not None
        return Applied(step=engine.flatten(int(label_ns)))
    if kind == CANCEL_ALL:
        assert label_ns is not None
        return Applied(step=engine.cancel_all(int(label_ns)))
    if kind == REISSUE:
        assert label_ns is not None
        res = engine.reissue_sell(
            str(info["symbol"]), int(info["qty"]), str(info["reason"]), int(label_ns)
        )
        return Applied(step=res)
    if kind == NOTE:
        return Applied(changed=False)
    raise ValueError(f"unknown journal input {kind!r}")


@dataclass
class ReplayStats:
    inputs: int = 0
    steps: int = 0
    fills: int = 0
    notes: list[dict[str, Any]] = field(default_factory=list)
    fill_index: dict[str, int] = field(default_factory=dict)  # exec id -> fill row


def replay(journal: Journal, engine: LiveEngine) -> ReplayStats:
    """Rebuild the engine from the journal's inputs, in order."""
    stats = ReplayStats()
    rec: Input
    for rec in journal.inputs():
        applied = apply_input(engine, rec.kind, rec.label_ns, rec.data, rec.info)
        stats.inputs += 1
        if rec.kind == STEP:
            stats.steps += 1
        elif rec.kind == FILL:
            stats.fills += 1
            assert applied.fill_index is not None
            stats.fill_index[str(rec.info["exec_id"])] = applied.fill_index
        elif rec.kind == NOTE:
            stats.notes.append(rec.info)
    return stats
