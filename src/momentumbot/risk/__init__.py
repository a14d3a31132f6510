"""Risk limits of a trading run: pre-trade cuts, the daily-loss halt, the kill switch.

Owns: the limits and their checks (`limits`), the stop file and signals (`kill_switch`)."""
