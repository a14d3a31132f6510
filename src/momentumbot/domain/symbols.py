"""Tickers: the one rule for what a symbol is, and the one parser of a comma-separated list.

Owns: the ticker rule (`TICKER`) shared by the config, the bar store and the CLI."""

from __future__ import annotations

import re

# an upper-case ticker of 1-10 characters: A-Z first, then A-Z, 0-9, '.' or '-' (BRK.B, BF-B)
TICKER = re.compile(r"[A-Z][A-Z0-9.\-]{0,9}")


def is_ticker(symbol: object) -> bool:
    return isinstance(symbol, str) and TICKER.fullmatch(symbol) is not None


def split_symbols(text: str) -> list[str]:
    """'aapl, msft,,' -> ['AAPL', 'MSFT']: stripped, upper-cased, empty items dropped."""
    return [s.strip().upper() for s in text.split(",") if s.strip()]


def parse_symbols_option(text: str | None, option: str = "--symbols") -> list[str] | None:
    """A command's `--symbols A,B` (None when not given); an empty list is a ConfigError."""
    if text is None:
        return None
    out = split_symbols(text)
    if not out:
        from momentumbot.domain.errors import ConfigError

        raise ConfigError(f"{option}: the symbol list is empty; give tickers like AAPL,MSFT")
    return out
