"""The TWS API wire format at server versions 157..178: framing, the handshake (`negotiate`), request
fields and the field lists of every message the gateway sends. The five messages whose layout
changes inside 157..178 (error, contractData, openOrder, completedOrder, execDetails) take the
session's server version `sv`; the reference is docs/dev/tws-versions.md, checked against the
decoders of ib_async 2.1.0, ib_insync 0.9.86 and IB's ibapi 10.x."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass

SERVER_VERSION = 178  # the highest version spoken
MIN_SERVER_VERSION = 157  # the lowest (ib_insync and ib_async offer 157..176 / 157..178)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
UNSET_INTEGER = 2**31 - 1
UNSET_DOUBLE = 1.7976931348623157e308
HANDSHAKE_PREFIX = b"API\0"
_VERSION_RANGE = re.compile(r"^v(\d+)\.\.(\d+)(?: .*)?$")
_LEN = struct.Struct(">I")

Field = str | int | float | bool | None


class ProtocolError(Exception):
    """The peer broke the framing or the handshake: the connection must be closed."""


class RequestError(Exception):
    """One request could not be read (too few fields, a field of the wrong type)."""


def fmt(value: Field) -> str:
    """One field as text, with ib_async's conventions (bools 1/0, unset numbers empty)."""
    t = type(value)
    if t is str:
        return value  # type: ignore[return-value]
    if t is float:
        if value == UNSET_DOUBLE or value != value:
            return ""
        return "Infinite" if value == math.inf else repr(value)
    if t is int:
        return "" if value == UNSET_INTEGER else str(value)
    return _fmt_other(value)


def _fmt_other(value: Field) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return "" if value == UNSET_INTEGER else str(value)
    if isinstance(value, float):
        if value == UNSET_DOUBLE or math.isnan(value):
            return ""
        if value == math.inf:
            return "Infinite"
        return repr(value)
    return value


def frame(fields: Sequence[Field]) -> bytes:
    """A length-prefixed message of NUL-terminated fields."""
    payload = ("\0".join([fmt(f) for f in fields]) + "\0").encode()
    return _LEN.pack(len(payload)) + payload


def handshake_bytes(min_version: int = 157, max_version: int = SERVER_VERSION) -> bytes:
    """What a client sends first (used by tests and the benchmark's raw clients)."""
    body = f"v{min_version}..{max_version}".encode()
    return HANDSHAKE_PREFIX + _LEN.pack(len(body)) + body


def negotiate(version_text: str) -> int:
    """The server version for a client's "vMIN..MAX[ options]" offer: the highest both sides
    speak, min(MAX, 178), as a real TWS answers; an offer that does not overlap 157..178 is
    refused (the connection is closed)."""
    m = _VERSION_RANGE.match(version_text)
    if m is None:
        raise ProtocolError(f"bad version offer {version_text!r}")
    lo, hi = int(m.group(1)), int(m.group(2))
    sv = min(hi, SERVER_VERSION)
    if sv < max(lo, MIN_SERVER_VERSION):
        raise ProtocolError(
            f"client versions {lo}..{hi} do not overlap {MIN_SERVER_VERSION}..{SERVER_VERSION}"
        )
    return sv


