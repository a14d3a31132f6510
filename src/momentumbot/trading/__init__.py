"""Paper and live trading, by concern; `app.trade.Trader` composes these pieces.

Owns: the running pieces of a trading session, made together once connected (`session`);
the run's shared state and counters (`run`); the broker's listener for a run (`relay`);
supervised tasks and callbacks (`supervisor`); connection supervision: outages,
reconnects, resyncs, silent streams and clock (`connection`); warm-up and bar streams
(`warmup`); each minute's bars (`minutes`); stepping the engine, the daily-loss halt and the
stop (`stepping`); the risk gate on new orders (`risk_gate`); orders out and their state
table (`routing`); order events in (`order_events`); refused sells re-issued and the reject
breaker (`sell_retry`); a margin account under the day-trade limit (`day_trades`); fills in and
their booking (`booking`); reconciliation with the broker (`reconciling`); the first start's initial-cash check in USD (`initial_cash`); cancelling the run's
orders on a fatal exit (`fatal_exit`); the run folder's lock and log (`folder`); the paper/live
and account (type, pattern-day-trader) guards (`guards`); the console table (`console`); the
one-line events on the terminal (`terminal`)."""
