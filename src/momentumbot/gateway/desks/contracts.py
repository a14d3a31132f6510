"""The contracts desk: which stock a contract names (US stocks of the store, minus the `unknown`
fault's symbols), contract details with trading and liquid hours, and error 200."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from momentumbot.data.calendar import TradingCalendar
from momentumbot.gateway import protocol as p
from momentumbot.gateway.desks.connection import ClientSession
from momentumbot.gateway.desks.sessions import Handlers, register
from momentumbot.gateway.faults import Faults
from momentumbot.gateway.market import MarketData, ny_time
from momentumbot.gateway.protocol import ContractSpec, Reader, StockInfo


class ContractDesk:
    def __init__(
        self,
        market: MarketData,
        calendar: TradingCalendar,
        faults: Faults,
        now: Callable[[], int],
    ) -> None:
        self.market = market
        self.calendar = calendar
        self.faults = faults
        self.now = now

    def register(self, handlers: Handlers) -> None:
        register(handlers, {9: self._req_contract_details})

    def resolve(self, c: ContractSpec) -> StockInfo | None:
        if c.sec_type.upper() not in ("", "STK"):
            return None
        if c.currency.upper() not in ("", "USD"):
            return None
        stock: StockInfo | None = None
        if c.con_id:
            stock = self.market.by_con_id.get(c.con_id)
            if stock is None or (c.symbol and c.symbol.upper() != stock.symbol):
                return None
        else:
            sym = (c.symbol or c.local_symbol).upper()
            stock = self.market.stocks.get(sym)
        if stock is None or stock.symbol in self.faults.unknown_symbols:
            return None
        return stock

    @staticmethod
    def no_security(s: ClientSession, req_id: int) -> None:
        s.error(req_id, 200, "No security definition has been found for the request")

    def _req_contract_details(self, s: ClientSession, r: Reader) -> None:
        r.integer()  # version
        req_id = r.integer()
        c = r.contract()
        stock = self.resolve(c)
        if stock is None:
            self.no_security(s, req_id)
            return
        trading, liquid = self._hours()
        long_name = f"{stock.symbol} (SIMULATED)"
        s.send(p.msg_contract_data(req_id, stock, long_name, trading, liquid, sv=s.server_version))
        s.send(p.msg_contract_data_end(req_id))

    def _hours(self) -> tuple[str, str]:
        day = pd.Timestamp(ny_time(self.now()).date())
        sessions = self.calendar.sessions(day, day + pd.Timedelta(days=6))
        g = self.calendar.grid(sessions)
        opens = {
            ny_time(int(o)).date(): (int(o), int(c))
            for o, c in zip(g.open_ns, g.close_ns, strict=True)
        }
        trading: list[str] = []
        liquid: list[str] = []
        for k in range(7):
            d = (day + pd.Timedelta(days=k)).date()
            ymd = d.strftime("%Y%m%d")
            if d not in opens:
                trading.append(f"{ymd}:CLOSED")
                liquid.append(f"{ymd}:CLOSED")
                continue
            o, c = opens[d]
            trading.append(f"{ymd}:0400-{ymd}:2000")
            liquid.append(f"{ymd}:{ny_time(o):%H%M}-{ymd}:{ny_time(c):%H%M}")
        return ";".join(trading), ";".join(liquid)
