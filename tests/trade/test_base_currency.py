"""A EUR-base IB account against the real gateway over TCP (unmodified ib_async): a cash
account with enough USD in its USD ledger trades a session (its cash journaled in USD, equal
to the gateway's USD ledger; the EUR untouched; never a 201); one with plenty of EUR but too
little USD is refused at start with one line naming the account, both figures and what to do
(exit code 2), and nothing is sent."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.domain.units import MICRO
from momentumbot.gateway.account_rules import BaseCurrency
from momentumbot.journal.journal import JOURNAL_NAME, Journal
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import (
    CliRun,
    check_books,
    gateway,
    stop_thread,
    synthetic_store,
    trading,
    write_config,
)
from tests.trade.week import DAYS, STORE_SESSIONS, STORE_START

SYMBOLS = default_symbols(6)
CASH = 'account_type = "cash"\n\n[portfolio]\ninitial_cash = 20000.0\nsettlement = "T+1"\n'
ACCT = "DU0000001"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("base_currency")
    synthetic_store(root / "store", SYMBOLS, STORE_START, STORE_SESSIONS, seed=11)
    return root / "store"


def test_a_eur_cash_account_with_enough_usd_trades_in_usd(
    store_dir: Path, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.tolerate(202)
    ib_log.allow("Peer closed connection")
    cfg = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS, CASH))
    eur = BaseCurrency("EUR", Decimal("0.92"), Decimal(30_000))

    async def body() -> None:
        gw_kwargs = {"account_type": "cash", "cash": Decimal(21_000), "base_currency": eur}
        async with trading(
            BarStore(store_dir), DAYS[0], tmp_path / "out", cfg, gw_kwargs=gw_kwargs
        ) as s:
            await s.drv.settle(60)
            await s.drv.run_to("16:01")
            await s.finish()
            check_books(s.trader, s.gw)  # the journal's USD cash = the gateway's USD ledger
            acct = s.gw.broker.accounts[ACCT]
            assert acct.base_cash_micro == 30_000 * MICRO, "the EUR never moved"
            assert [f for f in s.gw.broker.fills if f.account == ACCT], "it traded"
            rejects = [e for e in s.gw.record.events if e.get("event") == "reject"]
            assert not rejects, rejects

    asyncio.run(body())
    j = Journal.open(tmp_path / "out" / JOURNAL_NAME, create=False)
    try:
        assert j.get("account_cash_start") == str(21_000 * MICRO)  # USD, not the EUR total
    finally:
        j.close()


def test_a_eur_cash_account_with_too_little_usd_is_refused_at_start(
    store_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS, CASH)
    eur = BaseCurrency("EUR", Decimal("0.92"), Decimal(50_000))

    async def body() -> CliRun:
        async with gateway(
            BarStore(store_dir), DAYS[0], account_type="cash", cash=Decimal(1_000),
            base_currency=eur,
        ) as gw:  # fmt: skip
            args = ["trade", "--config", str(cfg), "--port", str(gw.port), "--client-id", "7",
                    "--out", str(tmp_path / "out"), "--no-console"]  # fmt: skip
            run = CliRun(args).start()
            await stop_thread(run)
            assert not [e for e in gw.record.events if e.get("event") == "order"]
            return run

    run = asyncio.run(body())
    assert run.error is None and run.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if "initial_cash" in x)
    assert "DU0000001 (base currency EUR)" in line
    assert "1,000.00 USD in its USD ledger" in line
    assert "50,920.00 EUR" in line and "55,347.83 USD" in line and "0.92 EUR per USD" in line
    assert "convert at least 19,000.00 USD" in line and "lower [portfolio] initial_cash" in line
