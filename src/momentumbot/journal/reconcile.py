"""Reconciliation: what the journal and the engine believe against what IB reports (open and
completed orders, executions, positions, cash), keyed by our client order id (`orderRef`).

A pure function: it says what to adopt, what to mark, what to re-send or cancel, and what it
cannot explain. The trader acts on it and trades only when nothing is left unexplained.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from momentumbot.execution.broker_protocol import BrokerSnapshot, ExecReport, OrderReport
from momentumbot.execution.costs import to_micro
from momentumbot.journal.reconcile_days import Untraced, explain_across_days, manual_steps

REF_SEP = ":"


def make_ref(reason: str, run_id: str, oid: int) -> str:
    """Our client order id: reason first, so the flatten is recognisable (`flatten:...`)."""
    return f"{reason}{REF_SEP}{run_id}{REF_SEP}{oid}"


def parse_ref(ref: str) -> tuple[str, int] | None:
    """(run id, order row) of one of our order refs, else None."""
    parts = ref.split(REF_SEP)
    if len(parts) != 3 or not parts[2].isdigit() or not parts[1]:
        return None
    return parts[1], int(parts[2])


@dataclass(frozen=True)
class EngineOrder:
    """An order row as the engine and journal see it."""

    oid: int
    symbol: str
    side: int
    quantity: int
    filled: int  # booked and pending fills
    working: bool  # the engine counts on it
    state: str  # the journal's broker-side state
    order_ref: str = ""
    decided_ns: int = 0


@dataclass
class Reconciliation:
    adopt: list[ExecReport] = field(default_factory=list)  # executions the journal missed
    ended: list[tuple[int, str]] = field(default_factory=list)  # working in the engine, done at IB
    resend: list[int] = field(default_factory=list)  # working in the engine, IB never had them
    cancel: list[str] = field(default_factory=list)  # refs working at IB the engine ended
    confirmed: dict[int, OrderReport] = field(default_factory=dict)  # oid -> IB's open order
    completed: dict[int, OrderReport] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def agrees(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        parts = [
            f"{len(self.adopt)} executions adopted",
            f"{len(self.ended)} orders ended at IB",
            f"{len(self.resend)} to re-send",
            f"{len(self.cancel)} to cancel",
            f"{len(self.confirmed)} working orders confirmed",
        ]
        if self.mismatches:
            parts.append(f"{len(self.mismatches)} mismatches")
        return ", ".join(parts)


def reconcile(
    *,
    run_id: str,
    client_id: int,
    symbols: Collection[str],
    orders: Mapping[int, EngineOrder],
    known_exec_ids: Collection[str],
    positions: Mapping[str, int],
    snapshot: BrokerSnapshot,
    expected_cash_micro: int | None = None,
    earlier_day: str | None = None,
    fill_ns: int = 0,
    basis: Mapping[str, float] | None = None,
) -> Reconciliation:
    """Compare; `positions` are the engine's, including fills received but not yet booked.
    `earlier_day`: the journal's last progress was on that earlier IB day, whose executions
    and completed orders IB no longer reports: orders without a trace are explained by
    positions (`journal.reconcile_days`), adopted fills booked at `fill_ns`.

    One pass per kind of IB report, each a case of docs/trading.md: executions, open orders,
    completed orders, then every order of the journal, positions and cash."""
    r = Reconciliation()
    ours = set(symbols)
    adopted_qty = _executions(r, run_id, ours, orders, known_exec_ids, snapshot)
    open_by_oid = _open_orders(r, run_id, client_id, ours, orders, snapshot)
    r.completed = {
        parsed[1]: rep
        for rep in snapshot.completed_orders
        if (parsed := parse_ref(rep.order_ref)) is not None
        and parsed[0] == run_id
        and parsed[1] in orders
    }
    untraced = _orders(r, orders, open_by_oid, adopted_qty, earlier_day)
    expected = dict(positions)
    for ex in r.adopt:
        expected[ex.symbol] = expected.get(ex.symbol, 0) + ex.side * ex.quantity
    explained: set[str] = set()
    if untraced:
        gap = None
        if expected_cash_micro is not None and snapshot.cash_micro is not None:
            gap = snapshot.cash_micro - expected_cash_micro - sum(_flow(ex) for ex in r.adopt)
        v = explain_across_days(
            untraced=untraced, expected=expected, positions=snapshot.positions,
            avg_costs=snapshot.avg_costs, cash_gap_micro=gap, account=snapshot.account,
            fill_ns=fill_ns, day=earlier_day or "", basis=basis,
        )  # fmt: skip
        r.adopt += v.adopt
        r.ended += v.ended
        r.resend += v.resend
        r.mismatches += v.manual
        explained = v.explained
    _positions(r, ours, expected, explained, snapshot, earlier_day)
    if expected_cash_micro is not None and snapshot.cash_micro is not None:
        # with the executions adopted now (a commission not reported yet counts 0)
        want_cash = expected_cash_micro + sum(_flow(ex) for ex in r.adopt)
        if want_cash != snapshot.cash_micro:
            r.warnings.append(
                f"cash: the journal expects {want_cash / 1e6:,.6f} USD at IB, IB has "
                f"{snapshot.cash_micro / 1e6:,.6f} USD (other activity in the account?)"
            )
    return r


def _executions(
    r: Reconciliation,
    run_id: str,
    ours: set[str],
    orders: Mapping[int, EngineOrder],
    known_exec_ids: Collection[str],
    snapshot: BrokerSnapshot,
) -> dict[int, int]:
    """IB's executions: those of this run the journal lacks are adopted; returns the adopted
    quantity per order."""
    adopted_qty: dict[int, int] = {}
    replaced = {x for ex in snapshot.executions for x in ex.replaces}  # by a correction
    for ex in snapshot.executions:
        parsed = parse_ref(ex.order_ref)
        if parsed is None or parsed[0] != run_id:
            if ex.symbol in ours and ex.account == snapshot.account:
                r.warnings.append(
                    f"execution {ex.exec_id} of {ex.quantity} {ex.symbol} was not placed by this "
                    f"run (orderRef {ex.order_ref!r})"
                )
            continue
        oid = parsed[1]
        if oid not in orders:
            r.mismatches.append(
                f"IB has execution {ex.exec_id} for order {ex.order_ref}, which the journal never wrote"
            )
            continue
        if ex.exec_id in replaced or any(x in known_exec_ids for x in ex.replaces):
            continue  # a corrected execution, or a correction of one the journal has
        if ex.exec_id not in known_exec_ids:
            r.adopt.append(ex)
            adopted_qty[oid] = adopted_qty.get(oid, 0) + ex.quantity
    return adopted_qty


def _open_orders(
    r: Reconciliation,
    run_id: str,
    client_id: int,
    ours: set[str],
    orders: Mapping[int, EngineOrder],
    snapshot: BrokerSnapshot,
) -> dict[int, OrderReport]:
    """IB's working orders of this run, by oid; anyone else's on our symbols is a mismatch."""
    open_by_oid: dict[int, OrderReport] = {}
    for rep in snapshot.open_orders:
        parsed = parse_ref(rep.order_ref)
        if parsed is None or parsed[0] != run_id:
            if rep.symbol in ours:
                r.mismatches.append(
                    f"an order for {rep.quantity} {rep.symbol} not placed by this run is working "
                    f"at IB (orderRef {rep.order_ref!r}, order {rep.ib_order_id}); cancel it or "
                    "trade other symbols"
                )
            continue
        oid = parsed[1]
        if oid not in orders:
            r.mismatches.append(
                f"IB has working order {rep.order_ref} that the journal never wrote"
            )
            continue
        if rep.client_id != client_id:
            r.mismatches.append(
                f"working order {rep.order_ref} belongs to client id {rep.client_id}, not "
                f"{client_id}; connect with client id {rep.client_id} to manage it"
            )
            continue
        open_by_oid[oid] = rep
    return open_by_oid


def _orders(
    r: Reconciliation,
    orders: Mapping[int, EngineOrder],
    open_by_oid: Mapping[int, OrderReport],
    adopted_qty: Mapping[int, int],
    earlier_day: str | None,
) -> list[Untraced]:
    """Every order of the journal against IB's open and completed orders: confirmed, to
    cancel, ended, to re-send; returns those without a trace on an earlier IB day."""
    untraced: list[Untraced] = []
    for oid, eo in orders.items():
        live = open_by_oid.get(oid)
        if live is not None:
            if eo.working:
                r.confirmed[oid] = live
            else:
                r.cancel.append(live.order_ref)
            continue
        if not eo.working:
            continue
        filled = eo.filled + adopted_qty.get(oid, 0)
        done = r.completed.get(oid)
        if done is not None:
            _completed(r, oid, eo, done, filled)
        elif earlier_day is not None and filled < eo.quantity:
            untraced.append(
                Untraced(
                    oid=oid, order_ref=eo.order_ref, symbol=eo.symbol, side=eo.side,
                    remaining=eo.quantity - filled, intent=eo.state == "intent",
                    decided_ns=eo.decided_ns,
                )
            )  # fmt: skip
        elif eo.state in ("intent", "sent") and filled == 0:
            r.resend.append(oid)
        elif filled < eo.quantity:
            r.ended.append((oid, "IB no longer has it"))
    return untraced


def _completed(
    r: Reconciliation, oid: int, eo: EngineOrder, done: OrderReport, filled: int
) -> None:
    """An order the engine counts on that IB lists as completed."""
    if done.status != "filled":
        r.ended.append((oid, f"{done.ib_status.lower()} at IB"))
    elif filled < eo.quantity and done.filled > filled:
        r.mismatches.append(
            f"order {oid} ({eo.symbol}) is filled at IB ({done.filled} shares) but "
            f"only {filled} shares of executions are known"
        )
    elif filled < eo.quantity:
        r.ended.append((oid, "filled at IB for less than its quantity"))


def _positions(
    r: Reconciliation,
    ours: set[str],
    expected: Mapping[str, int],
    explained: set[str],
    snapshot: BrokerSnapshot,
    earlier_day: str | None,
) -> None:
    """Each of our symbols: the journal's shares (with the adopted executions) against IB's."""
    for sym in sorted(ours | set(snapshot.positions)):
        if sym not in ours or sym in explained:
            continue
        want = expected.get(sym, 0)
        have = snapshot.positions.get(sym, 0)
        if want != have and earlier_day is not None:
            r.mismatches.append(manual_steps(sym, have, want, earlier_day, []))
        elif want != have:
            r.mismatches.append(
                f"{sym}: the journal has {want} shares, IB has {have}"
                + (" (not bought by this run)" if want == 0 else "")
            )


def _flow(ex: ExecReport) -> int:
    """An execution's effect on cash (micro-dollars; a missing commission counts 0)."""
    value = to_micro(ex.quantity * ex.price)
    return (value if ex.side < 0 else -value) - (ex.commission_micro or 0)
