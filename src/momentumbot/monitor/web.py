"""The dashboard's web app (Starlette): one page that updates live, its JSON API, the controls
and `/metrics`. Every API call, control and `/metrics` needs `Authorization: Bearer <token>`
(401 otherwise); the page itself holds no data and asks for the token once.

The app reads a `DashboardSource` (the running bot's own books, or a run folder's journal) and,
when the bot runs here, acts through its `Controls`; without controls (a run folder served
read-only) every control answers 409 and changes nothing."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from momentumbot.monitor.metrics import metrics_text
from momentumbot.monitor.snapshot import RunSnapshot

log = logging.getLogger("momentumbot.dashboard")

TOKEN_ENV = "MOMENTUMBOT_DASHBOARD_TOKEN"
STREAM_SECONDS = 1.0  # how often the page's stream looks for a change


class DashboardSource(Protocol):
    def snapshot(self) -> RunSnapshot: ...


class Controls(Protocol):
    """What the page's buttons do; each returns what happened, in a line, and is journaled."""

    def pause(self) -> str: ...
    def resume(self) -> str: ...
    def stop(self) -> str: ...
    def rearm(self) -> str: ...


def page_html() -> str:
    return resources.files("momentumbot.monitor").joinpath("dashboard.html").read_text("utf-8")


def _authorized(request: Request, token: str) -> bool:
    got = request.headers.get("authorization", "")
    scheme, _, given = got.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )


def _denied() -> Response:
    return JSONResponse(
        {"error": "unauthorized: send Authorization: Bearer <MOMENTUMBOT_DASHBOARD_TOKEN>"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


Handler = Callable[[Request], Awaitable[Response]]


def build_app(source: DashboardSource, token: str, controls: Controls | None = None) -> Starlette:
    """The dashboard app over `source`; `token` guards everything but the empty page."""
    if not token:
        raise ValueError("the dashboard needs a token")
    page = page_html()

    def guarded(fn: Handler) -> Handler:
        async def inner(request: Request) -> Response:
            if not _authorized(request, token):
                return _denied()
            return await fn(request)

        return inner

    def state() -> dict[str, Any]:
        snap = source.snapshot().to_json()
        snap["controls"] = controls is not None
        return snap

    async def index(_: Request) -> Response:
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def status(_: Request) -> Response:
        return JSONResponse(state())

    async def positions(_: Request) -> Response:
        snap = source.snapshot()
        return JSONResponse(
            [
                {"symbol": p.symbol, "quantity": p.quantity, "last": p.last, "value": p.value}
                for p in snap.positions
            ]
        )

    async def orders(_: Request) -> Response:
        return JSONResponse(source.snapshot().to_json()["working"])

    async def fills(_: Request) -> Response:
        return JSONResponse(source.snapshot().to_json()["recent_fills"])

    async def metrics(_: Request) -> Response:
        body, content_type = metrics_text(source.snapshot())
        return Response(body, media_type=content_type)

    async def stream(request: Request) -> Response:
        async def events() -> AsyncIterator[str]:
            last = ""
            while not await request.is_disconnected():
                text = json.dumps(state(), separators=(",", ":"))
                if text != last:
                    last = text
                    yield f"data: {text}\n\n"
                else:
                    yield ": still here\n\n"
                await asyncio.sleep(STREAM_SECONDS)

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-store"}
        )

    def control(name: str) -> Handler:
        async def act(_: Request) -> Response:
            if controls is None:
                return JSONResponse(
                    {"error": "read-only: this dashboard serves a run folder, no bot to steer"},
                    status_code=409,
                )
            message = getattr(controls, name)()
            log.warning("dashboard: %s: %s", name, message)
            return JSONResponse({"ok": True, "control": name, "message": message})

        return act

    routes = [
        Route("/", index),
        Route("/api/status", guarded(status)),
        Route("/api/positions", guarded(positions)),
        Route("/api/orders", guarded(orders)),
        Route("/api/fills", guarded(fills)),
        Route("/api/stream", guarded(stream)),
        Route("/metrics", guarded(metrics)),
        *(
            Route(f"/api/{name}", guarded(control(name)), methods=["POST"])
            for name in ("pause", "resume", "stop", "rearm")
        ),
    ]
    return Starlette(routes=routes)
