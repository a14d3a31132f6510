"""The typed, validated, frozen configuration: every number of STRATEGY.md lives here."""

from __future__ import annotations

from typing import Literal, get_args
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from momentumbot.domain.symbols import is_ticker


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PortfolioConfig(_Section):
    initial_cash: float = Field(100_000.0, gt=0, description="Starting cash of the real book, USD.")
    cash_reserve: float = Field(
        500.0,
        ge=0,
        description="Cash the allocator never invests: investable = equity - cash_reserve, USD.",
    )
    settlement: Literal["T+0", "T+1"] = Field(
        "T+0",
        description="T+0: sale proceeds can be spent at once (a margin account). T+1: as a cash account, the day's buys never exceed the cash settled at the session's start and sale proceeds count from the next session (no free-riding); required with [broker] account_type = \"cash\", so a backtest of the config trades the same way.",
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


class BrokerConfig(_Section):
    @field_validator("tws_timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (KeyError, ValueError):
            raise ValueError(
                f"unknown time zone {v!r} (a tz database name such as America/New_York)"
            ) from None
        return v

    host: str = Field(
        "127.0.0.1",
        description="Host of TWS / IB Gateway (or the simulated gateway) that `momentumbot trade` connects to.",
    )
    port: int = Field(
        7497,
        ge=1,
        le=65535,
        description="API port for trading: TWS paper 7497, Gateway paper 4002 (live: 7496 / 4001, only with --live).",
    )
    client_id: int = Field(
        1,
        ge=0,
        description="API client id of the trading bot; orders belong to it, so keep it the same across restarts.",
    )
    client_id_fallbacks: int = Field(
        3,
        ge=0,
        le=50,
        description="When the client id stays in use (error 326) and the run has no working orders, try this many next ids.",
    )
    account: str = Field(
        "",
        description="IB account id to trade; required with live = true, and must match the connected account.",
    )
    account_type: Literal["", "cash", "margin"] = Field(
        "",
        description='The IB account\'s type, checked against the account at start: "cash" (needs [portfolio] settlement = "T+1") or "margin" (refused under 25,000 USD plus pdt_equity_buffer, or with day trades counted, unless allow_pdt_limited). Required with --live; empty in a paper run: the account\'s own type is used.',
    )
    allow_pdt_limited: bool = Field(
        False,
        description="Trade a margin account under the pattern-day-trader limit (3 day trades in 5 business days): new buys halt when IB reports no day trade left.",
    )
    pdt_equity_buffer: float = Field(
        1_000.0,
        ge=0,
        description="A margin account needs net liquidation of 25,000 USD plus this to trade without the day-trade limit (a loss must not take it under 25,000 mid-session).",
    )
    tws_timezone: str = Field(
        "America/New_York",
        description="The time zone TWS / IB Gateway was logged in with (its login screen): IB writes some execution times without a zone, in this zone. A tz database name.",
    )
    live: bool = Field(
        False,
        description="Allow live trading; `momentumbot trade --live` also needs it. Paper accounts start with DU.",
    )
    order_type: Literal["market", "marketable_limit"] = Field(
        "market",
        description="market; or marketable_limit: a limit at the touch plus limit_offset_bps, turned into a market order after limit_timeout_seconds.",
    )
    limit_offset_bps: float = Field(
        5.0,
        ge=0,
        description="marketable_limit: the limit is the ask (buy) or bid (sell) moved this many bps through the touch.",
    )
    limit_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="marketable_limit: a limit order still working after this many seconds of server time becomes a market order.",
    )
    bar_grace_seconds: float = Field(
        2.0,
        ge=0,
        description="A minute is closed for a symbol once a later bar of it has arrived, or once server time is this far past the minute's close (IB revises the forming bar under the same date; a symbol with no trades has no bar). At least 2 s against a real TWS.",
    )
    stale_stream_seconds: float = Field(
        180.0,
        gt=0,
        description="During a session, no bar from any symbol for this many seconds of server time means the streams went silent: resubscribe.",
    )
    max_streams: int = Field(
        45,
        ge=1,
        le=45,
        description='At most this many keepUpToDate 1-minute bar streams (IB allows 50 open historical requests, streams included). A universe above it needs beyond_max_streams = "realtime_bars".',
    )
    beyond_max_streams: Literal["refuse", "realtime_bars"] = Field(
        "refuse",
        description="Symbols beyond max_streams: refuse (a config error at start), or realtime_bars: their minutes are made from 5-second real-time bars (one market data line each; see docs/trading.md).",
    )
    max_market_data_lines: int = Field(
        100,
        ge=1,
        description="Market data lines the account has (IB's basic allowance is 100): real-time bars beyond max_streams plus, with marketable_limit orders, one quote line per symbol must fit.",
    )
    stale_symbol_minutes: float = Field(
        3.0,
        gt=0,
        description="During a session, a symbol whose quiet volume says it trades every minute and that has had no closed bar for this many minutes is resubscribed alone (the others never wait for it).",
    )
    server_time_poll_seconds: float = Field(
        0.25,
        gt=0,
        description="Real seconds between server-time requests (the bot's clock is the server's, never the machine's).",
    )
    reconnect_initial_seconds: float = Field(
        0.5, gt=0, description="First wait before reconnecting after a dropped socket; doubles."
    )
    reconnect_max_seconds: float = Field(
        30.0, gt=0, description="Longest wait between reconnection attempts."
    )
    connect_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Timeout of the connection handshake and of each startup synchronisation request.",
    )
    request_timeout_seconds: float = Field(
        60.0, gt=0, description="Timeout of one historical-data or reconciliation request."
    )
    history_requests_per_minute: float = Field(
        600.0,
        gt=0,
        description="Most historical-data requests (warm-up and stream subscriptions) the bot starts per minute; 162 pacing violations back off and retry.",
    )
    allow_delayed_data: bool = Field(
        False,
        description="Trade symbols whose market data is delayed, frozen or missing (354, 10167, 10168); by default they get no new buys.",
    )
    sell_retry_seconds: float = Field(
        5.0,
        gt=0,
        description="A sell (exit, flatten) the broker rejected is sent again after this many seconds of server time; the wait doubles with each further reject.",
    )
    sell_retry_max_seconds: float = Field(
        120.0,
        gt=0,
        description="Longest wait between two tries of a rejected sell.",
    )
    sell_rejects_before_halt: int = Field(
        3,
        ge=1,
        description="After this many rejects of the sells of one symbol, new buys halt (until `trade --rearm`) while the bot keeps trying to sell.",
    )
    buy_breaker_rejects: int = Field(
        5,
        ge=1,
        description="After this many rejects with the same reason in one session, new buys halt (until `trade --rearm`).",
    )
    resync_give_up_minutes: float = Field(
        20.0,
        gt=0,
        description="After a reconnect or a restore, a resync that keeps failing (history requests answered 162 or not at all while IB's data farms are down) is retried with backoff, trading the symbols that did resubscribe; after this many real minutes still degraded the bot exits with code 8 so a supervisor restarts it.",
    )
    catchup_send_minutes: int = Field(
        3,
        ge=1,
        description="When more than this many closed minutes wait to be stepped (after an outage, a reset, a restart), all but the latest are stepped with new buys vetoed (sells still go); only the latest minute's buys are sent.",
    )
    keep_orders_on_fatal: bool = Field(
        False,
        description="On a fatal exit (reconciliation mismatch, a failed task, a crash) leave the run's working orders at IB; by default they are cancelled and what remains is listed.",
    )


