"""The momentum band and the shadow books (STRATEGY.md sections 2-3).

Owns: the band and its session lifecycle (`band`), the shadow books (`shadow`)."""