class FrameReader:
    """Splits a client's byte stream into the handshake offer and then lists of fields."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.handshake_done = False

    def feed(self, data: bytes) -> list[list[str]]:
        """Messages completed by `data`; the first is [version offer] after the API prefix."""
        self._buf += data
        out: list[list[str]] = []
        if not self.handshake_done:
            n = min(len(self._buf), len(HANDSHAKE_PREFIX))
            if bytes(self._buf[:n]) != HANDSHAKE_PREFIX[:n]:
                raise ProtocolError("connection did not start with API\\0")
            body = self._take(len(HANDSHAKE_PREFIX))
            if body is None:
                return out
            self.handshake_done = True
            out.append([_decode(body)])
        while (body := self._take(0)) is not None:
            fields = _decode(body).split("\0")
            if fields and fields[-1] == "":
                fields.pop()
            if not fields or not fields[0]:
                raise ProtocolError("message without an id")
            out.append(fields)
        return out

    def _take(self, offset: int) -> bytes | None:
        """The next length-prefixed body after `offset` bytes, removed with them from the buffer."""
        if len(self._buf) < offset + 4:
            return None
        (n,) = _LEN.unpack_from(self._buf, offset)
        if n > MAX_MESSAGE_BYTES:
            raise ProtocolError(f"message of {n} bytes is too long")
        end = offset + 4 + n
        if len(self._buf) < end:
            return None
        body = bytes(self._buf[offset + 4 : end])
        del self._buf[:end]
        return body

    @property
    def pending(self) -> int:
        return len(self._buf)


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("message is not UTF-8") from None


class Reader:
    """Typed reads over one request's fields (index 0 is the message id)."""

    def __init__(self, fields: list[str]) -> None:
        self.fields = fields
        self.i = 1

    def text(self) -> str:
        if self.i >= len(self.fields):
            raise RequestError(f"message {self.fields[0]} ends after {len(self.fields)} fields")
        v = self.fields[self.i]
        self.i += 1
        return v

    def integer(self, default: int = 0) -> int:
        v = self.text()
        if v == "":
            return default
        try:
            return int(v)
        except ValueError:
            raise RequestError(
                f"field {self.i - 1} of message {self.fields[0]}: {v!r} is not an integer"
            ) from None

    def number(self, default: float | None = None) -> float | None:
        v = self.text()
        if v == "":
            return default
        if v == "Infinite":
            return math.inf
        try:
            return float(v)
        except ValueError:
            raise RequestError(
                f"field {self.i - 1} of message {self.fields[0]}: {v!r} is not a number"
            ) from None

    def flag(self) -> bool:
        return self.integer() != 0

    def skip(self, n: int) -> None:
        for _ in range(n):
            self.text()

    def contract(self) -> ContractSpec:
        """The 12 contract fields every request carries."""
        return ContractSpec(
            con_id=self.integer(),
            symbol=self.text(),
            sec_type=self.text(),
            last_trade=self.text(),
            strike=self.text(),
            right=self.text(),
            multiplier=self.text(),
            exchange=self.text(),
            primary_exchange=self.text(),
            currency=self.text(),
            local_symbol=self.text(),
            trading_class=self.text(),
        )


@dataclass(frozen=True)
class ContractSpec:
    """A contract as a client describes it in a request."""

    con_id: int
    symbol: str
    sec_type: str
    last_trade: str = ""
    strike: str = ""
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""


@dataclass(frozen=True)
class StockInfo:
    """What the gateway knows of one US stock."""

    symbol: str
    con_id: int
    primary_exchange: str = "NYSE"
    min_tick: float = 0.01


# ---- server -> client messages (field lists exactly as ib_async 2.1.0 decodes them at 178)


def msg_server_hello(sv: int, connection_time: str) -> bytes:
    return frame([sv, connection_time])


def msg_next_valid_id(order_id: int) -> bytes:
    return frame([9, 1, order_id])


def msg_managed_accounts(accounts: Sequence[str]) -> bytes:
    return frame([15, 1, ",".join(accounts)])


def msg_current_time(epoch_s: int) -> bytes:
    return frame([49, 1, epoch_s])


def msg_error(req_id: int, code: int, text: str, advanced_json: str = "", *, sv: int) -> bytes:
    """advancedOrderRejectJson is on the wire from 166 on."""
    if sv < 166:
        return frame([4, 2, req_id, code, text])
    return frame([4, 2, req_id, code, text, advanced_json])


def _stock_contract11(s: StockInfo, exchange: str) -> list[Field]:
    """conId, symbol, secType, lastTrade, strike, right, multiplier, exchange, currency,
    localSymbol, tradingClass: the contract block of openOrder, execDetails and position."""
    return [s.con_id, s.symbol, "STK", "", 0.0, "", "", exchange, "USD", s.symbol, "NMS"]


