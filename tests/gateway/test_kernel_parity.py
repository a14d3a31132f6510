"""The backtest kernel's orders replayed through the gateway by ib_async get, fill for fill, the
fills the kernel's own simulated broker gave them (same store, same bars, same fill model)."""

from __future__ import annotations

import pandas as pd
import pytest
from ib_async import MarketOrder

from momentumbot.config.schema import AppConfig
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic
from momentumbot.domain.units import MICRO
from momentumbot.engine.backtest import run_backtest
from tests.gateway.conftest import barrier, connected, gateway, qualified, run, wait_until

SYMBOLS = default_symbols(8)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("kernel-parity") / "store"
    write_synthetic(BarStore(root), SYMBOLS, start="2024-01-02", n_sessions=6, seed=7)
    return BarStore(root)


def test_kernel_orders_fill_the_same_through_the_gateway(store: BarStore) -> None:
    cfg = AppConfig(symbols=SYMBOLS)
    result = run_backtest(cfg, store, start="2024-01-08", end="2024-01-09")
    orders = result.orders[result.orders["status"] != "skipped"]
    # the run folder has no cancel times, so the scenario must have none to replay
    assert set(orders["status"]) <= {"filled", "working"}, set(orders["status"])
    assert len(orders) > 50 and "flatten" in set(orders["reason"])
    want = sorted(
        (
            int(f["order_id"]),
            pd.Timestamp(f["time"]).value,
            int(f["quantity"]),
            float(f["price"]),
            round(float(f["commission"]) * MICRO),
        )
        for f in result.fills.to_dict("records")
    )

    async def body() -> list[tuple[int, int, int, float, int]]:
        async with (
            gateway(store, start="2024-01-08", cash=cfg.portfolio.initial_cash) as srv,
            connected(srv) as ib,
        ):
            contracts = dict(
                zip(
                    SYMBOLS,
                    await qualified(ib, *SYMBOLS),
                    strict=True,
                )
            )
            ib_to_kernel: dict[int, int] = {}
            for decided, group in orders.groupby("decided_at", sort=True):
                await srv.advance_to(pd.Timestamp(str(decided)).value)
                for o in group.sort_values("order_id").to_dict("records"):
                    # flatten orders are exempt from the volume cap
                    ref = f"{o['reason']}-{o['order_id']}"
                    trade = ib.placeOrder(
                        contracts[str(o["symbol"])],
                        MarketOrder(str(o["side"]), int(o["quantity"]), orderRef=ref, tif="GTC"),
                    )
                    ib_to_kernel[trade.order.orderId] = int(o["order_id"])
                await barrier(ib)
            await srv.advance_to(pd.Timestamp("2024-01-09 16:01", tz="America/New_York").value)
            await barrier(ib)
            await wait_until(
                lambda: (
                    len(ib.fills()) == len(srv.broker.fills)
                    and all(f.commissionReport.execId for f in ib.fills())
                ),
                what="every fill and its commission",
            )
            return sorted(
                (
                    ib_to_kernel[f.execution.orderId],
                    pd.Timestamp(f.execution.time).value,
                    int(f.execution.shares),
                    f.execution.price,
                    round(f.commissionReport.commission * MICRO),
                )
                for f in ib.fills()
            )

    got = run(body())
    assert got == want
