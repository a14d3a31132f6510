"""The live/paper account guard and bad input: a clear message, a non-zero exit, and nothing
sent to the broker."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from momentumbot.app.trade import TradeOptions, Trader
from momentumbot.cli import main
from momentumbot.config.loader import load_config
from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols
from momentumbot.domain.errors import ConfigError
from momentumbot.journal.journal import JOURNAL_NAME
from tests.gateway.conftest import IbLogGuard
from tests.trade.harness import CliRun, gateway, stop_thread, synthetic_store, trading, write_config

SYMBOLS = default_symbols(3)
DAY = "2024-01-03"
LIMITS = "\n[risk]\nmax_position_value = 20000.0\nmax_gross_exposure = 90000.0\nmax_daily_loss = 1000.0\n"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> BarStore:
    return synthetic_store(tmp_path_factory.mktemp("guards") / "store", SYMBOLS, "2024-01-02", 2)


def _orders(gw: Any) -> list[Any]:
    return [e for e in gw.record.events if e.get("event") == "order"]


async def _refused(
    store: BarStore, tmp: Path, extra: str, accounts: tuple[str, ...], **opts: Any
) -> tuple[str, Any]:
    cfg = load_config(write_config(tmp / "cfg.toml", SYMBOLS, extra))
    async with trading(store, DAY, tmp / "out", cfg, gw_kwargs={"accounts": accounts}, **opts) as s:
        with pytest.raises(ConfigError) as err:
            await s.finish()
        assert not _orders(s.gw)
        return str(err.value), s.gw


def test_a_paper_run_refuses_a_live_account(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection")
    msg, _ = asyncio.run(_refused(store, tmp_path, "", ("U1234567",)))
    assert "LIVE account" in msg and "U1234567" in msg


def test_a_live_run_refuses_a_paper_account(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection")
    extra = 'live = true\naccount = "DU0000001"\naccount_type = "margin"\n' + LIMITS
    msg, _ = asyncio.run(_refused(store, tmp_path, extra, ("DU0000001",), live=True))
    assert "paper account" in msg


def test_live_needs_the_config_to_allow_it(store: BarStore, tmp_path: Path) -> None:
    async def body() -> None:
        cfg = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS))
        async with trading(store, DAY, tmp_path / "out", cfg, live=True) as s:
            with pytest.raises(ConfigError, match="live = true"):
                await s.finish()
            assert s.gw.stats["connections"] == 0, "refused before connecting"

    asyncio.run(body())


def test_live_needs_risk_limits_and_the_account(store: BarStore, tmp_path: Path) -> None:
    async def body() -> None:
        cfg = load_config(
            write_config(tmp_path / "cfg.toml", SYMBOLS, 'live = true\naccount = "U1234567"\n')
        )
        async with trading(store, DAY, tmp_path / "out", cfg, live=True) as s:
            with pytest.raises(ConfigError, match="max_position_value"):
                await s.finish()

    asyncio.run(body())


def test_the_account_in_the_config_must_be_the_connected_one(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection")
    extra = 'live = true\naccount = "U7654321"\naccount_type = "margin"\n' + LIMITS
    msg, _ = asyncio.run(_refused(store, tmp_path, extra, ("U1234567",), live=True))
    assert "U7654321" in msg and "not an account of this connection" in msg


def test_a_live_run_on_its_live_account_trades(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        extra = 'live = true\naccount = "U1234567"\naccount_type = "margin"\n' + LIMITS
        cfg = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS, extra))
        async with trading(
            store, DAY, tmp_path / "out", cfg, gw_kwargs={"accounts": ("U1234567",)}, live=True
        ) as s:
            await s.drv.settle(60)
            await s.drv.run_to("11:00")
            assert s.trader.account == "U1234567" and s.trader.kind == "live"
            await s.stop()

    asyncio.run(body())


# ---------------------------------------------------------------- bad input


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], ib_log: IbLogGuard
) -> None:
    ib_log.allow("API connection failed|Make sure API port")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS)
    out = tmp_path / "out"
    code = main(
        [
            "trade",
            "--config",
            str(cfg),
            "--port",
            str(_free_port()),
            "--out",
            str(out),
            "--no-console",
        ]
    )
    assert code == 4
    err = capsys.readouterr().err
    assert "connection refused" in err and "momentumbot gateway" in err
    assert "Traceback" not in err


def test_wrong_port(tmp_path: Path, capsys: pytest.CaptureFixture[str], ib_log: IbLogGuard) -> None:
    """Something listens, but it is not TWS: the handshake never completes."""
    ib_log.allow("API connection failed|TimeoutError|Peer closed")
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS, "connect_timeout_seconds = 0.5\n")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    try:
        port = srv.getsockname()[1]
        code = main(
            [
                "trade",
                "--config",
                str(cfg),
                "--port",
                str(port),
                "--out",
                str(tmp_path / "o"),
                "--no-console",
            ]
        )
    finally:
        srv.close()
    assert code == 4
    err = capsys.readouterr().err
    assert "did not complete the TWS API handshake" in err


def test_unknown_symbol_in_the_config(
    store: BarStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], ib_log: IbLogGuard
) -> None:
    ib_log.expect(200)
    ib_log.allow("Peer closed connection|Unknown contract")
    cfg = tmp_path / "cfg.toml"
    write_config(cfg, [*SYMBOLS, "NOPE"])

    async def body() -> CliRun:
        async with gateway(store, DAY) as gw:
            run = CliRun(
                [
                    "trade",
                    "--config",
                    str(cfg),
                    "--port",
                    str(gw.port),
                    "--out",
                    str(tmp_path / "out"),
                    "--no-console",
                ]
            ).start()
            await stop_thread(run)
            assert not _orders(gw)
            return run

    run = asyncio.run(body())
    assert run.code == 3
    err = capsys.readouterr().err
    assert "unknown symbol" in err and "NOPE" in err


def test_corrupt_journal(
    store: BarStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path / "cfg.toml", SYMBOLS)
    out = tmp_path / "out"
    out.mkdir()
    (out / JOURNAL_NAME).write_bytes(b"this is not a journal\x00\x01" * 100)

    async def body() -> None:
        async with gateway(store, DAY) as gw:
            code = await asyncio.to_thread(
                main,
                [
                    "trade",
                    "--config",
                    str(cfg),
                    "--port",
                    str(gw.port),
                    "--out",
                    str(out),
                    "--no-console",
                ],
            )
            assert code == 3
            assert gw.stats["connections"] == 0, "nothing was sent"

    asyncio.run(body())
    err = capsys.readouterr().err
    assert "corrupt" in err and JOURNAL_NAME in err


def test_a_second_bot_in_the_same_folder_is_refused(
    store: BarStore, tmp_path: Path, ib_log: IbLogGuard
) -> None:
    ib_log.allow("Peer closed connection")

    async def body() -> None:
        cfg = load_config(write_config(tmp_path / "cfg.toml", SYMBOLS))
        async with trading(store, DAY, tmp_path / "out", cfg) as s:
            await s.drv.settle(60)
            other = Trader(
                cfg, TradeOptions(out_dir=tmp_path / "out", port=s.gw.port, console=False)
            )
            with pytest.raises(ConfigError, match="another momentumbot"):
                await other.run()
            await s.stop()

    asyncio.run(body())
