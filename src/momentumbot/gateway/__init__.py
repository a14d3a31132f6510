"""The simulated IB gateway: a TWS API server (v178) over bars replayed on a virtual clock (docs/gateway.md)."""
