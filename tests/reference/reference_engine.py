"""A plain, slow, pure-Python reading of STRATEGY.md sections 0-5, to check the engine against.

Written from the text alone (not from the kernel). One object per order, one loop over the
minutes, one loop over the symbols inside it: readability over speed. The band and the cost
filter compare in exact decimal arithmetic (the text's numbers), cash is integer
micro-dollars. Where the text leaves room, the choice made here is marked `CHOICE:`:

- half a micro-dollar rounds up; a tiered fill pays the rate of the shares traded before it
  this month (300,000 traded so far: the next share is in the second tier);
- cancelled or replaced orders that had fills end `partially_filled`;
- an enter/exit signal that makes no order leaves the rebalance rule to act at an
  allocator bar; a `skipped` row counts as an order;
- a flatten carried from an earlier session that still sells the whole position is left
  working at the next flatten; signals at the flatten bar make no orders;
- shadow books pay the first tier's rate; shadow enters are blocked in the no-new-entries
  window; nothing is decided after the flatten;
- top_k ties go to the symbol listed first; equity at or below the reserve gives budgets 0;
- a rebalance whose order would be 0 shares (the position already is the target while a
  working order would move it away) cancels the working order;
- the latest close of a symbol with no bar yet today is its close from an earlier session,
  warm-up included;
- hold_overnight: bands and shadow books (realised P&L included) carry over, working
  orders keep working into the next session.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

from momentumbot.config.schema import AppConfig
from momentumbot.data.calendar import TradingCalendar
from momentumbot.domain.units import NS_PER_MINUTE

BUY = 1
SELL = -1


# ----------------------------------------------------------------------------- costs


def exact(x: float) -> Fraction:
    """The decimal number a float stands for (10.05 is 1005/100, not 10.0499999...)."""
    return Fraction(Decimal(repr(float(x))))


def micro(usd: float) -> int:
    """USD to an integer count of micro-dollars (cash is exact to 1e-6 USD).

    CHOICE: half a micro-dollar rounds up (the text names no rounding rule)."""
    return math.floor(usd * 1e6 + 0.5)


class CommissionSchedule:
    """The IB schedules of section 1, cumulative per order."""

    def __init__(self, cfg: AppConfig) -> None:
        ex = cfg.execution
        self.kind = ex.commission
        self.fixed = ex.fixed
        self.tiered = ex.tiered

    def tier_rate(self, month_shares: float) -> float:
        # CHOICE: with exactly 300,000 shares traded so far the next share is the
        # 300,001st, so it pays the next tier's rate. The whole fill pays the rate of the
        # shares traded before it (a fill is not split across a threshold).
        t = self.tiered
        idx = sum(1 for th in t.tier_thresholds if month_shares >= th)
        return t.tier_rates[idx]

    def cumulative(self, side: int, shares: int, value: float, per_share_part: float) -> float:
        """The order's commission over `shares` filled for `value` USD so far.

        `per_share_part` is only used by the tiered schedule: the sum over the fills of
        rate-at-that-fill x shares of that fill."""
        if shares == 0:
            return 0.0
        if self.kind == "fixed":
            f = self.fixed
            return min(max(f.minimum, f.per_share * shares), f.maximum_fraction * value)
        t = self.tiered
        c = min(max(t.minimum, per_share_part), t.maximum_fraction * value)
        c += t.clearing_per_share * shares
        if side == SELL:
            # Summed as one addend: a total that lands exactly on half a micro-dollar must
            # round the same way as the engine's (float sums depend on their grouping).
            c += t.sec_fee_rate * value + min(t.finra_taf_per_share * shares, t.finra_taf_max)
        return c

    def estimate_exact(self, side: int, shares: int, price: float, month_shares: float) -> Fraction:
        """The schedule applied to a whole order of `shares` at `price` (cost filter), in
        exact decimal arithmetic: the text's "exceeds" is about numbers, not floats."""
        value = shares * exact(price)
        if self.kind == "fixed":
            f = self.fixed
            return min(
                max(exact(f.minimum), exact(f.per_share) * shares),
                exact(f.maximum_fraction) * value,
            )
        t = self.tiered
        per_share = exact(self.tier_rate(month_shares)) * shares
        c = min(max(exact(t.minimum), per_share), exact(t.maximum_fraction) * value)
        c += exact(t.clearing_per_share) * shares
        if side == SELL:
            c += exact(t.sec_fee_rate) * value
            c += min(exact(t.finra_taf_per_share) * shares, exact(t.finra_taf_max))
        return c


