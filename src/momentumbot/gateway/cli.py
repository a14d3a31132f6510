"""`momentumbot gateway`: run the simulated TWS gateway."""

from __future__ import annotations

import typer


def gateway_command() -> None:
    """Run the simulated IB gateway (TWS API on loopback) over bars from the store."""
    raise typer.BadParameter("the simulated gateway is not built yet")
