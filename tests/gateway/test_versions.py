"""Server versions 157..178: the handshake's choice, every message whose layout depends on the
version decoded by ib_async's own Decoder at each layout boundary, and placeOrder (what-if
included) read from ib_async's own encoder at each version (docs/dev/tws-versions.md)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from ib_async.client import Client
from ib_async.contract import Stock
from ib_async.decoder import Decoder
from ib_async.objects import TagValue
from ib_async.order import LimitOrder, MarketOrder

from momentumbot.gateway import protocol as p
from momentumbot.gateway.market import stable_con_id
from momentumbot.gateway.place_order import read_place_order
from momentumbot.gateway.server import GatewayServer
from tests.gateway.conftest import gateway, run
from tests.gateway.test_bad_input import RawClient

# the layout boundaries: 158 duration, 160 postToAts, 162 autoCancelParent, 163/164 contractData,
# 166 error json, 170 PEG fields, 177 faProfile gone, 178 pendingPriceRevision
VERSIONS = (157, 158, 160, 162, 163, 164, 166, 170, 176, 177, 178)
STOCK = p.StockInfo("AAPL", stable_con_id("AAPL"), min_tick=0.01)
VIEW = p.OrderView(
    order_id=7, client_id=1, perm_id=1_000_001, stock=STOCK, action="BUY", total_qty=100,
    order_type="LMT", lmt_price=101.25, aux_price=None, tif="DAY", account="DU1", order_ref="ref-1",
    outside_rth=False, status="Submitted", filled=40, remaining=60, avg_fill_price=101.0,
    last_fill_price=101.0, completed_time="20240103 10:00:00 America/New_York",
    completed_status="Filled",
)  # fmt: skip
EXEC = p.ExecView(-1, 7, 1, 1_000_001, STOCK, "0001.02.01.01", "20240103 09:35:00 America/New_York",
                  "DU1", "BOT", 40, 101.0, 40, 101.0, "ref-1")  # fmt: skip


def fields_of(msg: bytes) -> list[str]:
    reader = p.FrameReader()
    reader.handshake_done = True
    (fields,) = reader.feed(msg)
    return fields


class Capture:
    defaultTimezone = dt.UTC

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str) -> object:
        def record(*args: object) -> None:
            self.calls.append((name, args))

        return record


def decode(msg: bytes, sv: int) -> tuple[str, tuple[object, ...]]:
    """ib_async's decoder at server version `sv`: the wrapper call it made; no decoder error."""
    cap = Capture()
    dec = Decoder(cap, sv)  # type: ignore[arg-type]
    errors: list[str] = []
    dec.logger.exception = lambda m, *a, **k: errors.append(m)
    dec.logger.error = lambda m, *a, **k: errors.append(m)
    dec.interpret(fields_of(msg))
    assert not errors, errors
    assert cap.calls
    return cap.calls[-1]


@pytest.mark.parametrize(
    ("offer", "answer"),
    [
        ("v157..176", 176),  # ib_insync 0.9.86
        ("v157..178", 178),  # ib_async 2.x
        ("v100..226", 178),  # ibapi 10.51
        ("v100..215 +PACEAPI", 178),  # ibapi 10.40, with connect options
        ("v100..170", 170),
        ("v178..300", 178),
        ("v100..157", 157),
    ],
)
def test_the_handshake_answers_the_highest_version_both_sides_speak(
    offer: str, answer: int
) -> None:
    assert p.negotiate(offer) == answer


@pytest.mark.parametrize("offer", ["v100..156", "v179..200", "v170..160x", "hello"])
def test_an_offer_outside_157_to_178_is_refused(offer: str) -> None:
    with pytest.raises(p.ProtocolError):
        p.negotiate(offer)


@pytest.mark.parametrize("sv", VERSIONS)
def test_open_order_decodes_at_every_version(sv: int) -> None:
    msg = p.msg_open_order(VIEW, sv=sv)
    # 127 fields at 177/178; faProfile below 177; duration, postToAts, autoCancelParent and the
    # five PEG fields come at 158, 160, 162 and 170
    n = 127 + (sv < 177) - (sv < 158) - (sv < 160) - (sv < 162) - 5 * (sv < 170)
    assert len(fields_of(msg)) == n
    name, (order_id, contract, order, state) = decode(msg, sv)
    assert (name, order_id, contract.conId) == ("openOrder", 7, STOCK.con_id)  # type: ignore[attr-defined]
    assert (order.orderRef, order.lmtPrice, order.permId, order.totalQuantity) == (  # type: ignore[attr-defined]
        "ref-1", 101.25, 1_000_001, 100.0,
    )  # fmt: skip
    assert state.status == "Submitted"  # type: ignore[attr-defined]


@pytest.mark.parametrize("sv", VERSIONS)
def test_completed_order_decodes_at_every_version(sv: int) -> None:
    msg = p.msg_completed_order(VIEW, sv=sv)
    assert len(fields_of(msg)) == 96 + (sv < 177) - 5 * (sv < 170)
    name, (contract, order, state) = decode(msg, sv)
    assert name == "completedOrder" and contract.symbol == "AAPL"  # type: ignore[attr-defined]
    assert (order.orderRef, order.permId, order.filledQuantity) == ("ref-1", 1_000_001, 40.0)  # type: ignore[attr-defined]
    assert state.completedStatus == "Filled"  # type: ignore[attr-defined]
    assert state.completedTime == "20240103 10:00:00 America/New_York"  # type: ignore[attr-defined]


