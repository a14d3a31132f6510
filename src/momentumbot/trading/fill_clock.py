"""Fill times held against the server's clock: an execution cannot come before its order was
decided, nor after the server time the bot learns once it has arrived. A time outside those
bounds (IB's time read in the wrong zone: a wrong `[broker] tws_timezone`, a format nobody
expected) is clamped to the server clock and warned about, so the fill is neither booked in a
minute long gone nor held pending for hours."""

from __future__ import annotations

import dataclasses
import logging

from momentumbot.domain.units import NS_PER_MINUTE
from momentumbot.execution.broker_protocol import ExecReport

log = logging.getLogger("momentumbot.trade")

# how far past the server clock a fill time may be (the bot's clock lags the server's a little)
AHEAD_TOLERANCE_NS = 10 * NS_PER_MINUTE


def _iso(ns: int) -> str:
    import pandas as pd

    return pd.Timestamp(ns, tz="UTC").isoformat()


def clamp(rep: ExecReport, to_ns: int, why: str) -> ExecReport:
    log.warning(
        "execution %s (%s %s): its time %s is %s; booked at the server clock %s instead "
        "(is [broker] tws_timezone the zone TWS was logged in with?)",
        rep.exec_id, rep.symbol, rep.order_ref, _iso(rep.time_ns), why, _iso(to_ns),
    )  # fmt: skip
    return dataclasses.replace(rep, time_ns=to_ns)


def not_before_decision(rep: ExecReport, decided_ns: int, server_ns: int) -> ExecReport:
    """The execution, clamped if its minute is before its order was decided."""
    floor = decided_ns - decided_ns % NS_PER_MINUTE - NS_PER_MINUTE
    if decided_ns <= 0 or rep.time_ns >= floor:
        return rep
    return clamp(rep, max(decided_ns, server_ns), "before its order was decided")


def not_after_server(rep: ExecReport, server_ns: int, seen_ns: int = 0) -> ExecReport:
    """The execution, clamped if it is later than `server_ns`, a server time learnt after it
    arrived: to `seen_ns`, the server clock the bot knew when it arrived (the closest to when
    it happened), else to `server_ns`."""
    if server_ns <= 0 or rep.time_ns <= server_ns + AHEAD_TOLERANCE_NS:
        return rep
    return clamp(rep, seen_ns or server_ns, "ahead of the server clock")
