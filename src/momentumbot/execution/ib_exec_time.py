"""Execution times as IB writes them, read with the rule of each format (ib_async would read a
time without a zone in the host's local zone): the raw text of every execDetails is kept, by
execution id, from a hook on ib_async's decoder.

The formats (server version 178):
  "20240103 09:35:00 America/New_York"  zoned: that zone;
  "20240103-14:35:00"                   dash: UTC (live accounts);
  "20240103  09:35:00" / "... 09:35:00" no zone: the TWS login time zone (`tws_timezone`);
  "1704292500"                          epoch seconds.
A local time that does not exist (the spring-forward hour) is read with the offset before the
change; one that happens twice (the fall-back hour) is the first of the two."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from momentumbot.domain.units import NS

log = logging.getLogger("momentumbot.trade")

EXEC_DETAILS = 11  # the TWS API message id of execDetails
_EXEC_ID, _TIME = 14, 15  # their fields (after the message id and request id, the contract)


def tws_zone(name: str) -> ZoneInfo:
    """The TWS login time zone of a setting; ValueError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def parse_exec_time(text: str, tws: ZoneInfo) -> int:
    """UTC nanoseconds of one execution time as IB wrote it; ValueError if unreadable."""
    s = text.strip()
    if s.isdigit():
        return int(s) * NS
    if "-" in s and " " not in s:  # yyyymmdd-hh:mm:ss: UTC
        return _ns(dt.datetime.strptime(s, "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.UTC))
    parts = s.split()
    if len(parts) == 3:  # yyyymmdd hh:mm:ss Zone/Name
        zone = tws_zone(parts[2])
    elif len(parts) == 2:  # no zone: the TWS login time zone
        zone = tws
    else:
        raise ValueError(f"unreadable execution time {text!r}")
    text_time = parts[0] + " " + parts[1]
    return _ns(dt.datetime.strptime(text_time, "%Y%m%d %H:%M:%S").replace(tzinfo=zone, fold=0))


def _ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * NS + t.microsecond * 1000


class ExecTimes:
    """The raw execution times of one ib_async connection, read with `parse_exec_time`."""

    def __init__(self, tws: ZoneInfo) -> None:
        self.tws = tws
        self.raw: dict[str, str] = {}  # exec id -> time as IB wrote it

    def hook(self, decoder: Any) -> None:
        """Keep the raw time of every execDetails the decoder reads (then let it decode)."""
        handlers = decoder.handlers
        decode: Callable[[list[str]], None] = handlers[EXEC_DETAILS]

        def exec_details(fields: list[str]) -> None:
            if len(fields) > _TIME:
                self.raw[fields[_EXEC_ID]] = fields[_TIME]
            decode(fields)

        handlers[EXEC_DETAILS] = exec_details

    def time_ns(self, exec_id: str, fallback: dt.datetime | None) -> int:
        """The execution's time from its raw text (ib_async's reading if there is none)."""
        text = self.raw.get(exec_id)
        if text is not None:
            try:
                return parse_exec_time(text, self.tws)
            except ValueError:
                log.warning("execution %s: unreadable time %r; using ib_async's", exec_id, text)
        return _ns(fallback) if fallback is not None else 0
