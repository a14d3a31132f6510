"""What each fetch source has delivered into a store: a small JSON manifest per source, and a lock."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from momentumbot.domain.errors import DataError, RetryLaterError

MANIFEST_VERSION = 1


class FetchManifest:
    """root/manifests/SOURCE.json: {"version": 1, "entries": {SYMBOL: {KEY: {...}}}}.

    An entry is written only after its bars are in the store, so a crash between the two
    costs one refetch (an idempotent merge), never a bar. Every `put` rewrites the file
    atomically; the files are small (one entry per symbol-month or symbol-session).
    """

    def __init__(self, store_root: str | Path, source: str) -> None:
        self.path = Path(store_root) / "manifests" / f"{source}.json"
        self._entries: dict[str, dict[str, dict[str, Any]]] = self._load()

    def _load(self) -> dict[str, dict[str, dict[str, Any]]]:
        if not self.path.is_file():
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(
                f"{self.path}: unreadable fetch manifest ({exc}); delete it to fetch everything "
                "again (stored bars are kept and merged, never duplicated)"
            ) from None
        entries = doc.get("entries") if isinstance(doc, dict) else None
        if not isinstance(entries, dict) or doc.get("version") != MANIFEST_VERSION:
            raise DataError(
                f"{self.path}: not a version {MANIFEST_VERSION} fetch manifest; delete it to "
                "fetch everything again (stored bars are kept and merged, never duplicated)"
            )
        return {str(s): dict(v) for s, v in entries.items() if isinstance(v, dict)}

    def get(self, symbol: str, key: str) -> dict[str, Any] | None:
        return self._entries.get(symbol, {}).get(key)

    def put(self, symbol: str, key: str, entry: dict[str, Any]) -> None:
        self._entries.setdefault(symbol, {})[key] = dict(entry)
        self._save()

    def entries(self, symbol: str) -> dict[str, dict[str, Any]]:
        return dict(self._entries.get(symbol, {}))

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "version": MANIFEST_VERSION,
            "entries": {s: dict(sorted(e.items())) for s, e in sorted(self._entries.items())},
        }
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.stem}.", suffix=".tmp", dir=self.path.parent
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=1)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def fetch_lock(store_root: str | Path) -> Iterator[None]:
    """Hold root/manifests/.fetch.lock: one fetch per store at a time (POSIX advisory lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, documented
        yield
        return
    lock_path = Path(store_root) / "manifests" / ".fetch.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RetryLaterError(
                f"another fetch is writing to the store {store_root}; wait for it to finish "
                "and run this one again"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
