"""Bars: the Parquet store, imports and downloads, quality checks, the exchange calendar.

Owns: the bar store (`store`), reading many symbols forward chunk by chunk (`forward`),
CSV and Alpha Vantage imports (`importers`, `alphavantage`), IB history (`ib_history`), the
calendar (`calendar`, its schedule cached for the day), the synthetic generator (`synthetic`)."""