# ----------------------------------------------------------------------------- state


@dataclass
class Order:
    order_id: int
    decided_ns: int
    sym: int
    side: int
    quantity: int
    reason: str
    status: str = "working"
    filled: int = 0
    value: float = 0.0  # USD filled so far
    per_share_part: float = 0.0  # tiered: sum of rate x shares over the fills
    commission_micro: int = 0  # charged so far

    @property
    def remaining(self) -> int:
        return self.quantity - self.filled


@dataclass
class Band:
    """Kept in exact decimal arithmetic: a close of 5.05 on a ref of 5.00 is a move of
    exactly 1 %, which reaches the rung at 1 % (in floats it is 0.99999999999999645)."""

    ref: Fraction
    level: Fraction = Fraction(0)
    long: bool = False


@dataclass
class Shadow:
    """One symbol's shadow book for today."""

    shares: int = 0
    buy_price: float = 0.0  # fill price incl. slippage
    buy_commission: float = 0.0
    fill_bar_open: float = 0.0  # open of the bar the buy filled in
    realised: float = 0.0
    pending_side: int = 0  # 0 none, BUY or SELL
    pending_qty: int = 0


@dataclass
class RefResult:
    orders: pd.DataFrame
    fills: pd.DataFrame
    equity: pd.DataFrame
    allocations: pd.DataFrame
    overnight_carries: int
    final_positions: dict[str, int]
    events: Counter[str]


@dataclass
class _Sym:
    position: int = 0
    working: Order | None = None
    last_close: float = math.nan
    band: Band | None = None
    shadow: Shadow = field(default_factory=Shadow)
    first_index: int | None = None  # grid index from which quiet-volume history counts
    budget: float = 0.0


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").strftime("%Y-%m-%dT%H:%M:%S") + "+00:00"


# ----------------------------------------------------------------------------- the run


