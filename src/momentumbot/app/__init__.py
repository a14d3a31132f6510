"""Composition: a backtest (`backtest`) and a paper or live trading run (`trade`) from a config.

Owns: wiring the engine, the broker, the journal and the run folder together; the `trade` and
`stop` commands (`cli_trade`). Each concern of trading lives in `momentumbot.trading`."""
