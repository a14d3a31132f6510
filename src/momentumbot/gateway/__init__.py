"""The simulated IB gateway: a TWS API server (v178) over bars replayed on a virtual clock (docs/gateway.md).

Owns: the wire protocol (`protocol`), the server and its clock (`server`), market data
(`market`), orders and accounts (`broker`), faults (`faults`), the control port (`control`)."""
