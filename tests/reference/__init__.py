"""Reference implementation of STRATEGY.md and parity tests against the engine."""
