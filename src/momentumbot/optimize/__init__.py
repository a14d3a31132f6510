"""Parameter sweeps and walk-forward optimisation over the backtest engine, locally or on Dask."""
