"""Parameter sweeps and walk-forward optimisation over the backtest engine, locally or on Dask.

Owns: the parameter space (`space`), the sweep's plan (`plan`), running it (`sweep`, `runner`,
`fast`), results (`results`), overfitting statistics (`overfit`), its report (`report`)."""
