"""Getting orders filled: costs and the fill model, and the IB broker adapter.

Owns: slippage, volume caps and IB commissions (`costs`), one fill in one bar (`matching`),
the broker port: what the trader calls and what a broker tells it (`broker_protocol`), the IB
adapter, the only modules that import ib_async and know IB's codes, ports and accounts
(`ib_broker`, with `ib_connect`, `ib_market`, `ib_reports`, and `ib_order_errors` /
`ib_order_state`: IB's order errors classified, and confirmed with IB when ambiguous)."""