@pytest.mark.parametrize("sv", VERSIONS)
def test_exec_details_carries_pending_price_revision_only_at_178(sv: int) -> None:
    msg = p.msg_exec_details(EXEC, sv=sv)
    assert len(fields_of(msg)) == 31 + (sv >= 178)
    name, (_req_id, contract, ex) = decode(msg, sv)
    assert name == "execDetails" and contract.symbol == "AAPL"  # type: ignore[attr-defined]
    assert (ex.orderRef, ex.shares, ex.price, ex.lastLiquidity) == ("ref-1", 40.0, 101.0, 2)  # type: ignore[attr-defined]


@pytest.mark.parametrize("sv", VERSIONS)
def test_error_carries_the_advanced_json_from_166(sv: int) -> None:
    msg = p.msg_error(5, 201, "Order rejected", '{"reason": 1}', sv=sv)
    assert len(fields_of(msg)) == 5 + (sv >= 166)
    name, args = decode(msg, sv)
    assert name == "error"
    assert args == (5, 201, "Order rejected", '{"reason": 1}' if sv >= 166 else "")


@pytest.mark.parametrize("sv", VERSIONS)
def test_contract_data_decodes_at_every_version(sv: int) -> None:
    msg = p.msg_contract_data(3, STOCK, "AAPL (SIMULATED)", "T", "L", sv=sv)
    fields = fields_of(msg)
    assert fields[1] == ("8" if sv < 164 else "3")  # the message's version field below 164
    name, (req_id, cd) = decode(msg, sv)
    assert name == "contractDetails" and req_id == 3
    assert (cd.contract.conId, cd.minTick, cd.longName, cd.stockType) == (  # type: ignore[attr-defined]
        STOCK.con_id, 0.01, "AAPL (SIMULATED)", "COMMON",
    )  # fmt: skip
    assert cd.contract.primaryExchange == "NYSE" and cd.tradingHours == "T"  # type: ignore[attr-defined]
    # the size rules: three fields from 164, one sizeMinTick at 163, none below
    sizes = (cd.minSize, cd.sizeIncrement, cd.suggestedSizeIncrement)  # type: ignore[attr-defined]
    if sv >= 164:
        assert sizes == (1.0, 1.0, 100.0)
    elif sv == 163:
        assert cd.suggestedSizeIncrement == 1.0  # type: ignore[attr-defined]
    assert len(fields) == 40 - 3 * (sv < 164) + 2 * (sv < 164) + (sv == 163)


def ib_async_place_order(sv: int, order: object, contract: object) -> list[str]:
    """The fields ib_async's own client sends for this order at server version `sv`."""
    sent: list[str] = []
    client = Client(Capture())
    client.connState = Client.CONNECTED
    client._serverVersion = sv
    client.sendMsg = sent.append
    client.placeOrder(11, contract, order)
    (msg,) = sent
    fields = msg.split("\0")
    assert fields[-1] == ""
    return fields[:-1]


@pytest.mark.parametrize("sv", VERSIONS)
def test_a_what_if_order_is_read_as_one_at_every_version(sv: int) -> None:
    """Below 177 the old parser read a what-if as a real order (faProfile not skipped)."""
    contract = Stock("AAPL", "SMART", "USD", conId=STOCK.con_id)
    what_if = MarketOrder("BUY", 10, whatIf=True)
    po = read_place_order(p.Reader(ib_async_place_order(sv, what_if, contract)), sv)
    assert (po.order_id, po.contract.symbol, po.action, po.qty) == (11, "AAPL", "BUY", 10.0)
    assert po.what_if is True
    real = LimitOrder("SELL", 5, 99.5, orderRef="r", outsideRth=True, hidden=True)
    po = read_place_order(p.Reader(ib_async_place_order(sv, real, contract)), sv)
    assert (po.order_type, po.lmt, po.order_ref, po.outside_rth, po.what_if) == (
        "LMT", 99.5, "r", True, False,
    )  # fmt: skip


@pytest.mark.parametrize("sv", [176, 178])
def test_an_algo_what_if_order_is_read_field_by_field(sv: int) -> None:
    """hidden is consumed (the old parser was one field off at 178, visible with algo params)."""
    contract = Stock("AAPL", "SMART", "USD", conId=STOCK.con_id)
    algo = MarketOrder("BUY", 10, whatIf=True, algoStrategy="Adaptive")
    algo.algoParams = [TagValue("adaptivePriority", "Normal")]
    po = read_place_order(p.Reader(ib_async_place_order(sv, algo, contract)), sv)
    assert po.what_if is True
    algo.whatIf = False
    po = read_place_order(p.Reader(ib_async_place_order(sv, algo, contract)), sv)
    assert po.what_if is False and not math.isnan(po.qty)


def test_a_connection_speaks_the_version_it_negotiated(source: Any) -> None:
    """Over TCP: v157..164 gets 164 and no historicalSchedule (a 165 message: error 162);
    v157..165 gets it; an offer below 157 is closed."""

    async def schedule_answer(srv: GatewayServer, hi: int) -> list[str]:
        raw = await RawClient.open(srv.port)
        await raw.send(p.handshake_bytes(157, hi))
        assert (await raw.messages(1))[0][0] == str(hi)
        await raw.send(p.frame([71, 2, hi, ""]))
        await raw.messages(5)
        contract: list[p.Field] = [0, "AAPL", "STK", "", 0.0, "", "", "SMART", "", "USD", "", ""]
        req = [20, 9, *contract, 0, "", "1 min", "1 D", 1, "SCHEDULE", 2, 0, ""]
        await raw.send(p.frame(req))
        (answer,) = await raw.messages(1)
        raw.close()
        return answer

    async def body() -> None:
        async with gateway(source) as srv:
            assert (await schedule_answer(srv, 164))[:4] == ["4", "2", "9", "162"]
            assert (await schedule_answer(srv, 165))[:2] == ["106", "9"]
            old = await RawClient.open(srv.port)
            await old.send(p.handshake_bytes(100, 156))
            assert await old.closed()

    run(body())