def msg_contract_data(
    req_id: int, s: StockInfo, long_name: str, trading_hours: str, liquid_hours: str, *, sv: int
) -> bytes:
    """Below 164 a version field (8) follows the id, mdSizeMultiplier follows minTick and the
    three size fields are absent (at 163 exactly one sizeMinTick ends the message)."""
    f: list[Field] = [
        10,
        req_id,
        s.symbol,
        "STK",
        "",  # lastTradeDate[ time[ zone]]
        0.0,  # strike
        "",  # right
        "SMART",
        "USD",
        s.symbol,  # localSymbol
        "NMS",  # marketName
        "NMS",  # tradingClass
        s.con_id,
        s.min_tick,
        "",  # multiplier
        "ACTIVETIM,AD,ALERT,ALLOC,DAY,GTC,IOC,LMT,MKT,STP,TRAIL",
        f"SMART,{s.primary_exchange},ARCA,BATS,IEX",
        1,  # priceMagnifier
        0,  # underConId
        long_name,
        s.primary_exchange,
        "",  # contractMonth
        "",  # industry
        "",  # category
        "",  # subcategory
        "US/Eastern",
        trading_hours,
        liquid_hours,
        "",  # evRule
        "",  # evMultiplier
        0,  # numSecIds
        1,  # aggGroup
        "",  # underSymbol
        "",  # underSecType
        "26",  # marketRuleIds
        "",  # realExpirationDate
        "COMMON",  # stockType
    ]
    if sv >= 164:
        return frame([*f, 1, 1, 100])  # minSize, sizeIncrement, suggestedSizeIncrement
    old = [10, 8, *f[1:14], 1, *f[14:]]  # version 8; mdSizeMultiplier after minTick
    return frame([*old, 1] if sv == 163 else old)  # sizeMinTick at 163


def msg_contract_data_end(req_id: int) -> bytes:
    return frame([52, 1, req_id])


@dataclass(frozen=True)
class BarRow:
    """One bar as the wire carries it (date already formatted)."""

    date: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int


def msg_historical_data(req_id: int, start: str, end: str, bars: Sequence[BarRow]) -> bytes:
    fields: list[Field] = [17, req_id, start, end, len(bars)]
    for b in bars:
        fields += [b.date, b.open, b.high, b.low, b.close, int(b.volume), b.wap, b.count]
    return frame(fields)


def _framed(text: str) -> bytes:
    payload = text.encode()
    return _LEN.pack(len(payload)) + payload


def msg_historical_update(req_id: int, b: BarRow) -> bytes:
    """keepUpToDate bar; note the order: open, close, high, low, wap, volume. (The hot path of
    streaming, so formatted directly.)"""
    return _framed(
        f"90\0{req_id}\0{b.count}\0{b.date}\0{b.open!r}\0{b.close!r}\0{b.high!r}\0"
        f"{b.low!r}\0{b.wap!r}\0{int(b.volume)}\0"
    )


def msg_historical_schedule(
    req_id: int, start: str, end: str, tz: str, sessions: Sequence[tuple[str, str, str]]
) -> bytes:
    fields: list[Field] = [106, req_id, start, end, tz, len(sessions)]
    for s in sessions:
        fields += list(s)
    return frame(fields)


def msg_head_timestamp(req_id: int, value: str) -> bytes:
    return frame([88, req_id, value])


def msg_realtime_bar(
    req_id: int, t: int, o: float, h: float, low: float, c: float, v: float, wap: float, n: int
) -> bytes:
    return _framed(
        f"50\0003\0{req_id}\0{t}\0{float(o)!r}\0{float(h)!r}\0{float(low)!r}\0{float(c)!r}\0"
        f"{int(v)}\0{float(wap)!r}\0{n}\0"
    )


def msg_tick_price(req_id: int, tick_type: int, price: float, size: float, mask: int = 0) -> bytes:
    return frame([1, 6, req_id, tick_type, price, int(size), mask])


def msg_tick_size(req_id: int, tick_type: int, size: float) -> bytes:
    return frame([2, 6, req_id, tick_type, int(size)])


def msg_tick_string(req_id: int, tick_type: int, value: str) -> bytes:
    return frame([46, 6, req_id, tick_type, value])


def msg_tick_req_params(req_id: int, min_tick: float) -> bytes:
    return frame([81, req_id, min_tick, "9c0001", 3])


def msg_market_data_type(req_id: int, data_type: int) -> bytes:
    return frame([58, 1, req_id, data_type])


def msg_tick_snapshot_end(req_id: int) -> bytes:
    return frame([57, 1, req_id])


