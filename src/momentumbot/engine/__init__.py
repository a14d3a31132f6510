"""The compiled minute kernel and its two drivers: the backtest and live trading.

Owns: the minute step (`kernel`), running it over stored bars (`backtest`; its plan `plan`,
tables `results`, their times' text `time_text`, and chunk buffers, table growth and
allocation rows `pipeline`), stepping it one minute at a time from a broker's bars (`live`)."""
