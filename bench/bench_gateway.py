"""Benchmark of the simulated gateway, run as a user runs it (`momentumbot gateway` in its own
process over a Parquet store) with the unmodified ib_async client in this process:

1. throughput: messages per second to one client streaming 100 symbols' keepUpToDate 1-minute
   bars, and 5-second real-time bars, with the clock at x1,000,000 (the gateway as fast as the
   client reads);
2. latency: from a bar closing on the virtual clock (the real instant the running clock shows the
   bar's close) to ib_async's barUpdateEvent for it, p50 / p99 / max, at a replay speed where
   the gateway keeps up; once with the client's garbage collector as it is (its pauses over
   ib_async's many bar objects show in the tail, and are listed) and once with gc.freeze()
   after subscribing.

Usage: .venv/bin/python bench/bench_gateway.py [--symbols 100] [--latency-speed 300]
       [--latency-seconds 20] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from ib_async import IB, Stock

from momentumbot.data.store import BarStore
from momentumbot.data.synthetic import default_symbols, write_synthetic

FIRST_SESSION = "2024-01-02"
REPLAY_DAY = pd.Timestamp("2024-01-03").date()


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Control:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def __call__(self, line: str) -> str:
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()
        reply = (await self.reader.readline()).decode().strip()
        if not reply.startswith("OK"):
            raise RuntimeError(f"{line}: {reply}")
        return reply[3:]


@asynccontextmanager
async def gateway_process(store: Path) -> AsyncIterator[tuple[int, int, Control]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "momentumbot", "gateway", "--store", str(store), "--port", "0",
        "--control-port", "0", "--step", "--log-level", "WARNING",
        # one client streams every symbol: IB's caps (50 / 100) off, to time the gateway
        "--fault", "max-hist-requests=0", "--fault", "max-market-data-lines=0",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        words = (await asyncio.wait_for(proc.stdout.readline(), 120)).decode().split()
        port, control_port = int(words[1].rsplit(":", 1)[1]), int(words[3])
        control = Control(*await asyncio.open_connection("127.0.0.1", control_port))
        yield proc.pid, port, control
        await control("shutdown")
        control.writer.close()
        await asyncio.wait_for(proc.wait(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def subscribe(ib: IB, symbols: list[str], kind: str) -> list[Any]:
    if kind == "realtime":
        return [ib.reqRealTimeBars(Stock(s, "SMART", "USD"), 5, "TRADES", True) for s in symbols]
    return list(
        await asyncio.gather(
            *(
                ib.reqHistoricalDataAsync(
                    Stock(s, "SMART", "USD"), "", "1 D", "1 min", "TRADES", True, 2, True
                )
                for s in symbols
            )
        )
    )


async def throughput(
    store: Path, symbols: list[str], expected_bars: int, kind: str
) -> dict[str, Any]:
    per_bar = 12 if kind == "realtime" else 1
    expected = expected_bars * per_bar
    async with gateway_process(store) as (pid, port, control):
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=30)
        lists = await subscribe(ib, symbols, kind)
        await asyncio.wait_for(ib.reqCurrentTimeAsync(), 30)
        seen = 0
        done = asyncio.Event()
        end: dict[str, float] = {}

        def on_bar(bars: Any, has_new: bool) -> None:
            nonlocal seen
            if has_new:
                seen += 1
                if seen == expected:
                    st = ib.client.connectionStats()
                    end.update(
                        t=time.perf_counter(),
                        msgs=st.numMsgRecv,
                        bytes=st.numBytesRecv,
                        cpu=time.process_time(),
                    )
                    done.set()

        ib.barUpdateEvent += on_bar
        st0 = ib.client.connectionStats()
        gw_cpu0 = process_cpu(pid)
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        await control("speed 1000000")
        await control("resume")
        await asyncio.wait_for(done.wait(), 600)
        gw_cpu = process_cpu(pid) - gw_cpu0
        await control("pause")
        ib.disconnect()
        elapsed = end["t"] - t0
        assert len(lists) == len(symbols)
        messages = int(end["msgs"] - st0.numMsgRecv)
        return {
            "stream": "keepUpToDate 1-min bars"
            if kind != "realtime"
            else "5-second real-time bars",
            "symbols": len(symbols),
            "bar_updates": expected,
            "seconds": round(elapsed, 3),
            "messages": messages,
            "messages_per_second": round(messages / elapsed),
            "megabytes_per_second": round((end["bytes"] - st0.numBytesRecv) / elapsed / 1e6, 2),
            "market_minutes_per_second": round(expected_bars / len(symbols) / elapsed, 1),
            "client_cpu_seconds": round(end["cpu"] - cpu0, 2),
            "gateway_cpu_seconds": round(gw_cpu, 2),
        }


async def latency(
    store: Path, symbols: list[str], speed: float, seconds: float, freeze: bool
) -> dict[str, Any]:
    gc_pauses: list[float] = []
    started: list[float] = []

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            gc_pauses.append((time.perf_counter() - started[0]) * 1000)

    async with gateway_process(store) as (_, port, control):
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=30)
        await subscribe(ib, symbols, "keepUpToDate")
        await control("advance-to 09:29")
        if freeze:
            gc.collect()
            gc.freeze()
        gc.callbacks.append(on_gc)
        await asyncio.wait_for(ib.reqCurrentTimeAsync(), 30)
        samples: list[float] = []
        anchor: dict[str, Any] = {}

        def on_bar(bars: Any, has_new: bool) -> None:
            if not has_new or not anchor:
                return
            now = time.monotonic()
            close_ns = int(bars[-1].date.timestamp()) * 1_000_000_000 + 60_000_000_000
            closes_at = (
                anchor["monotonic"] + (close_ns - anchor["virtual_ns"]) / 1e9 / anchor["speed"]
            )
            samples.append(now - closes_at)

        ib.barUpdateEvent += on_bar
        await control(f"speed {speed}")
        await control("resume")
        anchor.update(json.loads(await control("status"))["clock"])
        await asyncio.sleep(seconds)
        gc.callbacks.remove(on_gc)
        await control("pause")
        ib.disconnect()
    if freeze:
        gc.unfreeze()
    ms = np.array(samples) * 1000
    return {
        "client_gc": "frozen after subscribing (gc.freeze)" if freeze else "default",
        "client_gc_pauses_over_5ms": [round(x, 1) for x in gc_pauses if x > 5],
        "speed": speed,
        "symbols": len(symbols),
        "samples": len(samples),
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "max_ms": round(float(ms.max()), 2),
        "first_bar_of_minute_p50_ms": round(float(np.percentile(ms, 50 / len(symbols))), 2),
    }


class _NullTransport:
    """Swallows the gateway's output (to time the gateway without any client)."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.bytes += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("null", 0)

    def set_write_buffer_limits(self, high: int) -> None:
        pass

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


