"""The trading journal: one SQLite file (WAL) in the run folder that is written before the
broker hears of anything.

Two kinds of records:
- `inputs`: every call that changed the engine (warm-up, each minute's bars and the risk
  decisions on its orders, fills, commission corrections, orders the broker ended, halts), in
  the order they happened. Replaying them (journal.replay) rebuilds the engine exactly, so a
  bot killed at any moment restarts where it stood.
- the human and reconciliation view: `orders` (every intent, with our client order id sent as
  IB orderRef, IB's orderId/permId once known, and its state at the broker), `order_events`
  (every status change), `fills` (every execution and its commission, booked or not yet), and
  `marks` (cash and positions at every bar close).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from momentumbot.domain.errors import DataError
from momentumbot.domain.orders import OrderState

JOURNAL_NAME = "journal.sqlite"
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inputs(
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    label_ns INTEGER,
    data BLOB,
    info TEXT
);
CREATE TABLE IF NOT EXISTS orders(
    oid INTEGER PRIMARY KEY,
    order_ref TEXT NOT NULL UNIQUE,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    reason TEXT NOT NULL,
    decided_ns INTEGER NOT NULL,
    state TEXT NOT NULL,
    filled INTEGER NOT NULL DEFAULT 0,
    order_type TEXT,
    lmt_price REAL,
    ib_order_id INTEGER,
    perm_id INTEGER,
    client_id INTEGER,
    sent_ns INTEGER,
    updated_ns INTEGER
);
CREATE TABLE IF NOT EXISTS order_events(
    seq INTEGER PRIMARY KEY,
    oid INTEGER NOT NULL,
    server_ns INTEGER,
    event TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS fills(
    exec_id TEXT PRIMARY KEY,
    oid INTEGER NOT NULL,
    order_ref TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    price REAL NOT NULL,
    label_ns INTEGER NOT NULL,
    perm_id INTEGER,
    commission_micro INTEGER,
    reported_commission_micro INTEGER,
    fill_index INTEGER,
    received_ns INTEGER
);
CREATE TABLE IF NOT EXISTS errors(
    seq INTEGER PRIMARY KEY,
    server_ns INTEGER,
    wall_utc TEXT NOT NULL,
    task TEXT NOT NULL,
    policy TEXT NOT NULL,
    message TEXT NOT NULL,
    traceback TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS marks(
    label_ns INTEGER PRIMARY KEY,
    cash_micro INTEGER NOT NULL,
    positions_value REAL NOT NULL,
    positions TEXT NOT NULL
);
"""

# Broker-side states of an order in the journal: domain.orders.OrderState's values, stored as
# text (INTENT: written, not yet sent; SENT: placeOrder called; WORKING: acknowledged; SKIPPED:
# never sent; LOST: the broker never had it and the engine no longer wants it).
INTENT, SENT, WORKING = OrderState.INTENT.value, OrderState.SENT.value, OrderState.WORKING.value
CANCEL_SENT, FILLED = OrderState.CANCEL_SENT.value, OrderState.FILLED.value
CANCELLED, REJECTED = OrderState.CANCELLED.value, OrderState.REJECTED.value
SKIPPED, LOST = OrderState.SKIPPED.value, OrderState.LOST.value
DONE_STATES = (FILLED, CANCELLED, REJECTED, SKIPPED, LOST)


class JournalError(DataError):
    """The journal file is unusable (corrupt, from another program or another version)."""


@dataclass(frozen=True)
class JournalOrder:
    oid: int
    order_ref: str
    symbol: str
    side: str
    quantity: int
    reason: str
    decided_ns: int
    state: str
    filled: int
    ib_order_id: int | None
    perm_id: int | None


@dataclass(frozen=True)
class JournalFill:
    exec_id: str
    oid: int
    order_ref: str
    symbol: str
    side: str
    quantity: int
    price: float
    label_ns: int
    commission_micro: int | None
    reported_commission_micro: int | None
    fill_index: int | None