@dataclass(frozen=True)
class OrderView:
    """The parts of a working or finished order that order messages carry."""

    order_id: int
    client_id: int
    perm_id: int
    stock: StockInfo
    action: str
    total_qty: int
    order_type: str
    lmt_price: float | None
    aux_price: float | None
    tif: str
    account: str
    order_ref: str
    outside_rth: bool
    status: str
    filled: int
    remaining: int
    avg_fill_price: float
    last_fill_price: float
    completed_time: str = ""
    completed_status: str = ""
    # a what-if answer: whatIf set, the 9 margin fields (initMarginBefore .. equityWithLoanAfter)
    # and the commission
    what_if_margins: tuple[str, ...] = ()
    what_if_commission: float | None = None


def msg_open_order(o: OrderView, *, sv: int) -> bytes:
    """faProfile after faPercentage below 177; duration from 158, postToAts from 160,
    autoCancelParent from 162 and the five PEG fields from 170."""
    f: list[Field] = [5, o.order_id, *_stock_contract11(o.stock, "SMART")]
    f += [
        o.action,
        o.total_qty,
        o.order_type,
        o.lmt_price,
        o.aux_price,
        o.tif,
        "",  # ocaGroup
        o.account,
        "",  # openClose
        0,  # origin
        o.order_ref,
        o.client_id,
        o.perm_id,
        o.outside_rth,
        False,  # hidden
        0.0,  # discretionaryAmt
        "",  # goodAfterTime
        "",  # sharesAllocation (deprecated)
        "",  # faGroup
        "",  # faMethod
        "",  # faPercentage
    ]
    if sv < 177:
        f += [""]  # faProfile
    # modelCode ... deltaNeutralAuxPrice (29)
    f += ["", "", "", None, "", 0, "", -1, 0, None, None, None, None, None, 0, False, False, False]
    f += [None, 3, False, False, None, 0, 0, None, None, "", None]
    # continuousUpdate, referencePriceType, trailStopPrice, trailingPercent, basisPoints,
    # basisPointsType, comboLegsDescrip
    f += [False, None, None, None, None, None, ""]
    f += [0, 0, 0]  # combo legs, order combo legs, smart combo routing params
    f += [None, None, None]  # scale init level size, subs level size, price increment
    f += [""]  # hedgeType
    f += [False, "", "IB", False, 0]  # optOutSmartRouting, clearing acct/intent, notHeld, dnc
    f += [""]  # algoStrategy
    margins = list(o.what_if_margins) if o.what_if_margins else [""] * 9
    f += [False, bool(o.what_if_margins), o.status, *margins]
    c = o.what_if_commission
    f += [c, c, c, "USD" if c is not None else "", "", False, False]  # commission .. randomizePrice
    f += [0]  # conditions
    f += ["", None, None, None, None, None, None, 0, "", "", "", None, False, False, False, None]
    if sv >= 158:
        f += [""]  # duration
    if sv >= 160:
        f += [False]  # postToAts
    if sv >= 162:
        f += [False]  # autoCancelParent
    if sv >= 170:
        f += [None, None, None, None, None]  # PEG fields
    return frame(f)


def msg_open_order_end() -> bytes:
    return frame([53, 1])


def msg_order_status(o: OrderView) -> bytes:
    return frame(
        [
            3,
            o.order_id,
            o.status,
            float(o.filled),
            float(o.remaining),
            o.avg_fill_price,
            o.perm_id,
            0,  # parentId
            o.last_fill_price,
            o.client_id,
            "",  # whyHeld
            0.0,  # mktCapPrice
        ]
    )


