"""The simulated IB gateway: a TWS API server (v157..178) over bars replayed on a virtual clock (docs/gateway.md).

Owns: the wire protocol (`protocol`, and `place_order`: placeOrder read per server version), the composition root and public face (`server`), real and
market clocks (`clock`: the injected `Monotonic`, `ManualClock` for tests, `VirtualClock`), the
desks that serve requests (`desks`: clock, sessions, contracts, market data, history, accounts,
orders, fault control), bars (`market`), order matching and accounts (`broker`), account rules by type and base currency (`account_rules`: settlement, day trades, `BaseCurrency`), account values as IB reports them (`account_values`: base currency, cash ledgers), fault specs
(`faults`), the control port (`control`), the command line (`cli`) and the record (`record`)."""
