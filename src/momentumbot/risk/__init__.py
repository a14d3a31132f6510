"""Risk limits in every mode: pre-trade cuts, the daily-loss halt, the kill switch.

Owns: the limits and their checks: compiled into the minute step (`checks`), in plain Python
with the config (`limits`); the stop file and signals (`kill_switch`)."""
