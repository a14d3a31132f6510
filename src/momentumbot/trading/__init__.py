"""Paper and live trading, by concern; `app.trade.Trader` composes these pieces.

Owns: the run folder's lock and log (`folder`), the paper/live and account guards
(`guards`), assembling each minute's bars from the streams (`minutes`), the console table
(`console`)."""
