"""The running bot's dashboard: its live snapshot (the bot's own books, connection, clock,
bars and log) and its controls, served on the bot's event loop when `[dashboard] enabled`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

from momentumbot.config.schema import AppConfig
from momentumbot.monitor.loglines import LogRing
from momentumbot.monitor.serve import Dashboard, exposure_warning, token_from_env
from momentumbot.monitor.snapshot import Live, RunSnapshot, from_engine, risk_of
from momentumbot.monitor.web import TOKEN_ENV, build_app
from momentumbot.risk.kill_switch import KillSwitch
from momentumbot.trading.connection import ConnectionState
from momentumbot.trading.controls import RunControls
from momentumbot.trading.minutes import MinuteAssembler
from momentumbot.trading.run import RunState, ny
from momentumbot.trading.session import TradingSession


class Trader(Protocol):
    """What the dashboard reads of the running trader."""

    cfg: AppConfig
    state: RunState
    conn: ConnectionState
    minutes: MinuteAssembler
    run_dir: Path
    kill: KillSwitch


log = logging.getLogger("momentumbot.trade")

META_KEYS = ("run_id", "kind", "account", "state", "progress_ns", "halted", "buys_halted",
             "stop_reason", "paused")  # fmt: skip


class LiveSource:
    """The snapshot of the running bot, made from its own objects on its own loop."""

    def __init__(self, trader: Trader, session: TradingSession, ring: LogRing) -> None:
        self.trader, self.session, self.ring = trader, session, ring
        self.risk = risk_of(trader.cfg)

    def snapshot(self) -> RunSnapshot:
        tr, s = self.trader, self.session
        j = s.journal
        meta = {k: j.get(k) or "" for k in META_KEYS}
        meta["progress_ns"] = str(tr.state.progress_ns)
        run = tr.state
        live = Live(
            connection=tr.conn.describe(),
            server_time=ny(run.server_ns) if run.server_ns else "",
            paused=run.paused,
            last_bar_ns=tuple(int(x) for x in tr.minutes.last_label),
            server_ns=run.server_ns,
            log=tuple(self.ring.lines),
            step_seconds=tuple(run.stats.step_seconds[-1:]),
            reconnects=run.stats.reconnects,
            rejected=run.stats.rejected,
        )
        return from_engine(
            s.engine, meta, j, run_dir=tr.run_dir, running=True, risk=self.risk, live=live
        )


async def open_dashboard(trader: Trader, session: TradingSession) -> Dashboard | None:
    """Start the dashboard when configured; None (with the reason logged) when it cannot."""
    cfg = trader.cfg.dashboard
    if not cfg.enabled:
        return None
    token = token_from_env()
    if not token:
        log.error(
            "dashboard not started: set %s to a long random secret in the bot's environment",
            TOKEN_ENV,
        )
        return None
    warning = exposure_warning(cfg.host)
    if warning:
        log.warning("%s", warning)
    ring = LogRing().attach()
    controls = RunControls(session.engine, session.journal, trader.state, trader.kill,
                           session.stepper)  # fmt: skip
    app = build_app(LiveSource(trader, session, ring), token, controls)
    dash = Dashboard(app, cfg.host, cfg.port)
    try:
        await dash.start()
    except OSError as exc:
        ring.detach()
        log.error("dashboard not started: %s:%d: %s", cfg.host, cfg.port, exc)
        return None
    dash.on_close.append(ring.detach)
    log.info("dashboard on %s", dash.url)
    return dash
