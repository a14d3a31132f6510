"""Figures of the fills: round trips (per symbol, flat to flat) and P&L by symbol, from
the fills sorted by symbol, time and fill id. Definitions: :mod:`momentumbot.reporting.metrics`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from momentumbot.domain.errors import DataError
from momentumbot.reporting.metric_columns import MINUTE_NS, iso, str_values, times_ns, utc_times

ROUND_TRIP_COLUMNS: tuple[str, ...] = (
    "symbol",
    "entry_time",
    "exit_time",
    "quantity_max",
    "pnl",
    "holding_minutes",
    "avg_entry_price",
    "avg_exit_price",
    "commissions",
    "fills",
)

PNL_BY_SYMBOL_COLUMNS: tuple[str, ...] = (
    "symbol",
    "realised_pnl",
    "unrealised_pnl",
    "total_pnl",
    "commissions",
    "slippage",
    "buys",
    "sells",
    "round_trips",
    "traded_value",
)

_FILL_COLUMNS = ("time", "symbol", "side", "quantity", "price", "commission", "slippage")


@dataclass(frozen=True)
class _SortedFills:
    """Fills sorted by symbol, then time, then fill_id, as arrays."""

    symbols: np.ndarray  # the distinct symbols, sorted (object)
    code: np.ndarray  # int64 index into symbols, per fill
    time_ns: np.ndarray  # int64
    signed: np.ndarray  # int64, +quantity for BUY, -quantity for SELL
    price: np.ndarray  # float64
    commission: np.ndarray  # float64
    slippage: np.ndarray  # float64
    position: np.ndarray  # int64, the symbol's position after the fill

    @property
    def size(self) -> int:
        return int(self.code.size)


def _sorted_fills(fills: pd.DataFrame) -> _SortedFills:
    if len(fills) == 0:
        empty_i = np.empty(0, dtype=np.int64)
        empty_f = np.empty(0, dtype=float)
        return _SortedFills(
            np.empty(0, dtype=object), empty_i, empty_i, empty_i, empty_f, empty_f, empty_f, empty_i
        )
    missing = [c for c in _FILL_COLUMNS if c not in fills.columns]
    if missing:
        raise DataError(f"fills table lacks column(s) {', '.join(missing)}")
    side = str_values(fills["side"], upper=True)
    is_buy = side == "BUY"
    bad_side = ~(is_buy | (side == "SELL"))
    if bad_side.any():
        row = int(np.flatnonzero(bad_side)[0])
        raise DataError(f"fills row {row}: side {fills['side'].iloc[row]!r} is not BUY or SELL")
    quantity = fills["quantity"].to_numpy(dtype=np.int64)
    if (quantity <= 0).any():
        row = int(np.flatnonzero(quantity <= 0)[0])
        raise DataError(f"fills row {row}: quantity {quantity[row]} is not positive")
    code, symbols = pd.factorize(str_values(fills["symbol"]), sort=True)
    time_ns = times_ns(utc_times(fills["time"]))
    if "fill_id" in fills.columns and pd.api.types.is_numeric_dtype(fills["fill_id"]):
        sequence = fills["fill_id"].to_numpy(dtype=np.int64)
    else:
        sequence = np.arange(len(fills), dtype=np.int64)
    order = np.lexsort((sequence, time_ns, code))
    code = np.asarray(code, dtype=np.int64)[order]
    signed = np.where(is_buy, quantity, -quantity)[order]
    # per-symbol running position: global cumsum minus the cumsum before each symbol's first
    first = np.ones(code.size, dtype=bool)
    first[1:] = code[1:] != code[:-1]
    total = np.cumsum(signed)
    before = (total - signed)[first]
    position = total - before[np.cumsum(first) - 1]
    previous = position - signed
    crossing = ((previous > 0) & (position < 0)) | ((previous < 0) & (position > 0))
    if crossing.any():
        at = int(np.flatnonzero(crossing)[0])
        raise DataError(
            f"fill at {iso(int(time_ns[order][at]))} takes {symbols[code[at]]} from "
            f"{previous[at]} to {position[at]} shares in one fill; a fill may not cross zero"
        )
    return _SortedFills(
        symbols=np.asarray(symbols, dtype=object),
        code=code,
        time_ns=time_ns[order],
        signed=signed,
        price=fills["price"].to_numpy(dtype=float)[order],
        commission=fills["commission"].to_numpy(dtype=float)[order],
        slippage=fills["slippage"].to_numpy(dtype=float)[order],
        position=position,
    )


@dataclass(frozen=True)
class _Trips:
    """Every trip (closed or still open), one entry per trip, in symbol then time order."""

    code: np.ndarray
    closed: np.ndarray  # bool
    entry_ns: np.ndarray
    exit_ns: np.ndarray  # time of the closing fill; meaningless where not closed
    quantity_max: np.ndarray
    pnl: np.ndarray  # cash flows of the trip's fills minus their commissions
    entry_price: np.ndarray
    exit_price: np.ndarray
    commissions: np.ndarray
    fills: np.ndarray


def _trips(f: _SortedFills) -> _Trips:
    start = (f.position - f.signed) == 0
    trip = np.cumsum(start) - 1
    n = int(trip[-1]) + 1 if f.size else 0
    start_at = np.flatnonzero(start)
    cash_flow = -f.signed * f.price
    pnl = np.bincount(trip, cash_flow, n) - np.bincount(trip, f.commission, n)
    if n:
        quantity_max = np.maximum.reduceat(np.abs(f.position), start_at)
    else:
        quantity_max = np.empty(0, dtype=np.int64)
    direction = np.sign(f.signed[start_at])
    entering = np.sign(f.signed) == direction[trip]
    shares = np.abs(f.signed).astype(float)
    value = shares * f.price
    with np.errstate(invalid="ignore", divide="ignore"):
        entry_price = np.bincount(trip, np.where(entering, value, 0.0), n) / np.bincount(
            trip, np.where(entering, shares, 0.0), n
        )
        exit_price = np.bincount(trip, np.where(entering, 0.0, value), n) / np.bincount(
            trip, np.where(entering, 0.0, shares), n
        )
    close_at = np.flatnonzero(f.position == 0)
    closed = np.zeros(n, dtype=bool)
    closed[trip[close_at]] = True
    exit_ns = np.zeros(n, dtype=np.int64)
    exit_ns[trip[close_at]] = f.time_ns[close_at]
    return _Trips(
        code=f.code[start_at],
        closed=closed,
        entry_ns=f.time_ns[start_at],
        exit_ns=exit_ns,
        quantity_max=np.asarray(quantity_max, dtype=np.int64),
        pnl=pnl,
        entry_price=entry_price,
        exit_price=exit_price,
        commissions=np.bincount(trip, f.commission, n),
        fills=np.bincount(trip, minlength=n),
    )


def round_trips(fills: pd.DataFrame) -> pd.DataFrame:
    """One row per completed round trip, ordered by entry time then symbol.

    A round trip is, per symbol and in fill order (time, then fill_id), a position going
    from zero to non-zero and back to zero; partial exits stay inside the trip and a
    position still open at the end is not a trip. Columns:

    - ``symbol``; ``entry_time``, ``exit_time``: the bar start labels (UTC) of the fill
      that opened and of the fill that closed it;
    - ``quantity_max``: largest absolute position held during the trip;
    - ``pnl``: sell values - buy values - commissions of its fills, USD (slippage is
      already in the prices);
    - ``holding_minutes``: exit_time - entry_time in minutes;
    - ``avg_entry_price``, ``avg_exit_price``: share-weighted prices of its buys and of
      its sells; ``commissions``: their sum; ``fills``: number of fills.
    """
    f = _sorted_fills(fills)
    return _round_trips(f, _trips(f))


def _round_trips(f: _SortedFills, t: _Trips) -> pd.DataFrame:
    keep = np.flatnonzero(t.closed)
    keep = keep[np.lexsort((t.code[keep], t.entry_ns[keep]))]
    return pd.DataFrame(
        {
            "symbol": pd.Series(f.symbols[t.code[keep]], dtype=object),
            "entry_time": pd.to_datetime(t.entry_ns[keep], unit="ns", utc=True),
            "exit_time": pd.to_datetime(t.exit_ns[keep], unit="ns", utc=True),
            "quantity_max": t.quantity_max[keep],
            "pnl": t.pnl[keep],
            "holding_minutes": (t.exit_ns[keep] - t.entry_ns[keep]) / MINUTE_NS,
            "avg_entry_price": t.entry_price[keep],
            "avg_exit_price": t.exit_price[keep],
            "commissions": t.commissions[keep],
            "fills": t.fills[keep].astype(np.int64),
        },
        columns=list(ROUND_TRIP_COLUMNS),
    )


def pnl_by_symbol(
    fills: pd.DataFrame,
    final_positions: Mapping[str, int],
    last_prices: Mapping[str, float],
) -> pd.DataFrame:
    """P&L per symbol, one row per symbol that has fills or an open position, by symbol.

    - ``realised_pnl``: sum of the pnl of the symbol's completed round trips (net of
      commissions, see :func:`round_trips`);
    - ``unrealised_pnl``: the still-open trip, if any: its fills' cash flows minus their
      commissions plus ``final_position * last_price`` (its costs are booked with it);
    - ``total_pnl``: realised + unrealised = sells - buys - commissions + marked position;
    - ``commissions``, ``slippage``: USD over all its fills; ``buys``, ``sells``: number of
      buy and of sell fills; ``round_trips``: completed trips; ``traded_value``:
      sum of quantity * price.

    ``final_positions`` must agree with the net position of the fills (a run starts flat);
    a symbol with an open position needs a finite entry in ``last_prices``.
    """
    f = _sorted_fills(fills)
    return _pnl_by_symbol(f, _trips(f), final_positions, last_prices)


def fill_tables(
    fills: pd.DataFrame,
    final_positions: Mapping[str, int],
    last_prices: Mapping[str, float],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(pnl_by_symbol(...), round_trips(fills)), the fills sorted and walked once."""
    f = _sorted_fills(fills)
    t = _trips(f)
    return _pnl_by_symbol(f, t, final_positions, last_prices), _round_trips(f, t)


