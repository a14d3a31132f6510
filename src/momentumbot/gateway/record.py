"""The gateway's own record of orders and fills (JSON lines), for comparing with what a bot believes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from momentumbot.domain.units import MICRO, NS
from momentumbot.execution.costs import BUY
from momentumbot.gateway.broker import Fill, SimOrder
from momentumbot.gateway.market import ny_time


def iso(ns: int) -> str:
    return ny_time(ns).isoformat()


def micro_str(micro: int) -> str:
    """Exact decimal text of an integer micro-dollar amount."""
    sign = "-" if micro < 0 else ""
    whole, frac = divmod(abs(micro), MICRO)
    return f"{sign}{whole}.{frac:06d}"


class Recorder:
    """Keeps every order event and fill in memory and, given a path, appends them as JSON lines."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.events: list[dict[str, Any]] = []
        self._fh: IO[str] | None = None
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def _write(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if self._fh is not None:
            self._fh.write(json.dumps(event, separators=(",", ":")) + "\n")
            self._fh.flush()

    def order(self, what: str, o: SimOrder, now_ns: int) -> None:
        self._write(
            {
                "event": "order",
                "what": what,
                "time": iso(now_ns),
                "time_ns": now_ns,
                "perm_id": o.perm_id,
                "client_id": o.client_id,
                "order_id": o.order_id,
                "account": o.account,
                "symbol": o.symbol,
                "action": o.action,
                "qty": o.total_qty,
                "order_type": o.order_type,
                "lmt_price": o.lmt_price,
                "aux_price": o.aux_price,
                "tif": o.tif,
                "order_ref": o.order_ref,
                "status": o.status,
                "filled": o.filled,
                "eligible_from": iso(o.eligible_from_ns),
            }
        )

    def reject(
        self, client_id: int, order_id: int, symbol: str, code: int, text: str, now_ns: int
    ) -> None:
        self._write(
            {
                "event": "reject",
                "time": iso(now_ns),
                "time_ns": now_ns,
                "client_id": client_id,
                "order_id": order_id,
                "symbol": symbol,
                "code": code,
                "text": text,
            }
        )

    def fill(self, f: Fill, cash_after_micro: int, position_after: int, now_ns: int) -> None:
        self._write(
            {
                "event": "fill",
                "time": iso(now_ns),
                "time_ns": now_ns,
                "bar": iso(f.bar_ns),
                "bar_ns": f.bar_ns,
                "exec_id": f.exec_id,
                "perm_id": f.perm_id,
                "client_id": f.client_id,
                "order_id": f.order_id,
                "account": f.account,
                "symbol": f.symbol,
                "side": "BOT" if f.side == BUY else "SLD",
                "qty": f.qty,
                "price": f.price,
                "value": micro_str(f.value_micro),
                "commission": micro_str(f.commission_micro),
                "cum_qty": f.cum_qty,
                "order_ref": f.order_ref,
                "cash_after": micro_str(cash_after_micro),
                "position_after": position_after,
            }
        )

    def note(self, what: str, now_ns: int, **detail: Any) -> None:
        self._write(
            {"event": "gateway", "what": what, "time": iso(now_ns), "time_ns": now_ns, **detail}
        )

    def fills(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == "fill"]


def epoch_seconds(ns: int) -> int:
    return ns // NS
