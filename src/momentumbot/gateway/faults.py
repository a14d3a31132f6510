"""Faults the gateway can inject, and the one-line specs that switch them on (CLI --fault, the
control port's `fault` command)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

from momentumbot.gateway.exec_time import EXEC_TIME_FORMATS, UTC_DASH

FAULT_HELP = """\
unknown=SYM[,SYM]        contract requests for these symbols get error 200
reject=N                 the next N orders are rejected (201)
reject-symbol=SYM[,SYM]  every order for these symbols is rejected (201)
order-warning=CODE[:SYM] every new order (of SYM) gets error CODE with its orderId (IB's text
                         for 10349, 399, 404, 10311) and keeps working and filling
reject-modify            a modify gets 201; the original order keeps working unchanged
value-limit=USD          a new order worth more than USD (limit, or the last close) gets 451
                         and is not placed (IB's precautionary Total Value Limit)
insufficient-funds       buys worth more than the free cash (at the last close) get 201
pacing=N/SECONDS         more than N historical requests in SECONDS real seconds get 162
no-market-data=SYM|*     reqMktData / reqRealTimeBars for these symbols get 354
client-id-in-use=ID      connecting with this client id gets 326 and a closed socket
hold-client-id=SECONDS   a client id stays "in use" this long after its socket closes
exec-delay=SECONDS       execDetails go out this many real seconds after the order status
exec-duplicate           every execDetails is sent twice (same execId)
commission-delay=SECONDS commission reports go out this long after their execDetails
exec-correction[=N]      every Nth execution (1: each) is followed by a correction: the same
                         execDetails with the execId's last part bumped (.01 -> .02), which
                         replaces it (reqExecutions then reports the corrected execId)
exec-time-format=zoned|utc-dash|naive-local
                         how execution and completed-order times are written (utc-dash,
                         the default: "yyyymmdd-hh:mm:ss" in UTC, as a live account at server
                         version 178; naive-local: "yyyymmdd  hh:mm:ss" in the TWS time zone;
                         zoned: "yyyymmdd hh:mm:ss Zone/Name")
outage=HH:MM+SECONDS     connectivity lost (1100) at this New York time each day, restored
                         (1102) SECONDS virtual seconds later; market data paused between
nightly-reset=HH:MM[+SECONDS]
                         every socket is dropped at this New York time each day and new
                         connections are refused for SECONDS of replay time (0)
restart=HH:MM[+SECONDS]  a gateway restart (sockets dropped, order ids reset) at this time,
                         refusing connections for SECONDS of replay time (0)
executions-window=day|all
                         what reqExecutions and reqCompletedOrders return: day (the default,
                         as IB): only what happened since the last nightly reset, restart or
                         New York midnight; all: the whole history
forming-bars=SECONDS     1-minute keepUpToDate streams get the forming minute's partial bar
                         every SECONDS market seconds (same date), then the closed bar; a
                         history request ending now ends with the forming bar (0: off;
                         `momentumbot gateway` runs with forming-bars=5 unless told otherwise)
hmds-down=SECONDS        the HMDS (historical data) farm is down for SECONDS market seconds
                         from now: 2105 at the start, 2106 at the end; history requests get
                         162 "HMDS query returned no data"; keepUpToDate streams get no bars
hmds-down-after-restore=SECONDS
                         hmds-down=SECONDS arms itself at every restore (1101/1102) and at
                         every nightly reset
farm-broken[=HH:MM[+SECONDS]]
                         2110 (TWS <-> server connectivity broken) without 1100, now or at
                         HH:MM each day: bars stop and order messages are held;
                         `restore` (or SECONDS later, if given) ends it with 1102
port-reset[=HH:MM]       1300 (socket port reset) to every client, then its socket is dropped,
                         now or at HH:MM each day; the port stays open
max-hist-requests=N      open historical requests of a client (every keepUpToDate stream
                         counts until cancelled) are capped at N: the next gets error 322, as
                         IB does at 50 (the default; 0: no cap)
max-market-data-lines=N  reqMktData / reqRealTimeBars lines of a client are capped at N: the
                         next gets error 101 (default 100, as IB's basic allowance; 0: no cap)
cancel-stream=SYM[@HH:MM]
                         at this New York time each day (or at once) every keepUpToDate stream
                         of SYM gets error 162 "API historical data query cancelled: <reqId>"
                         and goes silent; a new request for SYM works again
"""


DEFAULT_FORMING_BARS = "forming-bars=5"  # `momentumbot gateway` and the trade tests' gateway


DEFAULT_MAX_HIST_REQUESTS = 50  # IB: "Only 50 simultaneous API historical data requests"
DEFAULT_MAX_MARKET_DATA_LINES = 100  # IB's basic allowance of market data lines


class FaultSpecError(ValueError):
    """A fault spec that cannot be read."""


@dataclass
class Faults:
    """Fault switches; all off by default (execution times as a live account at 178 sends;
    executions and completed orders of the current day only, as IB) except IB's caps on open
    historical requests and market data lines, on as at IB."""

    unknown_symbols: set[str] = field(default_factory=set)
    reject_next: int = 0
    reject_symbols: set[str] = field(default_factory=set)
    insufficient_funds: bool = False
    order_warnings: list[tuple[int, str]] = field(default_factory=list)  # (code, symbol or "")
    reject_modify: bool = False
    value_limit: float = 0.0  # USD; 0 = off
    pacing: tuple[int, float] | None = None
    no_market_data: set[str] = field(default_factory=set)
    reserved_client_ids: set[int] = field(default_factory=set)
    hold_client_id_seconds: float = 0.0
    exec_delay: float = 0.0
    exec_duplicate: bool = False
    commission_delay: float = 0.0
    exec_time_format: str = UTC_DASH
    exec_correction_every: int = 0  # 0: no corrections
    outages: list[tuple[int, float]] = field(default_factory=list)  # (NY minute of day, seconds)
    # (NY minute of day, seconds of replay time the port refuses connections)
    nightly_resets: list[tuple[int, float]] = field(default_factory=list)
    restarts: list[tuple[int, float]] = field(default_factory=list)
    forming_bars: float = 0.0  # market seconds between forming-bar updates; 0: closed bars only
    hmds_down: float = 0.0  # market seconds the HMDS farm is down from when it is switched on
    hmds_down_after_restore: float = 0.0  # ... from every restore and nightly reset
    farm_broken_now: bool = False  # 2110 as soon as the fault is on (until `restore`)
    farm_broken: list[tuple[int, float]] = field(default_factory=list)  # (minute, secs or 0)
    port_reset_now: bool = False  # 1300 and dropped sockets as soon as the fault is on
    port_resets: list[int] = field(default_factory=list)  # NY minute of day
    executions_window: str = "day"  # "day" (as IB) or "all" (every execution since the start)
    # IB's caps (on by default, as at IB; 0: no cap)
    max_hist_requests: int = DEFAULT_MAX_HIST_REQUESTS
    max_market_data_lines: int = DEFAULT_MAX_MARKET_DATA_LINES
    # (symbol, NY minute of day; -1: at once) whose keepUpToDate streams get 162 and go silent
    cancel_streams: list[tuple[str, int]] = field(default_factory=list)

    def clear(self) -> None:
        """Every fault off (in place: the desks share this object)."""
        off = Faults()
        for f in fields(self):
            setattr(self, f.name, getattr(off, f.name))

    def no_data_for(self, symbol: str) -> bool:
        return "*" in self.no_market_data or symbol in self.no_market_data

    def apply(self, spec: str) -> None:
        """Switch on one fault from its spec (see FAULT_HELP)."""
        name, _, value = spec.strip().partition("=")
        name = name.strip().lower()
        value = value.strip()
        try:
            self._apply(name, value)
        except FaultSpecError:
            raise
        except (ValueError, IndexError):
            raise FaultSpecError(f"fault {spec!r}: bad value; expected\n{FAULT_HELP}") from None

    def _apply(self, name: str, value: str) -> None:
        setter = _SETTERS.get(name)
        if setter is None:
            raise FaultSpecError(f"unknown fault {name!r}; the faults are:\n{FAULT_HELP}")
        setter(self, value)


def _order_warning(f: Faults, value: str) -> None:
    code, _, sym = value.partition(":")
    f.order_warnings.append((int(code), sym.strip().upper()))


def _value_limit(f: Faults, value: str) -> None:
    f.value_limit = float(value)
    if not f.value_limit > 0:
        raise ValueError(value)


def _pacing(f: Faults, value: str) -> None:
    n, _, secs = value.partition("/")
    f.pacing = (int(n), float(secs))


def _exec_time_format(f: Faults, value: str) -> None:
    if value.lower() not in EXEC_TIME_FORMATS:
        raise ValueError(value)
    f.exec_time_format = value.lower()


def _at(value: str, default: str) -> tuple[int, float]:
    """HH:MM[+SECONDS] as (NY minute of day, seconds)."""
    at, _, secs = value.partition("+")
    return _minute_of_day(at), _seconds(secs or default)


# each fault's name and how its value switches it on (FAULT_HELP documents them)
_SETTERS: dict[str, Callable[[Faults, str], None]] = {
    "unknown": lambda f, v: f.unknown_symbols.update(_symbols(v)),
    "reject": lambda f, v: setattr(f, "reject_next", int(v or "1")),
    "reject-symbol": lambda f, v: f.reject_symbols.update(_symbols(v)),
    "order-warning": _order_warning,
    "reject-modify": lambda f, v: setattr(f, "reject_modify", _on(v)),
    "value-limit": _value_limit,
    "insufficient-funds": lambda f, v: setattr(f, "insufficient_funds", _on(v)),
    "pacing": _pacing,
    "no-market-data": lambda f, v: f.no_market_data.update({"*"} if v == "*" else _symbols(v)),
    "client-id-in-use": lambda f, v: f.reserved_client_ids.add(int(v)),
    "hold-client-id": lambda f, v: setattr(f, "hold_client_id_seconds", float(v)),
    "exec-delay": lambda f, v: setattr(f, "exec_delay", float(v)),
    "exec-duplicate": lambda f, v: setattr(f, "exec_duplicate", _on(v)),
    "commission-delay": lambda f, v: setattr(f, "commission_delay", float(v)),
    "exec-correction": lambda f, v: setattr(f, "exec_correction_every", _count(v or "1")),
    "exec-time-format": _exec_time_format,
    "outage": lambda f, v: f.outages.append(_at(v, "60")),
    "nightly-reset": lambda f, v: f.nightly_resets.append(_at(v, "0")),
    "restart": lambda f, v: f.restarts.append(_at(v, "0")),
    "forming-bars": lambda f, v: setattr(f, "forming_bars", _forming_seconds(v)),
    "hmds-down": lambda f, v: setattr(f, "hmds_down", _positive_seconds(v)),
    "hmds-down-after-restore": lambda f, v: setattr(f, "hmds_down_after_restore", _seconds(v)),
    "farm-broken": lambda f, v: (
        f.farm_broken.append(_at(v, "0")) if v else setattr(f, "farm_broken_now", True)
    ),
    "port-reset": lambda f, v: (
        f.port_resets.append(_minute_of_day(v)) if v else setattr(f, "port_reset_now", True)
    ),
    "executions-window": lambda f, v: setattr(f, "executions_window", _window(v)),
    "max-hist-requests": lambda f, v: setattr(f, "max_hist_requests", _count(v)),
    "max-market-data-lines": lambda f, v: setattr(f, "max_market_data_lines", _count(v)),
    "cancel-stream": lambda f, v: f.cancel_streams.append(_cancel_stream(v)),
}


def _cancel_stream(value: str) -> tuple[str, int]:
    """SYM[@HH:MM] as (symbol, NY minute of day or -1: at once)."""
    sym, _, at = value.partition("@")
    (symbol,) = _symbols(sym)
    return symbol, _minute_of_day(at) if at.strip() else -1


def _on(value: str) -> bool:
    return value.lower() not in ("0", "off", "false")


def warnings_for(faults: Faults, symbol: str) -> list[int]:
    """The order-warning codes a new order for `symbol` gets."""
    return [code for code, sym in faults.order_warnings if not sym or sym == symbol]


def _symbols(value: str) -> set[str]:
    out = {s.strip().upper() for s in value.split(",") if s.strip()}
    if not out:
        raise ValueError("no symbols")
    return out


def _count(text: str) -> int:
    v = int(text)
    if v < 0:
        raise ValueError(text)
    return v


def _seconds(text: str) -> float:
    v = float(text)
    if not v >= 0:
        raise ValueError(text)
    return v


def _positive_seconds(text: str) -> float:
    v = float(text)
    if not v > 0:
        raise ValueError(text)
    return v


def _forming_seconds(text: str) -> float:
    v = float(text or "5")
    if not (v == 0 or 0 < v < 60):
        raise ValueError(text)
    return v


def _window(text: str) -> str:
    v = (text or "day").lower()
    if v not in ("day", "all"):
        raise ValueError(text)
    return v


def _minute_of_day(text: str) -> int:
    hh, _, mm = text.partition(":")
    h, m = int(hh), int(mm)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(text)
    return h * 60 + m
