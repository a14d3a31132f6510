"""How the gateway writes execution and completed-order times: the formats IB uses at server
version 178 (`exec-time-format=zoned|utc-dash|naive-local`), naive-local in the TWS login time
zone of the gateway's `tws_timezone` setting."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from momentumbot.domain.units import NS

ZONED = "zoned"
UTC_DASH = "utc-dash"
NAIVE_LOCAL = "naive-local"
EXEC_TIME_FORMATS = (ZONED, UTC_DASH, NAIVE_LOCAL)
DEFAULT_TWS_TIMEZONE = "America/New_York"


def format_exec_time(ns: int, fmt: str, tws_zone: ZoneInfo) -> str:
    """One execution time as IB sends it in `fmt`:
    zoned        "20240103 09:35:00 America/New_York" (the TWS zone named),
    utc-dash     "20240103-14:35:00" (UTC, as a live account at server version 178),
    naive-local  "20240103  09:35:00" (no zone: the TWS login time zone)."""
    t = dt.datetime.fromtimestamp(ns / NS, tz=dt.UTC)
    if fmt == UTC_DASH:
        return t.strftime("%Y%m%d-%H:%M:%S")
    local = t.astimezone(tws_zone)
    if fmt == NAIVE_LOCAL:
        return local.strftime("%Y%m%d  %H:%M:%S")
    return local.strftime("%Y%m%d %H:%M:%S") + f" {tws_zone.key}"


def tws_zone(name: str) -> ZoneInfo:
    """The TWS time zone of a setting; ValueError for a name the tz database does not know."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use a tz database name such as {DEFAULT_TWS_TIMEZONE})"
        ) from None
