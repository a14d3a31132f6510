"""`momentumbot backtest` with tight [risk] limits: the run folder shows every limit held at
every minute, what each limit cut or refused, and the daily-loss halt; without limits the
folder is what it always was."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from momentumbot.cli import main
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic
from tests.risk_folder import NY, check_limits

SYMBOLS = default_symbols(6)
# tight for 100,000 USD over 6 symbols: each limit acts, and the first session halts
LIMITS = {
    "max_position_value": 15_000.0,
    "max_gross_exposure": 50_000.0,
    "max_orders_per_minute": 2,
    "max_daily_loss": 100.0,
}


def risk_toml(limits: dict[str, float]) -> str:
    return "[risk]\n" + "".join(f"{k} = {v!r}\n" for k, v in limits.items())


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    root = tmp_path_factory.mktemp("risk") / "store"
    write_synthetic(BarStore(root), SYMBOLS, start="2024-01-02", n_sessions=3, seed=5)
    return BarStore(root)


def backtest(store: BarStore, tmp: Path, name: str, toml: str) -> Path:
    cfg = tmp / f"{name}.toml"
    syms = ", ".join(f'"{s}"' for s in SYMBOLS)
    cfg.write_text(f"symbols = [{syms}]\n\n{toml}", encoding="utf-8")
    out = tmp / name
    args = ["backtest", "--config", str(cfg), "--store", str(store.root), "--start", "2024-01-03"]
    assert main([*args, "--end", "2024-01-04", "--out", str(out), "--no-report"]) == 0
    return out


def test_a_backtest_keeps_tight_limits_and_shows_the_halt(store: BarStore, tmp_path: Path) -> None:
    out = backtest(store, tmp_path, "tight", risk_toml(LIMITS))
    f = check_limits(out, store, SYMBOLS, LIMITS)
    risk, orders, summary = f["risk"], f["orders"], f["summary"]
    acted = set(zip(risk.event, risk.limit, strict=True))
    assert {
        ("cut", "max_position_value"),
        ("refused", "max_position_value"),
        ("cut", "max_gross_exposure"),
        ("refused", "max_orders_per_minute"),
        ("halt", "max_daily_loss"),
    } <= acted
    halts = risk[risk.event == "halt"]
    assert len(halts) == 1 and float(halts.loss.iloc[0]) >= LIMITS["max_daily_loss"]
    halt_day = halts.time.iloc[0].tz_convert(NY).date()
    # the halt lasts the rest of that session only: the next session trades again
    later = orders[orders.decided_at.dt.tz_convert(NY).dt.date > halt_day]
    assert (later.side == "BUY").any() and (later.status == "filled").any()
    # each cut or refused order is in orders.csv as decided at that minute
    by_id = orders.set_index("order_id")
    for row in risk[risk.event != "halt"].itertuples():
        o = by_id.loc[int(row.order_id)]
        assert o.decided_at == row.time and o.symbol == row.symbol and o.side == "BUY"
        assert int(o.quantity) == (int(row.requested) if row.event == "refused" else row.quantity)
        assert (o.status == "skipped") == (row.event == "refused")
    assert summary["risk"]["halts"] == [str(halts.time.iloc[0]).replace(" ", "T")]
    assert summary["risk"]["limits"] == {k: float(v) for k, v in LIMITS.items()}
    assert summary["risk"]["orders_cut"] == int((risk.event == "cut").sum())
    assert "daily loss" in (out / "run.log").read_text()


def test_without_limits_the_folder_has_no_risk_file(store: BarStore, tmp_path: Path) -> None:
    out = backtest(store, tmp_path, "plain", "")
    assert not (out / "risk.csv").exists()
    assert "risk" not in json.loads((out / "summary.json").read_text())
