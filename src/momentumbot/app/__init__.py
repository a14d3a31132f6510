"""Composition: a backtest (`backtest`) and a paper or live trading run (`trade`) from a config.

Owns: wiring the engine, the broker, the journal and the run folder together; the `trade` and
`stop` commands (`cli_trade`); what a trading run reads and writes in its folder besides the
journal: the stored config a resume must match, the report (`trade_files`); whether a run's
kernels are compiled (`first_run`: a small first run goes uncompiled), compiling them ahead
(`compile_ahead`, `precompile`). Each concern of trading lives in `momentumbot.trading`."""
