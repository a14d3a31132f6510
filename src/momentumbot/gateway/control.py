"""A line-based control port for humans and scripts: drive the clock, switch faults, ask for status.

One command per line, one reply line per command ("OK ..." or "ERR ..."; `status` replies with
JSON after OK; help texts come on one line with " | " between their lines). Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pandas as pd

from momentumbot.gateway.clock import ny_ns
from momentumbot.gateway.desks.lockstep import parse_speed
from momentumbot.gateway.faults import FaultSpecError
from momentumbot.gateway.market import ny_time
from momentumbot.gateway.server import GatewayServer

log = logging.getLogger("momentumbot.gateway.control")

CONTROL_HELP = """\
commands:
  status                      JSON: time, clients, orders, cash and positions per account
  time                        the market clock (New York time)
  advance SECONDS             move the clock forward (any mode)
  advance-to HH:MM [DATE]     move the clock to a New York wall time
  speed X                     market seconds per real second (max: with lockstep only)
  pause | resume              stop / restart the running clock (pause = step mode)
  fault SPEC                  switch a fault on (same specs as --fault; `fault help` lists them)
  clear-faults                switch every fault off
  outage [data-lost] [drop]   connectivity lost (1100); `drop` discards order messages meanwhile
  restore                     connectivity back (1102, or 1101 after `outage data-lost`);
                              also ends `fault farm-broken` (2110)
  nightly-reset [SECONDS]     drop every socket; refuse connections for SECONDS
  restart [SECONDS]           drop every socket and roll order ids back
  quit                        close this control connection
  shutdown                    stop the gateway
"""


class ControlServer:
    """Serves the control commands for one gateway."""

    def __init__(self, gateway: GatewayServer, port: int, host: str = "127.0.0.1") -> None:
        self.gateway = gateway
        self.host = host
        self.requested_port = port
        self.shutdown_requested = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._conns: dict[asyncio.StreamWriter, asyncio.Task[None] | None] = {}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.requested_port)

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and end open control connections (they see EOF, not a cancellation)."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._conns):
            writer.transport.abort()
        tasks = [t for t in self._conns.values() if t is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns[writer] = asyncio.current_task()
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", errors="replace").strip()
                if not line:
                    continue
                if line == "quit":
                    writer.write(b"OK bye\n")
                    break
                reply = await self.execute(line)
                writer.write(reply.encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._conns.pop(writer, None)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def execute(self, line: str) -> str:
        """Run one command; never raises."""
        words = line.split()
        cmd, args = words[0].lower(), words[1:]
        g = self.gateway
        log.info("control: %s", line)
        try:
            if cmd == "help":
                return "OK " + _one_line(CONTROL_HELP)
            if cmd == "status":
                return "OK " + json.dumps(g.status(), separators=(",", ":"))
            if cmd == "time":
                return f"OK {ny_time(g.now_ns()).isoformat()}"
            if cmd == "advance":
                await g.advance(float(args[0]))
                return f"OK {ny_time(g.now_ns()).isoformat()}"
            if cmd == "advance-to":
                h, _, m = args[0].partition(":")
                day = (
                    pd.Timestamp(args[1])
                    if len(args) > 1
                    else pd.Timestamp(ny_time(g.now_ns()).date())
                )
                target = ny_ns(day, int(h), int(m))
                if target <= g.now_ns():
                    return "ERR that time has passed"
                await g.advance_to(target)
                return f"OK {ny_time(g.now_ns()).isoformat()}"
            if cmd == "speed":
                g.set_speed(parse_speed(args[0]))
                return f"OK speed {g.clock.label()}"
            if cmd == "pause":
                g.pause()
                return "OK paused"
            if cmd == "resume":
                g.resume()
                return "OK running"
            if cmd == "fault":
                if not args or args[0] == "help":
                    from momentumbot.gateway.faults import FAULT_HELP

                    return "OK " + _one_line(FAULT_HELP)
                g.apply_fault(" ".join(args))
                return f"OK fault {' '.join(args)}"
            if cmd == "clear-faults":
                g.clear_faults()
                return "OK faults cleared"
            if cmd == "outage":
                g.lose_connectivity(data_lost="data-lost" in args, drop_order_events="drop" in args)
                return "OK connectivity lost"
            if cmd == "restore":
                g.restore_connectivity()
                return "OK connectivity restored"
            if cmd == "nightly-reset":
                g.nightly_reset(float(args[0]) if args else 0.0)
                return "OK sockets dropped"
            if cmd == "restart":
                g.restart(float(args[0]) if args else 0.0)
                return "OK restarted"
            if cmd == "shutdown":
                self.shutdown_requested.set()
                return "OK shutting down"
            return f"ERR unknown command {cmd!r}; try help"
        except FaultSpecError as exc:
            return "ERR " + str(exc).replace("\n", " | ")
        except (ValueError, IndexError) as exc:
            return f"ERR {cmd}: bad or missing argument ({exc})"


def _one_line(text: str) -> str:
    return " | ".join(" ".join(line.split()) for line in text.strip().splitlines())
