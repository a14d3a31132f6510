"""Account types against the real gateway over TCP (unmodified ib_async): a cash account
trades two sessions without a single 201, its second session's buys use only the cash settled
at the open, and the backtest of the same config (settlement = "T+1") gives the same orders and
fills; a margin account of 20,000 USD is refused at start; with allow_pdt_limited the run stops
buying after the third day trade and says why. Each ends with journal = gateway record."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from momentumbot.cli import main
from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.domain.errors import ConfigError
from momentumbot.journal.journal import JOURNAL_NAME, Journal
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import check_books, replayed, synthetic_store, trading, write_config
from tests.trade.week import DAYS, STORE_SESSIONS, STORE_START, WeekDriver, gateway_ready

SYMBOLS = default_symbols(6)
TWO_DAYS = DAYS[:2]
CASH = 'account_type = "cash"\n\n[portfolio]\ninitial_cash = 20000.0\nsettlement = "T+1"\n'


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("accounts")
    synthetic_store(root / "store", SYMBOLS, STORE_START, STORE_SESSIONS, seed=11)
    return root / "store"


def _journal_meta(out: Path, key: str) -> str:
    j = Journal.open(out / JOURNAL_NAME, create=False)
    try:
        return j.get(key) or ""
    finally:
        j.close()


def _by_day(fills: pd.DataFrame) -> pd.DataFrame:
    day = fills.time.str.slice(0, 10)
    buy = fills.side == "BUY"
    value = fills.quantity * fills.price
    return (
        pd.DataFrame(
            {
                "day": day,
                "buys": (value + fills.commission).where(buy, 0.0),
                "proceeds": (value - fills.commission).where(~buy, 0.0),
            }
        )
        .groupby("day")
        .sum()
    )


def test_a_cash_account_trades_two_sessions_on_settled_cash_as_the_backtest(
    store_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection")
    cfg_path = write_config(tmp_path / "cfg.toml", SYMBOLS, CASH)
    bt = tmp_path / "bt"
    code = main(["backtest", "--config", str(cfg_path), "--store", str(store_dir), "--start",
                 TWO_DAYS[0], "--end", TWO_DAYS[-1], "--out", str(bt), "--no-report"])  # fmt: skip
    assert code == 0

    async def body() -> None:
        gw_kwargs = {"account_type": "cash", "cash": Decimal(20_000)}
        cfg = load_config(cfg_path)
        async with trading(
            BarStore(store_dir), TWO_DAYS[0], tmp_path / "out", cfg, sessions=2,
            gw_kwargs=gw_kwargs,
        ) as s:  # fmt: skip
            drv = WeekDriver(
                s.gw, lambda: s.trader.progress_ns, lambda: not s.task.done(),
                ready=lambda: gateway_ready(s.gw, len(SYMBOLS)),
            )  # fmt: skip
            await drv.run_week(TWO_DAYS)
            await s.finish()
            check_books(s.trader, s.gw)
            check_books(replayed(s.out), s.gw)  # the journal replayed = the gateway's record
            rejects = [e for e in s.gw.record.events if e.get("event") == "reject"]
            assert not rejects, rejects
            assert s.gw.broker.accounts["DU0000001"].rules.is_cash

    asyncio.run(body())
    out = tmp_path / "out"
    t_fills = pd.read_csv(out / "fills.csv")
    days = _by_day(t_fills)
    assert list(days.index) == list(TWO_DAYS)
    first, second = days.iloc[0], days.iloc[1]
    assert first.buys <= 20_000.0 and first.proceeds > 0, "the first day sold something"
    settled_at_second_open = 20_000.0 - first.buys + first.proceeds
    assert second.buys <= settled_at_second_open + 1e-6
    assert second.buys > 0.5 * settled_at_second_open, "the second day spent its settled cash"
    # the backtest of the same config (settlement T+1): the same orders and fills
    cols = ["order_id", "decided_at", "symbol", "side", "quantity", "reason", "status",
            "filled_quantity"]  # fmt: skip
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "orders.csv")[cols], pd.read_csv(bt / "orders.csv")[cols]
    )
    cols = ["fill_id", "order_id", "time", "symbol", "side", "quantity", "price", "commission"]
    pd.testing.assert_frame_equal(
        t_fills[cols], pd.read_csv(bt / "fills.csv")[cols], check_exact=False, rtol=0, atol=1e-9
    )


def test_a_margin_account_of_20k_is_refused_at_start(
    store_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection")
    extra = 'account_type = "margin"\n\n[portfolio]\ninitial_cash = 15000.0\n'
    cfg = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS, extra))

    async def body() -> str:
        gw_kwargs = {"cash": Decimal(20_000)}
        async with trading(
            BarStore(store_dir), DAYS[0], tmp_path / "out", cfg, gw_kwargs=gw_kwargs
        ) as s:
            with pytest.raises(ConfigError) as err:
                await s.finish()
            assert not [e for e in s.gw.record.events if e.get("event") == "order"]
            assert err.value.exit_code == 2
            return str(err.value)

    msg = asyncio.run(body())
    assert "\n" not in msg
    assert "margin account" in msg and "20,000.00 USD" in msg
    assert "pattern-day-trader" in msg and "allow_pdt_limited" in msg


def test_a_cash_config_against_a_margin_account_is_refused(
    store_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection")
    cfg = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS, CASH))

    async def body() -> str:
        async with trading(BarStore(store_dir), DAYS[0], tmp_path / "out", cfg) as s:
            with pytest.raises(ConfigError) as err:
                await s.finish()
            return str(err.value)

    assert "is a margin account" in asyncio.run(body())


def test_pdt_limited_stops_buying_after_the_third_day_trade(
    store_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection")
    extra = (
        'account_type = "margin"\nallow_pdt_limited = true\n\n[portfolio]\ninitial_cash = 15000.0\n'
    )
    cfg = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS, extra))

    async def body() -> None:
        gw_kwargs = {"cash": Decimal(20_000)}
        async with trading(
            BarStore(store_dir), DAYS[0], tmp_path / "out", cfg, gw_kwargs=gw_kwargs
        ) as s:
            await s.drv.settle(60)
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)
            rules = s.gw.broker.accounts["DU0000001"].rules
            assert rules.day_trades_in_window() == 3, "three day trades, never a fourth"
            assert not [e for e in s.gw.record.events if e.get("event") == "reject"]
            assert "no day trade left" in s.trader.state.buys_halted

    asyncio.run(body())
    out = tmp_path / "out"
    log = (out / "run.log").read_text()
    assert "HALTED: no day trade left" in log
    assert "no day trade left" in _journal_meta(out, "buys_halted")
    orders = pd.read_csv(out / "orders.csv")
    assert (orders.side == "BUY").sum() >= 3
