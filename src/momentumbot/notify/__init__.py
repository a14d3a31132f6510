"""Alerts to the operator's phone or chat through Apprise (Telegram, Discord, ntfy, e-mail,
webhooks...), sent off the trading loop.

Owns: the alert kinds (`events`), the targets read from MOMENTUMBOT_NOTIFY_URLS or
`[notify] urls` and named by service, never by URL (`targets`), keeping secrets out of alerts
and logs (`scrub`), de-duplication and the per-minute cap (`limiter`), the worker thread with
its bounded queue and the connectivity-lost timer (`notifier`), and `momentumbot notify test`
(`cli`)."""

from momentumbot.notify.events import Alert, Event
from momentumbot.notify.notifier import Notifier, build_notifier

__all__ = ["Alert", "Event", "Notifier", "build_notifier"]