async def gateway_alone(store: Path, symbols: list[str], kind: str) -> dict[str, Any]:
    """The gateway's own capacity: one session of 100 symbols streamed into a null transport."""
    from momentumbot.gateway import protocol as p
    from momentumbot.gateway.server import ClientSession, GatewayConfig, GatewayServer

    srv = GatewayServer(BarStore(store), GatewayConfig(start=str(REPLAY_DAY), step_mode=True))
    srv.faults.max_hist_requests = srv.faults.max_market_data_lines = 0  # IB's caps off
    session = ClientSession(srv.desks.sessions)
    null = _NullTransport()
    session.transport = null  # type: ignore[assignment]
    srv.sessions.add(session)
    session.data_received(p.handshake_bytes() + p.frame([71, 2, 1, ""]))
    for i, sym in enumerate(symbols):
        contract = [0, sym, "STK", "", 0.0, "", "", "SMART", "", "USD", "", ""]
        if kind == "realtime":
            session.data_received(p.frame([50, 3, 100 + i, *contract, 5, "TRADES", 1, ""]))
        else:
            session.data_received(
                p.frame([20, 100 + i, *contract, 0, "", "1 min", "1 D", 1, "TRADES", 2, 1, ""])
            )
    await asyncio.sleep(0)
    n0, b0 = session.messages_sent, null.bytes
    cpu0, t0 = time.process_time(), time.perf_counter()
    await srv.advance_to(int(pd.Timestamp(f"{REPLAY_DAY} 16:01", tz="America/New_York").value))
    elapsed = time.perf_counter() - t0
    messages = session.messages_sent - n0
    return {
        "stream": ("5-second real-time bars" if kind == "realtime" else "keepUpToDate 1-min bars")
        + ", gateway alone (no client)",
        "symbols": len(symbols),
        "messages": messages,
        "seconds": round(elapsed, 3),
        "messages_per_second": round(messages / elapsed),
        "megabytes_per_second": round((null.bytes - b0) / elapsed / 1e6, 2),
        "gateway_cpu_seconds": round(time.process_time() - cpu0, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--latency-speed", type=float, default=300.0)
    ap.add_argument("--latency-seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("ib_async").setLevel(logging.ERROR)
    symbols = default_symbols(args.symbols)
    with tempfile.TemporaryDirectory() as tmp:
        store_root = Path(tmp) / "store"
        store = BarStore(store_root)
        write_synthetic(store, symbols, start=FIRST_SESSION, n_sessions=3, seed=7)
        expected = 0
        for s in symbols:
            ts = store.read(s)["ts"].dt.tz_convert("America/New_York").dt.date
            expected += int((ts == REPLAY_DAY).sum())
        results = {
            "gateway_alone": [
                asyncio.run(gateway_alone(store_root, symbols, "keepUpToDate")),
                asyncio.run(gateway_alone(store_root, symbols, "realtime")),
            ],
            "throughput": [
                asyncio.run(throughput(store_root, symbols, expected, "keepUpToDate")),
                asyncio.run(throughput(store_root, symbols, expected, "realtime")),
            ],
            "latency": [
                asyncio.run(
                    latency(store_root, symbols, args.latency_speed, args.latency_seconds, freeze)
                )
                for freeze in (False, True)
            ],
        }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