@dataclass(frozen=True)
class Input:
    seq: int
    kind: str
    label_ns: int | None
    data: bytes | None
    info: dict[str, Any]


def pack(*arrays: np.ndarray) -> bytes:
    """Arrays of float64 (or bool) concatenated as little-endian float64."""
    return b"".join(np.ascontiguousarray(a, dtype="<f8").tobytes() for a in arrays)


def unpack(data: bytes, parts: int) -> list[np.ndarray]:
    flat = np.frombuffer(data, dtype="<f8").astype(np.float64)
    return list(flat.reshape(parts, -1)) if parts > 1 else [flat]


class Journal:
    """The journal of one run folder. Not thread-safe; one process writes it (a lock file
    next to it keeps a second bot out)."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._db = conn
        self._depth = 0
        self._durable = False

    # ---- opening

    @classmethod
    def open(cls, path: Path, *, create: bool, read_only: bool = False) -> Journal:
        """Open (and with `create`, make) the journal at `path`; checks it is ours and whole.
        `read_only`: for a monitor beside the bot (or after it): nothing is written."""
        if read_only:
            return cls._open_read_only(path)
        exists = path.exists()
        if not exists and not create:
            raise JournalError(f"{path}: no journal here")
        if exists:
            with open(path, "rb") as fh:
                head = fh.read(16)
            if head and head != b"SQLite format 3\x00":
                raise JournalError(
                    f"{path}: not an SQLite file (corrupt journal?); move it away to start a "
                    "new run in another folder, or restore it from a backup"
                )
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if check is None or check[0] != "ok":
                raise JournalError(f"{path}: the journal is damaged ({check and check[0]})")
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(
                f"{path}: cannot read the journal ({exc}); it is corrupt: move it away and "
                "start a new run folder, or restore it from a backup"
            ) from None
        j = cls(path, conn)
        version = j.get("schema_version")
        if version is None:
            if exists and j.get("run_id") is None and j._count("inputs"):
                raise JournalError(f"{path}: a journal without a run id")
            j.set("schema_version", SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise JournalError(
                f"{path}: journal schema {version}, this momentumbot writes {SCHEMA_VERSION}"
            )
        return j

    @classmethod
    def _open_read_only(cls, path: Path) -> Journal:
        if not path.is_file():
            raise JournalError(f"{path}: no journal here")
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                   timeout=10.0)  # fmt: skip
            j = cls(path, conn)
            version = j.get("schema_version")
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{path}: cannot read the journal ({exc})") from None
        if version != SCHEMA_VERSION:
            conn.close()
            raise JournalError(
                f"{path}: journal schema {version}, this momentumbot reads {SCHEMA_VERSION}"
            )
        return j

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def _count(self, table: str) -> int:
        row = self._db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return int(row[0])

    # ---- transactions

    @contextlib.contextmanager
    def transaction(self, *, durable: bool = False) -> Iterator[None]:
        """Everything inside is written together. A `durable` block (order intents) is on
        disk when it ends; others survive a crash of the process at once and reach the disk
        with the next durable block (WAL with synchronous=NORMAL), which is what they need:
        executions and order states are recovered from IB by reconciliation anyway."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if durable != self._durable:
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._durable = durable
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._depth = 0
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        self._db.execute("COMMIT")

    # ---- meta

    def get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def set_many(self, values: Mapping[str, str]) -> None:
        with self.transaction():
            for k, v in values.items():
                self.set(k, v)

    @property
    def is_new(self) -> bool:
        return self.get("run_id") is None

    # ---- engine inputs

    def add_input(
        self,
        kind: str,
        label_ns: int | None = None,
        data: bytes | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> int:
        cur = self._db.execute(
            "INSERT INTO inputs(kind, label_ns, data, info) VALUES (?, ?, ?, ?)",
            (kind, label_ns, data, json.dumps(dict(info or {}), separators=(",", ":"))),
        )
        return int(cur.lastrowid or 0)

    def inputs(self) -> Iterator[Input]:
        cur = self._db.execute("SELECT seq, kind, label_ns, data, info FROM inputs ORDER BY seq")
        for seq, kind, label, data, info in cur:
            yield Input(int(seq), str(kind), label, data, json.loads(info) if info else {})

    def last_step_label(self) -> int | None:
        row = self._db.execute("SELECT MAX(label_ns) FROM inputs WHERE kind = 'step'").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # ---- orders

    def add_order(
        self,
        oid: int,
        order_ref: str,
        symbol: str,
        side: str,
        quantity: int,
        reason: str,
        decided_ns: int,
        state: str,
        *,
        order_type: str | None = None,
        lmt_price: float | None = None,
        server_ns: int | None = None,
        detail: str = "",
    ) -> None:
        self._db.execute(
            "INSERT INTO orders(oid, order_ref, symbol, side, quantity, reason, decided_ns, state,"
            " order_type, lmt_price, updated_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (oid, order_ref, symbol, side, quantity, reason, decided_ns, state, order_type,
             lmt_price, server_ns),
        )  # fmt: skip
        self.order_event(oid, state, detail, server_ns)

    def update_order(self, oid: int, server_ns: int | None = None, **fields: Any) -> None:
        allowed = {
            "state", "filled", "quantity", "order_type", "lmt_price", "ib_order_id", "perm_id",
            "client_id", "sent_ns",
        }  # fmt: skip
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown order fields {sorted(bad)}")
        cols = ", ".join(f"{k} = ?" for k in fields)
        sep = ", " if cols else ""
        self._db.execute(
            f"UPDATE orders SET {cols}{sep}updated_ns = ? WHERE oid = ?",
            (*fields.values(), server_ns, oid),
        )

    def order_event(
        self, oid: int, event: str, detail: str = "", server_ns: int | None = None
    ) -> None:
        self._db.execute(
            "INSERT INTO order_events(oid, server_ns, event, detail) VALUES (?, ?, ?, ?)",
            (oid, server_ns, event, detail),
        )

    # ---- failures of the bot's own tasks (app.supervisor)

    def add_error(
        self, task: str, policy: str, message: str, traceback: str, server_ns: int | None = None
    ) -> None:
        """Record a failed task; written at once, outside any open transaction's fate."""
        wall = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self._db.execute(
            "INSERT INTO errors(server_ns, wall_utc, task, policy, message, traceback)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (server_ns, wall, task, policy, message, traceback),
        )

    def errors(self) -> list[dict[str, Any]]:
        cur = self._db.execute(
            "SELECT seq, server_ns, wall_utc, task, policy, message, traceback FROM errors"
            " ORDER BY seq"
        )
        cols = ("seq", "server_ns", "wall_utc", "task", "policy", "message", "traceback")
        return [dict(zip(cols, row, strict=True)) for row in cur]

    def orders(self) -> dict[int, JournalOrder]:
        cur = self._db.execute(
            "SELECT oid, order_ref, symbol, side, quantity, reason, decided_ns, state, filled,"
            " ib_order_id, perm_id FROM orders ORDER BY oid"
        )
        return {int(r[0]): JournalOrder(*r) for r in cur}

    def open_orders(self) -> list[JournalOrder]:
        """Orders not in a done state, by oid (read without loading the whole table)."""
        marks = ", ".join("?" * len(DONE_STATES))
        cur = self._db.execute(
            "SELECT oid, order_ref, symbol, side, quantity, reason, decided_ns, state, filled,"
            f" ib_order_id, perm_id FROM orders WHERE state NOT IN ({marks}) ORDER BY oid",
            DONE_STATES,
        )
        return [JournalOrder(*r) for r in cur]

    def order_counts(self) -> dict[str, int]:
        """How many orders are in each state."""
        cur = self._db.execute("SELECT state, COUNT(*) FROM orders GROUP BY state ORDER BY state")
        return {str(state): int(n) for state, n in cur}

    def order(self, oid: int) -> JournalOrder | None:
        r = self._db.execute(
            "SELECT oid, order_ref, symbol, side, quantity, reason, decided_ns, state, filled,"
            " ib_order_id, perm_id FROM orders WHERE oid = ?",
            (oid,),
        ).fetchone()
        return None if r is None else JournalOrder(*r)

    def max_ib_order_id(self) -> int:
        row = self._db.execute("SELECT MAX(ib_order_id) FROM orders").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def order_events(self, oid: int | None = None) -> list[tuple[int, str, str]]:
        if oid is None:
            cur = self._db.execute("SELECT oid, event, detail FROM order_events ORDER BY seq")
        else:
            cur = self._db.execute(
                "SELECT oid, event, detail FROM order_events WHERE oid = ? ORDER BY seq", (oid,)
            )
        return [(int(a), str(b), str(c or "")) for a, b, c in cur]

    # ---- fills

    def add_fill(
        self,
        exec_id: str,
        oid: int,
        order_ref: str,
        symbol: str,
        side: str,
        quantity: int,
        price: float,
        label_ns: int,
        perm_id: int | None,
        reported_commission_micro: int | None,
        received_ns: int | None,
    ) -> bool:
        """Record an execution when it arrives; False if it was known (a duplicate)."""
        cur = self._db.execute(
            "INSERT OR IGNORE INTO fills(exec_id, oid, order_ref, symbol, side, quantity, price,"
            " label_ns, perm_id, reported_commission_micro, received_ns)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (exec_id, oid, order_ref, symbol, side, quantity, price, label_ns, perm_id,
             reported_commission_micro, received_ns),
        )  # fmt: skip
        return cur.rowcount == 1

    def book_fill(self, exec_id: str, fill_index: int, commission_micro: int) -> None:
        self._db.execute(
            "UPDATE fills SET fill_index = ?, commission_micro = ? WHERE exec_id = ?",
            (fill_index, commission_micro, exec_id),
        )

    def report_commission(self, exec_id: str, commission_micro: int) -> None:
        self._db.execute(
            "UPDATE fills SET reported_commission_micro = ? WHERE exec_id = ?",
            (commission_micro, exec_id),
        )

    def set_fill_commission(self, exec_id: str, commission_micro: int) -> None:
        self._db.execute(
            "UPDATE fills SET commission_micro = ? WHERE exec_id = ?", (commission_micro, exec_id)
        )

    def fills(self) -> dict[str, JournalFill]:
        cur = self._db.execute(
            "SELECT exec_id, oid, order_ref, symbol, side, quantity, price, label_ns,"
            " commission_micro, reported_commission_micro, fill_index FROM fills"
            " ORDER BY rowid"
        )
        return {str(r[0]): JournalFill(*r) for r in cur}

    def recent_fills(self, n: int) -> list[JournalFill]:
        """The last `n` fills by (bar label, exec id), oldest first."""
        cur = self._db.execute(
            "SELECT exec_id, oid, order_ref, symbol, side, quantity, price, label_ns,"
            " commission_micro, reported_commission_micro, fill_index FROM fills"
            " ORDER BY label_ns DESC, exec_id DESC LIMIT ?",
            (n,),
        )
        return [JournalFill(*r) for r in reversed(cur.fetchall())]

    # ---- marks

    def add_mark(
        self, label_ns: int, cash_micro: int, positions_value: float, positions: Mapping[str, int]
    ) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO marks(label_ns, cash_micro, positions_value, positions)"
            " VALUES (?, ?, ?, ?)",
            (label_ns, cash_micro, positions_value, json.dumps(dict(positions), sort_keys=True)),
        )

    def last_mark(self) -> tuple[int, int, dict[str, int]] | None:
        r = self._db.execute(
            "SELECT label_ns, cash_micro, positions FROM marks ORDER BY label_ns DESC LIMIT 1"
        ).fetchone()
        if r is None:
            return None
        return int(r[0]), int(r[1]), {k: int(v) for k, v in json.loads(r[2]).items()}


def read_progress(path: Path) -> dict[str, str]:
    """The meta table of a journal, read-only (for `momentumbot stop`, tests and monitors)."""
    uri = f"file:{path}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    try:
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
