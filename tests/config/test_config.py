"""The config: defaults, validation messages, round trip, and the reference kept in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from momentumbot.config.loader import config_to_toml, load_config, parse_config
from momentumbot.config.reference import config_reference_markdown
from momentumbot.config.schema import AppConfig
from momentumbot.domain.errors import ConfigError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_defaults_are_the_strategy_numbers() -> None:
    c = AppConfig()
    assert (c.strategy.step, c.strategy.buffer, c.strategy.shadow_notional) == (1.0, 0.3, 10_000.0)
    assert (c.allocation.rebalance_minutes, c.allocation.min_history_bars) == (5, 30)
    assert (c.allocation.min_quiet_volume, c.allocation.rebalance_tolerance) == (200.0, 0.10)
    assert (c.portfolio.initial_cash, c.portfolio.cash_reserve) == (100_000.0, 500.0)
    assert (c.execution.slippage_per_share, c.execution.slippage_bps) == (0.01, 1.0)
    assert (c.execution.max_volume_participation, c.execution.max_commission_bps) == (0.10, 5.0)
    assert (c.session.no_new_entries_minutes, c.session.flatten_minutes) == (15, 5)
    assert c.execution.tiered.sec_fee_rate == 0.0000278


def test_round_trip_through_toml(tmp_path: Path) -> None:
    cfg = parse_config({"symbols": ["aapl", "MSFT"], "strategy": {"step": 0.5}})
    assert cfg.symbols == ["AAPL", "MSFT"]
    path = tmp_path / "c.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(path) == cfg


@pytest.mark.parametrize(
    "data,needles",
    [
        ({"strategy": {"stepp": 1}}, ["c.toml", "strategy.stepp", "buffer", "step"]),
        ({"bogus": 1}, ["c.toml", "'bogus'", "symbols", "portfolio"]),
        ({"strategy": {"step": -1}}, ["strategy.step", "greater than 0"]),
        ({"execution": {"commission": "flat"}}, ["execution.commission", "'fixed' or 'tiered'"]),
        ({"symbols": ["AAPL", "AAPL"]}, ["symbols", "twice"]),
        ({"symbols": ["not a ticker"]}, ["symbols", "not a ticker"]),
    ],
)
def test_bad_values_name_the_file_the_key_and_what_is_allowed(
    tmp_path: Path, data: dict, needles: list[str]
) -> None:
    import tomli_w

    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("symbols = [\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_docs_config_reference_is_in_step_with_the_schema() -> None:
    assert DOCS.read_text() == config_reference_markdown(), (
        "docs/config.md is stale: run `momentumbot config reference > docs/config.md`"
    )


def test_secrets_never_reach_a_written_config(tmp_path: Path) -> None:
    cfg = parse_config({"data": {"alphavantage_api_key": "sekrit-123"}})
    text = config_to_toml(cfg)
    assert "sekrit" not in text and "alphavantage_api_key" not in text and "****" not in text
    path = tmp_path / "c.toml"
    path.write_text(text)
    assert load_config(path).data.alphavantage_api_key.get_secret_value() == ""


def test_overrides_keep_secrets() -> None:
    from momentumbot.config.loader import with_overrides

    cfg = parse_config({"data": {"alphavantage_api_key": "sekrit-123"}})
    again = with_overrides(cfg, symbols=["AAPL"])
    assert again.data.alphavantage_api_key.get_secret_value() == "sekrit-123"
    assert again.symbols == ["AAPL"]
