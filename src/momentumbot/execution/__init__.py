"""Getting orders filled: costs and the fill model, and the IB broker adapter.

Owns: slippage, volume caps and IB commissions (`costs`), one fill in one bar (`matching`),
the broker interface (`broker_protocol`), the only module that imports ib_async (`ib_broker`)."""
