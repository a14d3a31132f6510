"""The typed, validated, frozen configuration: every number of STRATEGY.md lives here."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_TICKER = re.compile(r"^[A-Z][A-Z0-9.\-]{0,9}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortfolioConfig(_Section):
    initial_cash: float = Field(100_000.0, gt=0, description="Starting cash of the real book, USD.")
    cash_reserve: float = Field(
        500.0,
        ge=0,
        description="Cash the allocator never invests: investable = equity - cash_reserve, USD.",
    )


class StrategyConfig(_Section):
    step: float = Field(
        1.0,
        gt=0,
        description="Width of one rung of the momentum band, percent of the session reference price.",
    )
    buffer: float = Field(
        0.3,
        ge=0,
        description="Breakout above / trailing stop below the current rung, percent.",
    )
    shadow_notional: float = Field(
        10_000.0,
        gt=0,
        description="Notional each symbol's shadow book buys at an enter signal, USD.",
    )
    hold_overnight: bool = Field(
        False,
        description="If true there is no flatten; bands and shadow books carry over to the next session.",
    )


class AllocationConfig(_Section):
    rebalance_minutes: int = Field(
        5,
        ge=1,
        le=390,
        description="The allocator runs at the close of the bars labelled session open + k x rebalance_minutes.",
    )
    quiet_window_minutes: int = Field(
        390,
        ge=2,
        le=390 * 20,
        description="How many regular-session calendar minutes quiet_volume looks back over.",
    )
    min_history_bars: int = Field(
        30,
        ge=1,
        description="Eligibility: the quiet-volume window must hold at least this many minutes.",
    )
    min_quiet_volume: float = Field(
        200.0,
        ge=0,
        description="Eligibility: quiet_volume must be strictly greater than this, shares per minute.",
    )
    scorer: Literal["seed", "return", "return_x_log_dollar_volume"] = Field(
        "seed",
        description=(
            "How symbols are scored: seed = shadow_return_today x quiet_volume; return = "
            "shadow_return_today; return_x_log_dollar_volume = shadow_return_today x ln(1 + quiet_volume x price)."
        ),
    )
    score_shift_epsilon: float = Field(
        1e-5,
        gt=0,
        description="If the lowest score is <= 0, abs(lowest) + this is added to every score.",
    )
    top_k: int = Field(
        0,
        ge=0,
        description="Keep only the k best-scored eligible symbols; 0 keeps all.",
    )
    rebalance_tolerance: float = Field(
        0.10,
        ge=0,
        description="Resize a position only when |target - effective| x price >= this fraction of its budget.",
    )


class CommissionFixed(_Section):
    per_share: float = Field(0.005, ge=0, description="IB fixed: USD per share.")
    minimum: float = Field(1.00, ge=0, description="IB fixed: minimum per order, USD.")
    maximum_fraction: float = Field(
        0.01, ge=0, description="IB fixed: maximum per order as a fraction of the value traded."
    )


class CommissionTiered(_Section):
    tier_thresholds: list[float] = Field(
        default_factory=lambda: [300_000.0, 3_000_000.0, 20_000_000.0, 100_000_000.0],
        description="IB tiered: month-to-date share volumes at which the per-share rate steps down.",
    )
    tier_rates: list[float] = Field(
        default_factory=lambda: [0.0035, 0.0020, 0.0015, 0.0010, 0.0005],
        description="IB tiered: USD per share for each tier (one more rate than thresholds).",
    )
    minimum: float = Field(0.35, ge=0, description="IB tiered: minimum per order, USD.")
    maximum_fraction: float = Field(
        0.01, ge=0, description="IB tiered: maximum per order as a fraction of the value traded."
    )
    clearing_per_share: float = Field(
        0.00020, ge=0, description="IB tiered: clearing fee, USD per share."
    )
    sec_fee_rate: float = Field(
        0.0000278, ge=0, description="SEC fee on sales, fraction of the value sold."
    )
    finra_taf_per_share: float = Field(
        0.000166, ge=0, description="FINRA trading activity fee on sales, USD per share sold."
    )
    finra_taf_max: float = Field(
        8.30, ge=0, description="FINRA trading activity fee cap per order, USD."
    )

    @model_validator(mode="after")
    def _tiers_line_up(self) -> CommissionTiered:
        if len(self.tier_rates) != len(self.tier_thresholds) + 1:
            raise ValueError("tier_rates must have exactly one more entry than tier_thresholds")
        if any(
            b <= a for a, b in zip(self.tier_thresholds, self.tier_thresholds[1:], strict=False)
        ):
            raise ValueError("tier_thresholds must be strictly increasing")
        if any(r < 0 for r in self.tier_rates):
            raise ValueError("tier_rates must be >= 0")
        return self


class ExecutionConfig(_Section):
    slippage_per_share: float = Field(
        0.01, ge=0, description="Fill price moves against us by this many USD per share..."
    )
    slippage_bps: float = Field(
        1.0, ge=0, description="...plus this many basis points of the fill bar's open."
    )
    max_volume_participation: float = Field(
        0.10,
        gt=0,
        le=1,
        description="An order fills at most floor(this x bar volume) shares in one bar (flatten and shadow exempt).",
    )
    commission: Literal["fixed", "tiered"] = Field(
        "fixed", description="IB commission schedule: fixed or tiered."
    )
    max_commission_bps: float = Field(
        5.0,
        ge=0,
        description="Cost filter: an opening buy whose estimated commission exceeds this many bps of its notional is skipped.",
    )
    fixed: CommissionFixed = Field(default_factory=CommissionFixed)
    tiered: CommissionTiered = Field(default_factory=CommissionTiered)


class SessionConfig(_Section):
    calendar: str = Field("XNYS", description="Exchange calendar (exchange_calendars name).")
    no_new_entries_minutes: int = Field(
        15,
        ge=0,
        le=390,
        description="No buy of any kind is decided at or after session close minus this many minutes.",
    )
    flatten_minutes: int = Field(
        5,
        ge=1,
        le=390,
        description="The flatten is decided at session close minus this many minutes.",
    )


class DataConfig(_Section):
    store: str = Field(
        "data/store",
        description="Folder of the Parquet bar store (relative paths are relative to the working directory).",
    )
    alphavantage_base_url: str = Field(
        "https://www.alphavantage.co/query",
        description="Alpha Vantage API endpoint; the environment variable ALPHAVANTAGE_BASE_URL wins over it (mirrors, tests).",
    )
    alphavantage_api_key: SecretStr = Field(
        "",  # validated into SecretStr("")
        validate_default=True,
        description="Alpha Vantage API key. Prefer the environment variable ALPHAVANTAGE_API_KEY, which wins over it; never printed or logged.",
    )
    alphavantage_requests_per_minute: float = Field(
        5.0,
        gt=0,
        description="Most requests `data fetch --source alphavantage` sends per minute (retries included); premium plans allow 75 or more.",
    )
    alphavantage_retries: int = Field(
        4,
        ge=0,
        le=20,
        description="Retries of one Alpha Vantage request after a network error, HTTP 5xx or a truncated answer (waits 2, 4, 8 ... s).",
    )
    ib_history_host: str = Field(
        "127.0.0.1",
        description="Host of TWS / IB Gateway (or the simulated gateway) for `data fetch --source ib`.",
    )
    ib_history_port: int = Field(
        7497,
        ge=1,
        le=65535,
        description="API port of TWS / IB Gateway for history (TWS paper 7497, live 7496; Gateway 4002 / 4001).",
    )
    ib_history_client_id: int = Field(
        91,
        ge=0,
        description="API client id of the history fetch; pick one no other program uses at the same time.",
    )
    ib_history_requests_per_minute: float = Field(
        30.0,
        gt=0,
        description="Most historical-data requests `data fetch --source ib` sends per minute (one at a time; IB answers faster ones with 162 pacing violations).",
    )


class AppConfig(_Section):
    """The whole configuration file."""

    symbols: list[str] = Field(
        default_factory=list,
        description='The universe: a TOML array of US stock tickers, e.g. ["AAPL", "MSFT"].',
    )
    portfolio: PortfolioConfig = Field(default_factory=PortfolioConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    allocation: AllocationConfig = Field(default_factory=AllocationConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    session: SessionConfig = Field(default_factory=SessionConfig)
    data: DataConfig = Field(default_factory=DataConfig)

    @field_validator("symbols")
    @classmethod
    def _tickers(cls, value: list[str]) -> list[str]:
        cleaned: list[str] = []
        for raw in value:
            sym = raw.strip().upper()
            if not _TICKER.match(sym):
                raise ValueError(
                    f"{raw!r} is not a ticker: use 1-10 characters, letters, digits, '.' or '-'"
                )
            if sym in cleaned:
                raise ValueError(f"{sym} is listed twice")
            cleaned.append(sym)
        return cleaned
