"""End to end through the command line: import the 24-symbol Alpha Vantage set, backtest it,
and check the run folder against its contract and against the bars it used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentumbot.cli import main
from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.reporting.metrics import FIGURE_NAMES

AV_SYMBOLS = [
    "AAPL",
    "AMT",
    "AMZN",
    "BAC",
    "BK",
    "DFS",
    "GLD",
    "JPM",
    "MSFT",
    "MU",
    "PPLT",
    "QQQ",
    "SBUX",
    "SLV",
    "SPY",
    "TRV",
    "TSLA",
    "TZA",
    "UGA",
    "VIX",
    "VOO",
    "VXXB",
    "V",
    "XLP",
]


@pytest.fixture(scope="module")
def av_run(shared_market_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("av")
    store = root / "store"
    files = sorted(
        str(p) for p in (shared_market_data / "eqker_alphavantage_2019-02").glob("*_1min.csv.gz")
    )
    assert len(files) == 24
    assert main(["data", "import", *files, "--format", "alphavantage", "--store", str(store)]) == 0
    out = root / "run"
    code = main(
        ["backtest", "--store", str(store), "--symbols", ",".join(AV_SYMBOLS), "--out", str(out)]
    )
    assert code == 0
    return store, out


def read(out: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name)


def test_run_folder_has_every_file_with_the_contract_columns(av_run: tuple[Path, Path]) -> None:
    _, out = av_run
    for name in (
        "config.toml",
        "orders.csv",
        "fills.csv",
        "equity.csv",
        "allocations.csv",
        "summary.json",
        "run.log",
    ):
        assert (out / name).is_file(), name
    assert list(read(out, "orders.csv").columns) == [
        "order_id", "decided_at", "symbol", "side", "quantity", "reason", "status", "filled_quantity",
    ]  # fmt: skip
    assert list(read(out, "fills.csv").columns) == [
        "fill_id", "order_id", "time", "symbol", "side", "quantity", "price", "commission", "slippage",
    ]  # fmt: skip
    assert list(read(out, "equity.csv").columns) == ["time", "cash", "positions_value", "equity"]
    assert list(read(out, "allocations.csv").columns) == [
        "time",
        "symbol",
        "score",
        "budget",
        "target_shares",
    ]
    cfg = load_config(out / "config.toml")
    assert cfg.symbols == AV_SYMBOLS


def test_orders_and_fills_follow_the_rules(av_run: tuple[Path, Path]) -> None:
    store_dir, out = av_run
    orders, fills = read(out, "orders.csv"), read(out, "fills.csv")
    assert len(orders) > 0 and len(fills) > 0
    assert set(orders.side) <= {"BUY", "SELL"} and set(fills.side) <= {"BUY", "SELL"}
    assert set(orders.reason) <= {"enter", "exit", "rebalance", "flatten"}
    assert set(orders.status) <= {
        "filled",
        "partially_filled",
        "cancelled",
        "replaced",
        "skipped",
        "working",
    }
    decided = pd.to_datetime(orders.set_index("order_id").decided_at, utc=True)
    ftime = pd.to_datetime(fills.time, utc=True)
    assert (ftime.to_numpy() >= decided.loc[fills.order_id].to_numpy()).all()
    # every fill is at its bar's open, moved against us by 0.01 + 1 bp, on a bar the store has
    store = BarStore(store_dir)
    for sym, group in fills.groupby("symbol"):
        bars = store.read(str(sym)).set_index("ts")
        opens = bars.open.reindex(pd.to_datetime(group.time, utc=True).dt.as_unit("ns"))
        assert opens.notna().all()
        sign = np.where(group.side == "BUY", 1.0, -1.0)
        expected = opens.to_numpy() + sign * (0.01 + 1e-4 * opens.to_numpy())
        np.testing.assert_allclose(group.price.to_numpy(), expected, rtol=0, atol=1e-9)
    # flat at the end of every session (no carries on this complete data)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overnight_carries"] == 0
    signed = np.where(fills.side == "BUY", 1, -1) * fills.quantity
    assert signed.groupby(fills.symbol).sum().eq(0).all()


def test_equity_and_summary(av_run: tuple[Path, Path]) -> None:
    _, out = av_run
    equity = read(out, "equity.csv")
    assert len(equity) == 5 * 390  # every bar close of the five sessions
    assert pd.to_datetime(equity.time, utc=True).iloc[0] == pd.Timestamp(
        "2019-02-11 14:31", tz="UTC"
    )
    np.testing.assert_allclose(equity.equity, equity.cash + equity.positions_value, atol=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    for name in FIGURE_NAMES:
        assert name in summary and name in summary["benchmark"], name
    fills = read(out, "fills.csv")
    cash = 100_000 + float(
        (np.where(fills.side == "BUY", -1, 1) * fills.quantity * fills.price).sum()
        - fills.commission.sum()
    )
    assert summary["final_equity"] == pytest.approx(cash, abs=0.01)
    assert summary["commissions"] == pytest.approx(fills.commission.sum(), abs=1e-6)


@pytest.fixture
def small_store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    assert (
        main(["data", "generate", "--symbols", "2", "--sessions", "3", "--store", str(store)]) == 0
    )
    return store


def test_unknown_config_key_is_a_one_line_error(
    tmp_path: Path, small_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('symbols = ["SYN001"]\n[strategy]\nstepp = 2.0\n')
    assert (
        main(
            [
                "backtest",
                "--config",
                str(cfg),
                "--store",
                str(small_store),
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "bad.toml" in err and "strategy.stepp" in err and "step" in err
    assert not (tmp_path / "r").exists()


def test_empty_symbol_list_is_an_error(
    tmp_path: Path, small_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backtest", "--store", str(small_store), "--out", str(tmp_path / "r")]) != 0
    assert "symbol list is empty" in capsys.readouterr().err


def test_dates_without_data_are_an_error(
    tmp_path: Path, small_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "backtest", "--store", str(small_store), "--symbols", "SYN001",
        "--start", "2019-01-02", "--end", "2019-01-10", "--out", str(tmp_path / "r"),
    ])  # fmt: skip
    assert code != 0
    err = capsys.readouterr().err
    assert "no bars" in err and "2019-01-02" in err


def test_unknown_symbol_is_an_error(
    tmp_path: Path, small_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "backtest",
                "--store",
                str(small_store),
                "--symbols",
                "NOPE",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        != 0
    )
    assert "NOPE" in capsys.readouterr().err


def test_config_show_round_trips_through_config_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["config", "show"]) == 0
    shown = capsys.readouterr().out
    path = tmp_path / "shown.toml"
    path.write_text(shown)
    assert main(["config", "check", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


def test_symbols_all_takes_every_symbol_in_the_store(tmp_path: Path, small_store: Path) -> None:
    out = tmp_path / "r"
    assert (
        main(["backtest", "--store", str(small_store), "--symbols", "all", "--out", str(out)]) == 0
    )
    assert load_config(out / "config.toml").symbols == ["SYN001", "SYN002"]


def test_minute_data_from_any_year_and_dates_past_the_calendar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Minute bars from 1985 backtest (the calendar reaches back to the exchange's start);
    dates past the calendar's end are a one-line error naming the range it knows."""
    from momentumbot.data.store import BarStore
    from momentumbot.data.synthetic import write_synthetic

    store = tmp_path / "store"
    write_synthetic(BarStore(store), ["AAA", "BBB"], start="1985-03-04", n_sessions=3, seed=3)
    out = tmp_path / "bt"
    assert main(["backtest", "--store", str(store), "--symbols", "AAA,BBB", "--out", str(out),
                 "--no-report"]) == 0  # fmt: skip
    equity = pd.read_csv(out / "equity.csv")
    assert equity.time.str.startswith("1985-03-0").all() and len(equity) == 3 * 390
    capsys.readouterr()
    code = main(["backtest", "--store", str(store), "--symbols", "AAA", "--start", "1985-03-04",
                 "--end", "2199-01-01", "--out", str(tmp_path / "bt2"), "--no-report"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 3
    assert "outside the XNYS calendar, which knows sessions from" in err and "Traceback" not in err
