"""Keeping secrets out of alerts and logs: the notify URLs (and every token-like piece of
them), the dashboard token, API keys. Whatever looks like one is replaced by `***`."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

MASK = "***"
MIN_PIECE = 6  # shorter pieces of a URL (ports, "api", "bot") are not secrets on their own
_SEPARATORS = re.compile(r"[/:@?&=#,;+]+")
_COMMON = frozenset(
    {"http", "https", "localhost", "webhooks", "webhook", "hooks", "services", "discord.com"}
)
# credentials inside any URL: scheme://user:password@host
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")


def secret_pieces(url: str) -> list[str]:
    """The URL itself and every piece of it that may be a token (user, password, host, path
    segments, query values): an alert may not quote any of them."""
    rest = url.split("://", 1)[-1]
    pieces = [url, rest]
    for piece in _SEPARATORS.split(rest):
        if len(piece) >= MIN_PIECE and piece.lower() not in _COMMON:
            pieces.append(piece)
    return pieces


class Scrubber:
    """Replaces every known secret (and any URL's user:password@) in a text with `***`."""

    def __init__(self, urls: Iterable[str] = (), secrets: Iterable[str] = ()) -> None:
        found: set[str] = {s for s in secrets if s and len(s) >= 4}
        for url in urls:
            found.update(p for p in secret_pieces(url) if p)
        self._secrets = sorted(found, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _USERINFO.sub(rf"\1{MASK}@", text)

    def __bool__(self) -> bool:
        return bool(self._secrets)


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs a record's message (for Apprise's own logger, whose
    debug lines quote the URLs it posts to)."""

    def __init__(self, scrub: Scrubber) -> None:
        super().__init__()
        self.scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return True
        clean = self.scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
