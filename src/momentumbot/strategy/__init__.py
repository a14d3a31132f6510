"""The momentum band (STRATEGY.md section 2).

Owns: one bar's band update (`band`)."""
