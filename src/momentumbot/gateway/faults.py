"""Faults the gateway can inject, and the one-line specs that switch them on (CLI --fault, the
control port's `fault` command)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

FAULT_HELP = """\
unknown=SYM[,SYM]        contract requests for these symbols get error 200
reject=N                 the next N orders are rejected (201)
reject-symbol=SYM[,SYM]  every order for these symbols is rejected (201)
insufficient-funds       buys worth more than the free cash (at the last close) get 201
pacing=N/SECONDS         more than N historical requests in SECONDS real seconds get 162
no-market-data=SYM|*     reqMktData / reqRealTimeBars for these symbols get 354
client-id-in-use=ID      connecting with this client id gets 326 and a closed socket
hold-client-id=SECONDS   a client id stays "in use" this long after its socket closes
exec-delay=SECONDS       execDetails go out this many real seconds after the order status
exec-duplicate           every execDetails is sent twice (same execId)
commission-delay=SECONDS commission reports go out this long after their execDetails
outage=HH:MM+SECONDS     connectivity lost (1100) at this New York time each day, restored
                         (1102) SECONDS virtual seconds later; market data paused between
nightly-reset=HH:MM[+SECONDS]
                         every socket is dropped at this New York time each day and new
                         connections are refused for SECONDS of replay time (0)
restart=HH:MM[+SECONDS]  a gateway restart (sockets dropped, order ids reset) at this time,
                         refusing connections for SECONDS of replay time (0)
forming-bars=SECONDS     1-minute keepUpToDate streams get the forming minute's partial bar
                         every SECONDS market seconds (same date), then the closed bar; a
                         history request ending now ends with the forming bar (0: off;
                         `momentumbot gateway` runs with forming-bars=5 unless told otherwise)
"""


DEFAULT_FORMING_BARS = "forming-bars=5"  # `momentumbot gateway` and the trade tests' gateway


class FaultSpecError(ValueError):
    """A fault spec that cannot be read."""


@dataclass
class Faults:
    """Fault switches; all off by default."""

    unknown_symbols: set[str] = field(default_factory=set)
    reject_next: int = 0
    reject_symbols: set[str] = field(default_factory=set)
    insufficient_funds: bool = False
    pacing: tuple[int, float] | None = None
    no_market_data: set[str] = field(default_factory=set)
    reserved_client_ids: set[int] = field(default_factory=set)
    hold_client_id_seconds: float = 0.0
    exec_delay: float = 0.0
    exec_duplicate: bool = False
    commission_delay: float = 0.0
    outages: list[tuple[int, float]] = field(default_factory=list)  # (NY minute of day, seconds)
    # (NY minute of day, seconds of replay time the port refuses connections)
    nightly_resets: list[tuple[int, float]] = field(default_factory=list)
    restarts: list[tuple[int, float]] = field(default_factory=list)
    forming_bars: float = 0.0  # market seconds between forming-bar updates; 0: closed bars only

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
        if name == "unknown":
            self.unknown_symbols |= _symbols(value)
        elif name == "reject":
            self.reject_next = int(value or "1")
        elif name == "reject-symbol":
            self.reject_symbols |= _symbols(value)
        elif name == "insufficient-funds":
            self.insufficient_funds = value.lower() not in ("0", "off", "false")
        elif name == "pacing":
            n, _, secs = value.partition("/")
            self.pacing = (int(n), float(secs))
        elif name == "no-market-data":
            self.no_market_data |= {"*"} if value == "*" else _symbols(value)
        elif name == "client-id-in-use":
            self.reserved_client_ids.add(int(value))
        elif name == "hold-client-id":
            self.hold_client_id_seconds = float(value)
        elif name == "exec-delay":
            self.exec_delay = float(value)
        elif name == "exec-duplicate":
            self.exec_duplicate = value.lower() not in ("0", "off", "false")
        elif name == "commission-delay":
            self.commission_delay = float(value)
        elif name == "outage":
            at, _, secs = value.partition("+")
            self.outages.append((_minute_of_day(at), float(secs or "60")))
        elif name == "nightly-reset":
            at, _, secs = value.partition("+")
            self.nightly_resets.append((_minute_of_day(at), _seconds(secs or "0")))
        elif name == "restart":
            at, _, secs = value.partition("+")
            self.restarts.append((_minute_of_day(at), _seconds(secs or "0")))
        elif name == "forming-bars":
            self.forming_bars = _forming_seconds(value)
        else:
            raise FaultSpecError(f"unknown fault {name!r}; the faults are:\n{FAULT_HELP}")


def _symbols(value: str) -> set[str]:
    out = {s.strip().upper() for s in value.split(",") if s.strip()}
    if not out:
        raise ValueError("no symbols")
    return out


def _seconds(text: str) -> float:
    v = float(text)
    if not v >= 0:
        raise ValueError(text)
    return v


def _forming_seconds(text: str) -> float:
    v = float(text or "5")
    if not (v == 0 or 0 < v < 60):
        raise ValueError(text)
    return v


def _minute_of_day(text: str) -> int:
    hh, _, mm = text.partition(":")
    h, m = int(hh), int(mm)
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(text)
    return h * 60 + m
