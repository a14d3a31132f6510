"""Paper and live trading, by concern; `app.trade.Trader` composes these pieces.

Owns: the run folder's lock and log (`folder`), the paper/live and account guards
(`guards`), assembling each minute's bars from the streams (`minutes`), the risk gate on new
orders (`risk_gate`), orders out and their journal states (`routing`), fills in and their
booking (`booking`), the console table (`console`)."""
