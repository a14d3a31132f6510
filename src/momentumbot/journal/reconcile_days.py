"""Reconciliation across IB days: IB reports executions and completed orders of the current
day only (since the nightly reset), so orders of an earlier day that the engine still counts
on may have left no trace. They are explained by positions: per symbol, the shares IB holds
beyond what the journal expects must be the sum of some of those orders (filled whole), or
part of the only one; the fills are adopted at IB's average cost (a sell, which leaves no
average cost, at the price IB's cash implies), the commission being what IB's cash says is
left. What cannot be explained gets exact manual steps. Pure: the trader acts on it."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from momentumbot.execution.broker_protocol import ExecReport
from momentumbot.execution.costs import to_micro
from momentumbot.journal.journal import JournalFill

ADOPTED_PREFIX = "adopted."  # the exec id of a fill adopted from positions (IB gave none)
MAX_ORDERS_SEARCHED = 10  # per symbol; more untraced orders than this are not guessed at


@dataclass(frozen=True)
class Untraced:
    """An order the engine counts on that IB no longer reports (placed on an earlier day)."""

    oid: int
    order_ref: str
    symbol: str
    side: int  # +1 buy, -1 sell
    remaining: int
    intent: bool  # never sent, as far as the journal knows
    decided_ns: int


@dataclass
class DayVerdict:
    adopt: list[ExecReport] = field(default_factory=list)
    ended: list[tuple[int, str]] = field(default_factory=list)
    resend: list[int] = field(default_factory=list)
    manual: list[str] = field(default_factory=list)  # mismatches, each with its steps
    explained: set[str] = field(default_factory=set)  # symbols dealt with here


def cost_basis(fills: Iterable[JournalFill]) -> dict[str, float]:
    """USD cost of each symbol's position from the journal's fills, as IB averages it: a buy
    adds its value and commission, a sell takes its share of the average away."""
    shares: dict[str, int] = {}
    basis: dict[str, float] = {}
    for f in fills:
        held = shares.get(f.symbol, 0)
        if f.side == "BUY":
            comm = f.reported_commission_micro
            comm = f.commission_micro if comm is None else comm
            basis[f.symbol] = basis.get(f.symbol, 0.0) + f.quantity * f.price + (comm or 0) / 1e6
            shares[f.symbol] = held + f.quantity
        else:
            if held > 0:
                basis[f.symbol] = basis.get(f.symbol, 0.0) * max(held - f.quantity, 0) / held
            shares[f.symbol] = held - f.quantity
    return basis


def _fills_for(cands: Sequence[Untraced], diff: int) -> dict[int, int] | None:
    """oid -> shares filled that make `diff`, or None when nothing (or more than one thing)
    explains it."""
    if len(cands) > MAX_ORDERS_SEARCHED:
        return None
    found: list[dict[int, int]] = []
    for n in range(len(cands) + 1):
        for combo in itertools.combinations(cands, n):
            if sum(o.side * o.remaining for o in combo) == diff:
                found.append({o.oid: o.remaining for o in combo})
    if len(found) == 1:
        return found[0]
    if not found and len(cands) == 1:
        o = cands[0]
        if diff * o.side > 0 and abs(diff) < o.remaining:
            return {o.oid: abs(diff)}  # partly filled
    return None


def manual_steps(sym: str, have: int, want: int, day: str, refs: list[str]) -> str:
    """What to do in TWS when a position differs from the journal and nothing explains it."""
    diff = have - want
    act = f"sell {diff}" if diff > 0 else f"buy {-diff}"
    return (
        f"{sym}: IB holds {have} shares, the journal expects {want}; this run's orders of "
        f"{day} ({', '.join(refs) or 'none'}) do not explain the difference of {diff:+d}. "
        f"In TWS look at Trades and Portfolio for {sym}; to go on from the journal, {act} "
        f"{sym} in TWS so that the position is {want}, then run the same command again"
    )


def explain_across_days(
    *,
    untraced: Sequence[Untraced],
    expected: Mapping[str, int],
    positions: Mapping[str, int],
    avg_costs: Mapping[str, float],
    cash_gap_micro: int | None,
    account: str,
    fill_ns: int,
    day: str,
    basis: Mapping[str, float] | None = None,
) -> DayVerdict:
    """`expected`: the journal's positions (with fills received or adopted from IB's
    executions); `cash_gap_micro`: IB's cash minus the journal's expectation (None: unknown);
    `fill_ns`: when adopted fills are booked (the first minute the journal did not deal with);
    `day`: the earlier IB day, for the messages; `basis`: the USD cost of the journal's
    positions (`cost_basis`), for buys on top of a position."""
    v = DayVerdict()
    by_sym: dict[str, list[Untraced]] = {}
    for o in sorted(untraced, key=lambda o: o.oid):
        by_sym.setdefault(o.symbol, []).append(o)
    plan: list[tuple[Untraced, int]] = []
    for sym, cands in sorted(by_sym.items()):
        have, want = positions.get(sym, 0), expected.get(sym, 0)
        filled = _fills_for(cands, have - want)
        if filled is None:
            v.manual.append(manual_steps(sym, have, want, day, [o.order_ref for o in cands]))
            v.explained.add(sym)
            continue
        v.explained.add(sym)
        for o in cands:
            q = filled.get(o.oid, 0)
            if q:
                plan.append((o, q))
            if q < o.remaining:
                if o.intent and not q:
                    v.resend.append(o.oid)  # never reached IB: the position says so
                else:
                    v.ended.append((o.oid, f"not filled at IB on {day}; IB no longer reports it"))
    if plan:
        _price(plan, expected, basis or {}, avg_costs, cash_gap_micro, account, fill_ns, v)
    return v


def _price(
    plan: list[tuple[Untraced, int]],
    expected: Mapping[str, int],
    basis: Mapping[str, float],
    avg_costs: Mapping[str, float],
    cash_gap_micro: int | None,
    account: str,
    fill_ns: int,
    v: DayVerdict,
) -> None:
    """Prices and commissions of the adopted fills. Buys are booked at what IB's average cost
    says they cost per share (commissions included, so their commission is what rounding
    leaves): the position's cost at IB less the journal's cost of what it held before. Sells
    (IB's average cost does not change) at what IB's cash says they brought."""
    buys: dict[str, list[tuple[Untraced, int]]] = {}
    for o, q in plan:
        if o.side > 0:
            buys.setdefault(o.symbol, []).append((o, q))
    prices: dict[int, float] = {}
    for sym, fills in buys.items():
        cost, held = avg_costs.get(sym, 0.0), expected.get(sym, 0)
        shares = sum(q for _, q in fills)
        if not cost > 0 or held < 0 or (held and sym not in basis):
            v.manual.append(
                f"{sym}: orders {', '.join(o.order_ref for o, _ in fills)} seem filled "
                f"({shares} shares) but IB reports no average cost to book them at; check "
                "their fills in TWS (Trades), then run the same command again"
            )
            return
        per_share = (cost * (held + shares) - (basis.get(sym, 0.0) if held else 0.0)) / shares
        for o, _q in fills:
            prices[o.oid] = per_share
    rest = [(o, q) for o, q in plan if o.oid not in prices]
    if rest and cash_gap_micro is None:
        v.manual.append(
            "sells of an earlier day seem filled ("
            + ", ".join(f"{q} {o.symbol}" for o, q in rest)
            + ") but the account's starting cash is unknown; check them in TWS (Trades)"
        )
        return
    commission: dict[int, int] = {}
    if cash_gap_micro is not None:
        flow = sum(_flow(o.side, q, prices[o.oid]) for o, q in plan if o.oid in prices)
        left = cash_gap_micro - flow  # what the rest brought (sells) or cost (buys, negative)
        if rest:
            shares = sum(q for _, q in rest)
            for o, _q in rest:
                prices[o.oid] = abs(left) / shares / 1e6
        flow = sum(_flow(o.side, q, prices[o.oid]) for o, q in plan)
        last = (rest or plan)[-1][0].oid
        commission[last] = flow - cash_gap_micro  # rounding only, but for the cash to agree
    for o, q in plan:
        v.adopt.append(
            ExecReport(
                exec_id=f"{ADOPTED_PREFIX}{o.order_ref}",
                order_ref=o.order_ref,
                perm_id=0,
                ib_order_id=0,
                client_id=0,
                account=account,
                symbol=o.symbol,
                side=o.side,
                quantity=q,
                price=prices[o.oid],
                time_ns=max(fill_ns, o.decided_ns),
                commission_micro=commission.get(o.oid, 0),
            )
        )


def _flow(side: int, qty: int, price: float) -> int:
    """A fill's effect on cash before commission (micro-dollars)."""
    value = to_micro(qty * price)
    return value if side < 0 else -value