class RiskConfig(_Section):
    max_position_value: float = Field(
        0.0,
        ge=0,
        description="Every mode (backtest, sweeps, paper, live): most USD (at the decision close) one symbol's position may reach; buys are cut to fit. 0 = no limit (live needs one).",
    )
    max_gross_exposure: float = Field(
        0.0,
        ge=0,
        description="Every mode: most USD (at the decision close) all positions plus working buys may reach together; buys are cut to fit. 0 = no limit (live needs one).",
    )
    max_orders_per_minute: int = Field(
        0,
        ge=0,
        description="Every mode: most new buy orders decided in one minute; further buys that minute are skipped. 0 = no limit.",
    )
    max_daily_loss: float = Field(
        0.0,
        ge=0,
        description="Every mode: when equity at a bar close is this many USD below the session's first, flatten and decide nothing more that session; paper and live then stay halted until `trade --rearm`. 0 = off (live needs it).",
    )
    flatten_on_stop: bool = Field(
        True,
        description="On a stop (stop file, SIGINT/SIGTERM, `momentumbot stop`): cancel everything and also sell every position.",
    )
    stop_wait_seconds: float = Field(
        120.0,
        gt=0,
        description="How long (real seconds) a stop waits for its flatten to fill before writing the report.",
    )


class DashboardConfig(_Section):
    enabled: bool = Field(
        False,
        description="Serve the live dashboard and its JSON API from the trading process (needs the token in the environment variable MOMENTUMBOT_DASHBOARD_TOKEN; without it the dashboard does not start and the log says why).",
    )
    host: str = Field(
        "127.0.0.1",
        description="Address the dashboard listens on; anything but loopback is warned about (put it behind a TLS proxy).",
    )
    port: int = Field(
        8050,
        ge=0,
        le=65535,
        description="The dashboard's TCP port (0: any free port, said in run.log).",
    )


