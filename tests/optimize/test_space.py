"""Parameter specs: parsed against the schema, refused in one line before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from momentumbot.cli import main
from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError
from momentumbot.optimize.space import (
    apply_params,
    check_values,
    grid,
    parse_param,
    parse_params,
    random_sets,
)


def test_ranges_are_decimal_and_include_their_end() -> None:
    assert parse_param("step=0.5:2.0:0.25").values == (0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0)
    assert parse_param("buffer=0.1:0.3:0.1").values == (0.1, 0.2, 0.3)  # no 0.30000000000000004
    assert parse_param("rebalance_minutes=1,5,15").values == (1, 5, 15)
    assert parse_param("top_k=0:4:2").values == (0, 2, 4)
    assert parse_param("buffer=0.2").values == (0.2,)


def test_names_resolve_bare_or_dotted_to_their_section() -> None:
    assert parse_param("step=1").field.path == ("strategy", "step")
    assert parse_param("allocation.rebalance_minutes=5").field.path == (
        "allocation",
        "rebalance_minutes",
    )
    assert parse_param("fixed.minimum=1,2").field.path == ("execution", "fixed", "minimum")
    assert parse_param("cash_reserve=0,500").field.path == ("portfolio", "cash_reserve")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("stpe=1:2:0.5", "unknown parameter"),
        ("step=", "empty range"),
        ("step=2:1:0.5", "empty range"),
        ("step=1:2:0", "step of a range must be above 0"),
        ("step=a,b", "is not a number"),
        ("step=1,,2", "empty value"),
        ("step", "expected NAME=SPEC"),
        ("step=1:2:3:4", "LO:HI:STEP"),
        ("rebalance_minutes=1.5", "whole numbers"),
        ("minimum=1", "fixed.minimum, tiered.minimum"),
        ("host=1", "cannot be swept"),
        ("scorer=1", "cannot be swept"),
        ("stop_wait_seconds=1", "cannot be swept"),
    ],
)
def test_malformed_specs_are_one_line_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        parse_param(text)
    assert "\n" not in str(info.value)


def test_values_are_checked_against_the_schema() -> None:
    base = AppConfig().model_dump()
    with pytest.raises(ConfigError, match=r"step=-1\.0"):
        check_values(base, parse_params(["step=-1,1"]))
    with pytest.raises(ConfigError, match="rebalance_minutes=0"):
        check_values(base, parse_params(["rebalance_minutes=0,5"]))
    with pytest.raises(ConfigError, match="given twice"):
        parse_params(["step=1", "strategy.step=2"])


def test_grid_and_random_sets() -> None:
    specs = parse_params(["step=0.5:1.5:0.5", "rebalance_minutes=1,5"])
    sets = list(grid(specs))
    assert len(sets) == 6
    assert sets[0] == (("step", 0.5), ("rebalance_minutes", 1))
    assert sets[-1] == (("step", 1.5), ("rebalance_minutes", 5))
    drawn = random_sets(specs, 4, seed=1)
    assert len(set(drawn)) == 4 and set(drawn) <= set(sets)
    assert drawn == random_sets(specs, 4, seed=1)
    assert random_sets(specs, 100, seed=1) == sets
    cont = random_sets(parse_params(["step=0.5:2", "top_k=0:3"]), 20, seed=2)
    assert len(cont) == 20
    assert all(0.5 <= dict(p)["step"] <= 2 and isinstance(dict(p)["top_k"], int) for p in cont)
    with pytest.raises(ConfigError, match="for --method random"):
        list(grid(parse_params(["step=0.5:2"])))
    cfg = apply_params(AppConfig().model_dump(), specs, sets[-1])
    assert cfg.strategy.step == 1.5 and cfg.allocation.rebalance_minutes == 5


@pytest.mark.parametrize(
    "args",
    [
        ["--param", "stpe=1,2"],
        ["--param", "step=2:1:0.5"],
        ["--param", "step=1:2:x"],
        ["--param", "step=1,2", "--objective", "profit"],
        ["--param", "step=1,2", "--walk-forward", "10"],
        ["--param", "step=1,2", "--method", "random"],
    ],
)
def test_cli_refuses_a_bad_sweep_before_any_work(
    args: list[str],
    tmp_path: Path,
    synthetic: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    store, symbols = synthetic
    out = tmp_path / "sweep"
    code = main(["optimize", "--store", str(store), "--symbols", ",".join(symbols),
                 "--start", "2024-01-04", "--end", "2024-01-10", "--out", str(out), *args])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_the_risk_limits_can_be_swept() -> None:
    specs = parse_params(["max_daily_loss=100,200", "risk.max_orders_per_minute=1:3:1"])
    assert [s.field.dotted for s in specs] == ["risk.max_daily_loss", "risk.max_orders_per_minute"]