def msg_completed_order(o: OrderView, *, sv: int) -> bytes:
    """faProfile after faPercentage below 177; the five PEG fields from 170."""
    f: list[Field] = [101, *_stock_contract11(o.stock, "SMART")]
    f += [
        o.action,
        o.total_qty,
        o.order_type,
        o.lmt_price,
        o.aux_price,
        o.tif,
        "",  # ocaGroup
        o.account,
        "",  # openClose
        0,  # origin
        o.order_ref,
        o.perm_id,
        o.outside_rth,
        False,  # hidden
        0.0,  # discretionaryAmt
        "",  # goodAfterTime
        "",  # faGroup
        "",  # faMethod
        "",  # faPercentage
    ]
    if sv < 177:
        f += [""]  # faProfile
    # modelCode ... deltaNeutralAuxPrice (23)
    f += ["", "", "", None, "", 0, "", -1, None, None, None, None, None, 0, False, False]
    f += [None, 0, 0, None, None, "", None]
    f += [False, None, None, None, ""]  # continuousUpdate .. comboLegsDescrip
    f += [0, 0, 0]
    f += [None, None, None]
    f += [""]  # hedgeType
    f += ["", "IB", False, 0]  # clearingAccount, clearingIntent, notHeld, dnc
    f += [""]  # algoStrategy
    f += [False, o.status, False, False]  # solicited, status, randomizeSize, randomizePrice
    f += [0]  # conditions
    f += [None, None, None, False, False, "", float(o.filled), 0, False, "", False, False, 0]
    f += [o.completed_time, o.completed_status]
    if sv >= 170:
        f += [None, None, None, None, None]  # PEG fields
    return frame(f)


def msg_completed_orders_end() -> bytes:
    return frame([102])


@dataclass(frozen=True)
class ExecView:
    """One execution as execDetails carries it."""

    req_id: int
    order_id: int
    client_id: int
    perm_id: int
    stock: StockInfo
    exec_id: str
    time: str
    account: str
    side: str  # BOT / SLD
    shares: int
    price: float
    cum_qty: int
    avg_price: float
    order_ref: str


def msg_exec_details(e: ExecView, *, sv: int) -> bytes:
    """pendingPriceRevision ends the message from 178 on."""
    f: list[Field] = [
        11,
        e.req_id,
        e.order_id,
        *_stock_contract11(e.stock, "SMART"),
        e.exec_id,
        e.time,
        e.account,
        e.stock.primary_exchange,
        e.side,
        float(e.shares),
        e.price,
        e.perm_id,
        e.client_id,
        0,  # liquidation
        float(e.cum_qty),
        e.avg_price,
        e.order_ref,
        "",  # evRule
        None,  # evMultiplier
        "",  # modelCode
        2,  # lastLiquidity: removed liquidity
    ]
    return frame([*f, False] if sv >= 178 else f)  # pendingPriceRevision


def msg_exec_details_end(req_id: int) -> bytes:
    return frame([55, 1, req_id])


def msg_commission_report(exec_id: str, commission: float, realized_pnl: float | None) -> bytes:
    return frame(
        [
            59,
            1,
            exec_id,
            commission,
            "USD",
            UNSET_DOUBLE if realized_pnl is None else realized_pnl,
            UNSET_DOUBLE,
            "",
        ]
    )


def msg_position(account: str, s: StockInfo, qty: int, avg_cost: float) -> bytes:
    return frame([61, 3, account, *_stock_contract11(s, s.primary_exchange), float(qty), avg_cost])


def msg_position_end() -> bytes:
    return frame([62, 1])


def msg_account_value(key: str, value: str, currency: str, account: str) -> bytes:
    return frame([6, 2, key, value, currency, account])


def msg_portfolio(
    s: StockInfo,
    qty: int,
    market_price: float,
    market_value: float,
    avg_cost: float,
    unrealized: float,
    realized: float,
    account: str,
) -> bytes:
    contract: list[Field] = [s.con_id, s.symbol, "STK", "", 0.0, "", "", s.primary_exchange]
    contract += ["USD", s.symbol, "NMS"]
    return frame(
        [
            7,
            8,
            *contract,
            float(qty),
            market_price,
            market_value,
            avg_cost,
            unrealized,
            realized,
            account,
        ]
    )


def msg_account_time(hhmm: str) -> bytes:
    return frame([8, 1, hhmm])


def msg_account_download_end(account: str) -> bytes:
    return frame([54, 1, account])


def msg_account_update_multi(
    req_id: int, account: str, key: str, value: str, currency: str
) -> bytes:
    return frame([73, 1, req_id, account, "", key, value, currency])


def msg_account_update_multi_end(req_id: int) -> bytes:
    return frame([74, 1, req_id])


def msg_account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> bytes:
    return frame([63, 1, req_id, account, tag, value, currency])


def msg_account_summary_end(req_id: int) -> bytes:
    return frame([64, 1, req_id])
