"""`/metrics` in Prometheus's text format, made at each scrape from a run's snapshot."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from momentumbot.monitor.snapshot import RunSnapshot


class _SnapshotCollector:
    def __init__(self, snap: RunSnapshot) -> None:
        self.snap = snap

    def collect(self) -> Iterator[Metric]:
        s = self.snap
        yield GaugeMetricFamily("momentumbot_equity_usd", "Equity of the run", value=s.equity)
        yield GaugeMetricFamily("momentumbot_cash_usd", "Cash of the run", value=s.cash)
        yield GaugeMetricFamily(
            "momentumbot_pnl_today_usd", "Equity less the session's first", value=s.today_pnl or 0.0
        )
        yield GaugeMetricFamily(
            "momentumbot_positions_value_usd",
            "Value of the positions at their last prices",
            value=sum(p.value for p in s.positions),
        )
        yield GaugeMetricFamily(
            "momentumbot_positions", "Symbols with a position", value=len(s.positions)
        )
        orders = CounterMetricFamily(
            "momentumbot_orders", "Orders of the run by their state", labels=["state"]
        )
        for state, n in sorted((s.orders_by_state or {}).items()):
            orders.add_metric([state], n)
        yield orders
        yield CounterMetricFamily("momentumbot_fills", "Fills booked", value=s.fills)
        yield CounterMetricFamily("momentumbot_rejects", "Orders IB rejected", value=s.rejected)
        yield CounterMetricFamily(
            "momentumbot_reconnects", "Reconnects to TWS / IB Gateway", value=s.reconnects
        )
        lag = GaugeMetricFamily(
            "momentumbot_bar_lag_seconds",
            "Server time past the close of each symbol's latest bar",
            labels=["symbol"],
        )
        for row in s.symbols:
            if row.stale_seconds is not None:
                lag.add_metric([row.symbol], row.stale_seconds)
        yield lag
        if s.last_step_seconds is not None:
            yield GaugeMetricFamily(
                "momentumbot_minute_step_seconds",
                "Wall time of the latest minute step",
                value=s.last_step_seconds,
            )
        yield GaugeMetricFamily(
            "momentumbot_halted", "1 when new orders or buys are halted",
            value=1.0 if (s.halted or s.buys_halted) else 0.0,
        )  # fmt: skip


def metrics_text(snap: RunSnapshot) -> tuple[bytes, str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snap))
    return generate_latest(registry), CONTENT_TYPE_LATEST