class ReferenceEngine:
    def __init__(self, cfg: AppConfig, frames: dict[str, pd.DataFrame], start: str, end: str):
        self.cfg = cfg
        self.symbols = list(cfg.symbols)
        self.cal = TradingCalendar(cfg.session.calendar)
        run_sessions = self.cal.sessions(start, end)
        # Warm-up: the sessions before the start that cover the quiet-volume window.
        need = cfg.allocation.quiet_window_minutes
        warm: list[pd.Timestamp] = []
        minutes = 0
        before = self.cal.all_sessions()
        idx = int(before.searchsorted(run_sessions[0]))
        while minutes < need and idx > 0:
            idx -= 1
            s = before[idx]
            g = self.cal.grid(pd.DatetimeIndex([s]))
            warm.insert(0, s)
            minutes += g.n_minutes
        self.n_warm_sessions = len(warm)
        self.grid = self.cal.grid(pd.DatetimeIndex(list(warm) + list(run_sessions)))
        self.events: Counter[str] = Counter()
        self._load(frames)

    def _load(self, frames: dict[str, pd.DataFrame]) -> None:
        g = self.grid
        n_m, n_s = g.n_minutes, len(self.symbols)
        self.open = np.full((n_m, n_s), np.nan)
        self.close = np.full((n_m, n_s), np.nan)
        self.volume = np.full((n_m, n_s), np.nan)
        pos_of = {int(t): i for i, t in enumerate(g.label_ns)}
        self.syms = [_Sym() for _ in self.symbols]
        for j, sym in enumerate(self.symbols):
            df = frames[sym]
            ts = df["ts"].to_numpy(np.int64)
            regular = self.cal.session_of(ts) >= 0  # extended-hours bars are never used
            first_regular = int(ts[regular].min()) if regular.any() else None
            for t, o, c, v in zip(
                ts, df["open"].to_numpy(float), df["close"].to_numpy(float),
                df["volume"].to_numpy(float), strict=True,
            ):  # fmt: skip
                i = pos_of.get(int(t))
                if i is not None:
                    self.open[i, j], self.close[i, j], self.volume[i, j] = o, c, v
            if first_regular is not None:
                if first_regular < int(g.label_ns[0]):
                    self.syms[j].first_index = 0
                elif first_regular in pos_of:
                    self.syms[j].first_index = pos_of[first_regular]
                else:  # first regular bar after the grid: never any history here
                    self.syms[j].first_index = None

    # ------------------------------------------------------------------ helpers

    def has_bar(self, i: int, j: int) -> bool:
        return not math.isnan(self.close[i, j])

    def slippage(self, open_: float) -> float:
        ex = self.cfg.execution
        return ex.slippage_per_share + ex.slippage_bps * 1e-4 * open_

    def quiet_volume(self, i: int, j: int) -> tuple[int, float]:
        """(n, quiet_volume) of symbol j at the close of grid minute i."""
        first = self.syms[j].first_index
        if first is None or first > i:
            return 0, 0.0
        lo = max(first, i - self.cfg.allocation.quiet_window_minutes + 1)
        vols = [0.0 if math.isnan(v) else float(v) for v in self.volume[lo : i + 1, j]]
        n = len(vols)
        k = n // 2
        if k == 0:
            return n, 0.0
        return n, sum(sorted(vols)[:k]) / k

    def note(self, event: str) -> None:
        """Count a notable branch (the tests check the random scenarios reach them)."""
        self.events[event] += 1

    # ------------------------------------------------------------------ orders

    def new_order(
        self, i: int, j: int, side: int, qty: int, reason: str, status: str = "working"
    ) -> Order:
        o = Order(
            order_id=len(self.orders),
            decided_ns=int(self.grid.label_ns[i]) + NS_PER_MINUTE,
            sym=j,
            side=side,
            quantity=qty,
            reason=reason,
            status=status,
        )
        self.orders.append(o)
        return o

    def end_working(self, j: int, how: str) -> None:
        """Cancel or replace symbol j's working order."""
        s = self.syms[j]
        o = s.working
        if o is None:
            return
        # CHOICE (engine interpretation 3): an order that had fills ends partially_filled.
        o.status = "partially_filled" if o.filled > 0 else how
        s.working = None

    def place(self, i: int, j: int, side: int, qty: int, reason: str) -> None:
        """A new working order, replacing the symbol's working order."""
        self.end_working(j, "replaced")
        self.syms[j].working = self.new_order(i, j, side, qty, reason)

    def fails_cost_filter(self, j: int, side: int, qty: int) -> bool:
        price = self.syms[j].last_close
        est = self.costs.estimate_exact(side, qty, price, self.month_shares)
        limit = exact(self.cfg.execution.max_commission_bps) / 10_000 * qty * exact(price)
        return est > limit

    def target(self, j: int) -> int:
        s = self.syms[j]
        if s.band is None or not s.band.long or s.budget <= 0:
            return 0
        return math.floor(s.budget / s.last_close)

    # ------------------------------------------------------------------ fills

    def fill_real(self, i: int, j: int, o: Order) -> None:
        s = self.syms[j]
        ex = self.cfg.execution
        open_ = float(self.open[i, j])
        vol = float(self.volume[i, j])
        if o.reason == "flatten":
            cap = o.remaining  # the flatten is exempt from the volume cap
        else:
            # floor(participation x volume) in decimal: 0.29 x 100 is 29, not 28.999...
            cap = min(
                o.remaining, math.floor(Decimal(repr(ex.max_volume_participation)) * Decimal(vol))
            )
        if cap <= 0:
            return
        if cap < o.remaining:
            self.note("volume cap bites")
        slip = self.slippage(open_)
        price = open_ + slip if o.side == BUY else open_ - slip
        rate = self.costs.tier_rate(self.month_shares) if self.costs.kind == "tiered" else 0.0

        def charge(q: int) -> tuple[int, int]:
            """(value_micro, commission_micro) of filling q more shares."""
            cum = self.costs.cumulative(
                o.side, o.filled + q, o.value + q * price, o.per_share_part + rate * q
            )
            return micro(q * price), micro(cum) - o.commission_micro

        if o.side == BUY:
            # the whole shares the remaining cash pays for, commission included
            lo, hi = 0, cap
            while lo < hi:
                mid = (lo + hi + 1) // 2
                v, c = charge(mid)
                if v + c <= self.cash:
                    lo = mid
                else:
                    hi = mid - 1
            q = lo
            if q < cap:
                self.note("buy clamped to cash")
            if q <= 0:
                return
        else:
            q = cap
        v, c = charge(q)
        if o.side == BUY:
            self.cash -= v + c
            s.position += q
        else:
            self.cash += v - c
            s.position -= q
        o.filled += q
        o.value += q * price
        o.per_share_part += rate * q
        o.commission_micro += c
        self.month_shares += q
        self.fills.append(
            {
                "order_id": o.order_id,
                "time": _iso(int(self.grid.label_ns[i])),
                "symbol": self.symbols[j],
                "side": "BUY" if o.side == BUY else "SELL",
                "quantity": q,
                "price": price,
                "commission": c / 1e6,
                "slippage": q * slip,
            }
        )
        if o.filled == o.quantity:
            o.status = "filled"
            s.working = None

    def shadow_commission(self, side: int, qty: int, price: float) -> float:
        # CHOICE (engine interpretation 5): shadow books pay the first tier's rate.
        rate = self.cfg.execution.tiered.tier_rates[0] if self.costs.kind == "tiered" else 0.0
        return self.costs.cumulative(side, qty, qty * price, rate * qty)

    def fill_shadow(self, i: int, j: int) -> None:
        sh = self.syms[j].shadow
        if sh.pending_side == 0:
            return
        open_ = float(self.open[i, j])
        slip = self.slippage(open_)
        q = sh.pending_qty
        if sh.pending_side == BUY:
            price = open_ + slip
            sh.shares = q
            sh.buy_price = price
            sh.buy_commission = self.shadow_commission(BUY, q, price)
            sh.fill_bar_open = open_
        else:
            price = open_ - slip
            proceeds = q * price - self.shadow_commission(SELL, q, price)
            cost = q * sh.buy_price + sh.buy_commission
            sh.realised += proceeds - cost
            sh.shares = 0
        sh.pending_side = 0
        sh.pending_qty = 0

    def shadow_return(self, j: int) -> float:
        s = self.syms[j]
        if s.band is None:
            return 0.0
        sh = s.shadow
        pnl = sh.realised
        if sh.shares > 0:
            pnl += sh.shares * (s.last_close - sh.fill_bar_open)
        return 100.0 * pnl / self.cfg.strategy.shadow_notional

    # ------------------------------------------------------------------ allocator

    def allocate(self, i: int, first_of_session: bool) -> bool:
        """Runs the allocator at the close of minute i; returns whether any symbol was eligible."""
        a = self.cfg.allocation
        n_s = len(self.symbols)
        eligible: list[int] = []
        qv = [0.0] * n_s
        for j in range(n_s):
            n, q = self.quiet_volume(i, j)
            qv[j] = q
            if n >= a.min_history_bars and q > a.min_quiet_volume:
                eligible.append(j)
        scores: dict[int, float] = {}
        for j in eligible:
            price = self.syms[j].last_close
            if first_of_session:
                scores[j] = 1.0
            elif a.scorer == "seed":
                scores[j] = self.shadow_return(j) * qv[j]
            elif a.scorer == "return":
                scores[j] = self.shadow_return(j)
            else:
                scores[j] = self.shadow_return(j) * math.log(1.0 + qv[j] * price)
        if scores:
            lowest = min(scores.values())
            if lowest <= 0:
                shift = abs(lowest) + a.score_shift_epsilon
                scores = {j: sc + shift for j, sc in scores.items()}
        kept = list(eligible)
        if a.top_k > 0 and len(kept) > a.top_k:
            # CHOICE: ties go to the symbol listed first in the config.
            kept = sorted(kept, key=lambda j: (-scores[j], j))[: a.top_k]
            if scores[kept[-1]] in [scores[j] for j in eligible if j not in kept]:
                self.note("top_k tie")
            kept.sort()
        equity = self.cash / 1e6 + sum(
            s.position * s.last_close for s in self.syms if s.position != 0
        )
        investable = equity - self.cfg.portfolio.cash_reserve
        budgets = [0.0] * n_s
        caps = {j: qv[j] * self.syms[j].last_close for j in kept}
        # CHOICE: with equity at or below the reserve there is nothing to invest (budgets 0,
        # never negative: long only).
        active = list(kept) if investable > 0 else []
        remaining = investable
        while active:
            total = sum(scores[j] for j in active)
            over = [j for j in active if remaining * scores[j] / total > caps[j]]
            if not over:
                for j in active:
                    budgets[j] = remaining * scores[j] / total
                break
            for j in over:
                budgets[j] = caps[j]
                remaining -= caps[j]
                active.remove(j)
        for j in range(n_s):
            self.syms[j].budget = budgets[j]
            self.allocations.append(
                {
                    "time": _iso(int(self.grid.label_ns[i]) + NS_PER_MINUTE),
                    "symbol": self.symbols[j],
                    "score": scores.get(j, math.nan),
                    "budget": budgets[j],
                    "target_shares": self.target(j),
                }
            )
        return bool(eligible)

    # ------------------------------------------------------------------ decisions

    def decide(self, i: int, j: int, signal: str | None, alloc_bar: bool, no_buys: bool) -> None:
        s = self.syms[j]
        if signal == "enter":
            if s.position == 0 and s.working is None:
                tgt = self.target(j)
                if tgt > 0 and not no_buys:
                    if self.fails_cost_filter(j, BUY, tgt):
                        self.new_order(i, j, BUY, tgt, "enter", status="skipped")
                    else:
                        self.place(i, j, BUY, tgt, "enter")
                    return
            self.note("enter signal without an order")
        elif signal == "exit":
            if s.position > 0:
                if s.working is not None:
                    self.note(
                        f"exit replaces a working {'sell' if s.working.side == SELL else 'buy'}"
                    )
                self.place(i, j, SELL, s.position, "exit")
                return
            if s.working is not None and s.working.side == BUY:
                self.note("exit cancels a working buy")
                self.end_working(j, "cancelled")
                return
        # CHOICE (engine interpretation 2): a signal that made no order leaves the
        # rebalance rule to act at an allocator bar.
        if alloc_bar:
            self.rebalance(i, j, no_buys)

    def rebalance(self, i: int, j: int, no_buys: bool) -> None:
        s = self.syms[j]
        tgt = self.target(j)
        w = s.working
        effective = s.position + (w.side * w.remaining if w is not None else 0)
        if tgt == effective:
            return
        if effective == 0 and tgt > 0:
            qty = tgt - s.position
            if qty > 0:
                if no_buys:
                    return
                if self.fails_cost_filter(j, BUY, qty):
                    if w is not None:
                        self.note("skipped opening buy leaves a working order")
                    self.new_order(i, j, BUY, qty, "rebalance", status="skipped")
                    return
                if s.position > 0:
                    self.note("rebalance from effective zero buys on top of a position")
                self.place(i, j, BUY, qty, "rebalance")
            elif qty < 0:
                self.note("rebalance from effective zero sells part of the position")
                if self.fails_cost_filter(j, SELL, -qty):
                    return
                self.place(i, j, SELL, -qty, "rebalance")
            else:
                self.note("rebalance from effective zero: position is the target")
                # CHOICE: the position already is the target: drop the working sell.
                self.end_working(j, "cancelled")
            return
        if tgt == 0:
            if s.position > 0:
                if w is not None and w.side == SELL and w.remaining == s.position:
                    return  # (unreachable: then effective = 0 = target, handled above)
                self.place(i, j, SELL, s.position, "rebalance")
            elif w is not None and w.side == BUY:
                self.note("rebalance to zero cancels a working buy")
                self.end_working(j, "cancelled")
            return
        price = s.last_close
        if abs(tgt - effective) * price >= self.cfg.allocation.rebalance_tolerance * s.budget:
            qty = tgt - s.position
            if qty > 0:
                if no_buys or self.fails_cost_filter(j, BUY, qty):
                    self.note("resize buy not decided")
                    return
                self.note("resize buy")
                self.place(i, j, BUY, qty, "rebalance")
            elif qty < 0:
                if self.fails_cost_filter(j, SELL, -qty):
                    self.note("resize sell filtered")
                    return
                self.note("resize sell")
                self.place(i, j, SELL, -qty, "rebalance")
            else:
                self.note("resize: position is the target")
                # CHOICE: the position already is the target: drop the working order.
                self.end_working(j, "cancelled")

    def flatten(self, i: int) -> None:
        for j, s in enumerate(self.syms):
            w = s.working
            if (
                w is not None
                and w.reason == "flatten"
                and w.side == SELL
                and w.remaining == s.position
            ):
                self.note("carried flatten kept at the next flatten")
                continue  # CHOICE (interpretation 4): a carried flatten keeps working
            self.end_working(j, "cancelled")
            if s.position > 0:
                s.working = self.new_order(i, j, SELL, s.position, "flatten")
            sh = s.shadow
            if sh.shares > 0:
                sh.pending_side, sh.pending_qty = SELL, sh.shares
            elif sh.pending_side == BUY:
                sh.pending_side, sh.pending_qty = 0, 0

    # ------------------------------------------------------------------ main loop

    def run(self) -> RefResult:  # noqa: C901 - the reference engine follows STRATEGY.md line by line on purpose
        cfg = self.cfg
        g = self.grid
        self.costs = CommissionSchedule(cfg)
        self.cash = micro(cfg.portfolio.initial_cash)
        self.month_shares = 0.0
        self.month = None
        self.orders: list[Order] = []
        self.fills: list[dict] = []
        self.allocations: list[dict] = []
        equity_rows: list[dict] = []
        carries = 0
        hold = cfg.strategy.hold_overnight
        step, buffer = exact(cfg.strategy.step), exact(cfg.strategy.buffer)
        n_s = len(self.symbols)
        flattened = False
        first_alloc_pending = True
        for i in range(g.n_minutes):
            sess = int(g.session[i])
            label = int(g.label_ns[i])
            decided = label + NS_PER_MINUTE
            open_ns, close_ns = int(g.open_ns[sess]), int(g.close_ns[sess])
            is_last = i == g.n_minutes - 1 or int(g.session[i + 1]) != sess
            warmup = sess < self.n_warm_sessions
            if int(g.minute[i]) == 0:
                flattened = False
                first_alloc_pending = True
                month = (g.sessions[sess].year, g.sessions[sess].month)
                if month != self.month:
                    self.month, self.month_shares = month, 0.0
                if not hold:
                    for s in self.syms:
                        s.band = None
                        s.shadow = Shadow()
            if warmup:
                for j in range(n_s):
                    if self.has_bar(i, j):
                        self.syms[j].last_close = float(self.close[i, j])
                continue

            # ---- fills in bar i: sells first, then buys, each in order_id order
            live = [
                s.working
                for j, s in enumerate(self.syms)
                if s.working is not None and self.has_bar(i, j) and s.working.decided_ns <= label
            ]
            for o in sorted((o for o in live if o.side == SELL), key=lambda o: o.order_id):
                self.fill_real(i, o.sym, o)
            for o in sorted((o for o in live if o.side == BUY), key=lambda o: o.order_id):
                self.fill_real(i, o.sym, o)
            for j in range(n_s):
                if self.has_bar(i, j):
                    self.fill_shadow(i, j)

            # ---- the close of bar i: bands, shadow books
            no_buys = decided >= close_ns - cfg.session.no_new_entries_minutes * NS_PER_MINUTE
            signals: list[str | None] = [None] * n_s
            for j, s in enumerate(self.syms):
                if not self.has_bar(i, j):
                    continue
                c = float(self.close[i, j])
                s.last_close = c
                if s.band is None:
                    s.band = Band(ref=exact(self.open[i, j]))
                b = s.band
                move = 100 * (exact(c) - b.ref) / b.ref
                if move > b.level:
                    if not b.long and move > b.level + buffer:
                        signals[j] = "enter"
                        b.long = True
                    if move >= b.level + step:
                        b.level += step
                else:
                    if b.long and move < b.level - buffer:
                        signals[j] = "exit"
                        b.long = False
                    if move <= b.level - step:
                        b.level -= step
                if flattened:
                    continue
                sh = s.shadow
                if signals[j] == "enter" and not no_buys:
                    qty = math.floor(cfg.strategy.shadow_notional / c)
                    if qty > 0 and sh.shares == 0 and sh.pending_side == 0:
                        sh.pending_side, sh.pending_qty = BUY, qty
                elif signals[j] == "exit":
                    if sh.shares > 0:
                        sh.pending_side, sh.pending_qty = SELL, sh.shares
                    elif sh.pending_side == BUY:
                        sh.pending_side, sh.pending_qty = 0, 0

            # ---- allocator, orders, flatten
            if not flattened:
                flatten_now = (
                    not hold and decided == close_ns - cfg.session.flatten_minutes * NS_PER_MINUTE
                )
                alloc_bar = int(g.minute[i]) % cfg.allocation.rebalance_minutes == 0
                if alloc_bar:
                    any_eligible = self.allocate(i, first_alloc_pending)
                    if any_eligible:
                        first_alloc_pending = False
                if flatten_now:
                    self.flatten(i)
                    flattened = True
                else:
                    for j in range(n_s):
                        self.decide(i, j, signals[j], alloc_bar, no_buys)

            # ---- equity at the close of bar i
            pv = sum(s.position * s.last_close for s in self.syms if s.position != 0)
            equity_rows.append(
                {
                    "time": _iso(decided),
                    "cash": self.cash / 1e6,
                    "positions_value": pv,
                    "equity": self.cash / 1e6 + pv,
                }
            )
            if is_last:
                carried = sum(
                    1 for s in self.syms if s.working is not None and s.working.reason == "flatten"
                )
                if carried:
                    self.note("flatten carried overnight")
                carries += carried
        del open_ns
        orders = pd.DataFrame(
            [
                {
                    "order_id": o.order_id,
                    "decided_at": _iso(o.decided_ns),
                    "symbol": self.symbols[o.sym],
                    "side": "BUY" if o.side == BUY else "SELL",
                    "quantity": o.quantity,
                    "reason": o.reason,
                    "status": o.status,
                    "filled_quantity": o.filled,
                }
                for o in self.orders
            ],
            columns=[
                "order_id", "decided_at", "symbol", "side", "quantity", "reason", "status",
                "filled_quantity",
            ],
        )  # fmt: skip
        fills = pd.DataFrame(
            self.fills,
            columns=[
                "order_id", "time", "symbol", "side", "quantity", "price", "commission",
                "slippage",
            ],
        )  # fmt: skip
        return RefResult(
            orders=orders,
            fills=fills,
            equity=pd.DataFrame(equity_rows, columns=["time", "cash", "positions_value", "equity"]),
            allocations=pd.DataFrame(
                self.allocations, columns=["time", "symbol", "score", "budget", "target_shares"]
            ),
            overnight_carries=carries,
            events=self.events,
            final_positions={
                sym: s.position for sym, s in zip(self.symbols, self.syms, strict=True)
            },
        )


def run_reference(
    cfg: AppConfig, frames: dict[str, pd.DataFrame], start: str, end: str
) -> RefResult:
    """Run the reference implementation over the sessions [start, end]."""
    return ReferenceEngine(cfg, frames, start, end).run()