def _pnl_by_symbol(
    f: _SortedFills,
    t: _Trips,
    final_positions: Mapping[str, int],
    last_prices: Mapping[str, float],
) -> pd.DataFrame:
    fill_symbols = [str(s) for s in f.symbols]
    known = set(fill_symbols)
    held = sorted(s for s, q in final_positions.items() if int(q) != 0 and s not in known)
    symbols = fill_symbols + held
    n = len(symbols)
    k = len(fill_symbols)

    def per_symbol(weights: np.ndarray | None) -> np.ndarray:
        out = np.zeros(n, dtype=float)
        out[:k] = np.bincount(f.code, weights, k)
        return out

    net = per_symbol(f.signed.astype(float)).astype(np.int64)
    position = np.array([int(final_positions.get(s, 0)) for s in symbols], dtype=np.int64)
    mismatch = np.flatnonzero(net != position)
    if mismatch.size:
        i = int(mismatch[0])
        raise DataError(
            f"{symbols[i]}: fills net to {net[i]} shares but the final position is "
            f"{position[i]}; the fills do not account for the position"
        )
    mark = np.zeros(n, dtype=float)
    for held_at in np.flatnonzero(position):
        symbol, shares = symbols[held_at], int(position[held_at])
        price = last_prices.get(symbol)
        if price is None or not math.isfinite(float(price)):
            raise DataError(f"{symbol}: open position of {shares} shares but no last price")
        mark[held_at] = shares * float(price)
    cash_flow = per_symbol(-f.signed * f.price)
    commissions = per_symbol(f.commission)
    realised = np.zeros(n, dtype=float)
    realised[:k] = np.bincount(t.code[t.closed], t.pnl[t.closed], k)
    total = cash_flow - commissions + mark
    is_buy = (f.signed > 0).astype(float)
    trips_closed = np.zeros(n, dtype=np.int64)
    trips_closed[:k] = np.bincount(t.code[t.closed], minlength=k)
    return pd.DataFrame(
        {
            "symbol": pd.Series(symbols, dtype=object),
            "realised_pnl": realised,
            "unrealised_pnl": total - realised,
            "total_pnl": total,
            "commissions": commissions,
            "slippage": per_symbol(f.slippage),
            "buys": per_symbol(is_buy).astype(np.int64),
            "sells": per_symbol(1.0 - is_buy).astype(np.int64),
            "round_trips": trips_closed,
            "traded_value": per_symbol(np.abs(f.signed) * f.price),
        },
        columns=list(PNL_BY_SYMBOL_COLUMNS),
    )