NotifyEventName = Literal[
    "run_started",
    "run_stopped",
    "connectivity_lost",
    "connectivity_restored",
    "resync_degraded",
    "resync_given_up",
    "halted",
    "sell_rejected",
    "reconcile_mismatch",
    "session_summary",
]
NOTIFY_URLS_ENV = "MOMENTUMBOT_NOTIFY_URLS"


class NotifyConfig(_Section):
    urls: list[SecretStr] = Field(
        default_factory=list,
        description="Apprise URLs of the alert targets (Telegram, Discord, ntfy, e-mail, webhooks...). They hold tokens: set them in the environment variable MOMENTUMBOT_NOTIFY_URLS (whitespace or comma separated), which wins over this key; URLs written here are used with a warning, never written to a run folder, a log or an alert.",
    )
    events: list[NotifyEventName] = Field(
        default_factory=lambda: list(get_args(NotifyEventName)),
        description="Which events are sent (docs/notify.md): by default all of them.",
    )
    lost_minutes: float = Field(
        5.0,
        ge=0,
        description="Connectivity lost (1100, a dropped socket) is sent once it has lasted this many minutes, and then its restore.",
    )
    dedupe_minutes: float = Field(
        30.0,
        ge=0,
        description="An alert with the same key (kind and subject) as one sent within this many minutes is not sent again.",
    )
    max_per_minute: int = Field(
        6,
        ge=1,
        description="Most alerts sent in any 60 s; further ones are dropped and counted in the next one sent (never the run-stopped alert).",
    )
    send_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="Connect and read timeout of one alert to one target; alerts go out from a worker thread, never from the trading loop.",
    )
    queue_size: int = Field(
        100,
        ge=1,
        description="Alerts waiting to be sent; when full the oldest is dropped and counted.",
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
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)

    @field_validator("symbols")
    @classmethod
    def _tickers(cls, value: list[str]) -> list[str]:
        cleaned: list[str] = []
        for raw in value:
            sym = raw.strip().upper()
            if not is_ticker(sym):
                raise ValueError(
                    f"{raw!r} is not a ticker: use 1-10 characters, letters, digits, '.' or '-'"
                )
            if sym in cleaned:
                raise ValueError(f"{sym} is listed twice")
            cleaned.append(sym)
        return cleaned
