"""Where alerts go: Apprise URLs from MOMENTUMBOT_NOTIFY_URLS (which wins) or `[notify] urls`,
each made into one Apprise service. A target is named by its service (Telegram, Discord,
ntfy, JSON...), never by its URL: the URL holds the token."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from momentumbot.config.schema import NOTIFY_URLS_ENV, NotifyConfig
from momentumbot.domain.errors import ConfigError

# whitespace separates URLs; so does a comma, where a new scheme:// follows it (a comma
# inside one URL, as in mailto://...?to=a@x.com,b@y.com, stays)
_SPLIT = re.compile(r"\s+|,(?=\s*[a-zA-Z][a-zA-Z0-9+.-]*://)|,\s*$")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]{0,24})://")


def split_urls(raw: str) -> list[str]:
    return [u.strip().strip(",") for u in _SPLIT.split(raw) if u and u.strip().strip(",")]


def scheme_of(url: str) -> str:
    """The URL's scheme (safe to show), or "" when it has none."""
    m = _SCHEME.match(url.strip())
    return m.group(1).lower() if m else ""


@dataclass(frozen=True)
class Sources:
    """The URLs to use, where they came from, and what the operator should be told."""

    urls: list[str]
    source: str  # "MOMENTUMBOT_NOTIFY_URLS", "[notify] urls" or "" (none)
    warnings: list[str] = field(default_factory=list)


def read_urls(cfg: NotifyConfig, env: Mapping[str, str]) -> Sources:
    in_file = [u.get_secret_value().strip() for u in cfg.urls if u.get_secret_value().strip()]
    from_env = split_urls(env.get(NOTIFY_URLS_ENV, ""))
    warnings = []
    if in_file:
        warnings.append(
            f"[notify] urls: {len(in_file)} notification URL(s) written in the config file; "
            f"they hold tokens: set {NOTIFY_URLS_ENV} in the environment instead"
            + (f" ({NOTIFY_URLS_ENV} is set and wins)" if from_env else "")
        )
    if from_env:
        return Sources(from_env, NOTIFY_URLS_ENV, warnings)
    if in_file:
        return Sources(in_file, "[notify] urls", warnings)
    return Sources([], "", warnings)


@dataclass
class Target:
    """One alert destination: an Apprise service made from one URL."""

    number: int  # 1-based position in its list
    service: str  # Apprise's name of the service: "Telegram", "Discord", "JSON"...
    scheme: str
    plugin: Any  # apprise.NotifyBase

    @property
    def label(self) -> str:
        return f"target {self.number} ({self.service}, {self.scheme}://)"

    def send(self, title: str, body: str, severity: str) -> bool:
        """Send one message; whether the service took it (Apprise logs why not)."""
        return bool(self.plugin.notify(title=title, body=body, notify_type=severity))


def make_targets(sources: Sources, timeout_seconds: float) -> list[Target]:
    """One Target per URL; a URL Apprise cannot use is a config error naming its position
    and scheme, never the URL."""
    if not sources.urls:
        return []
    with warnings.catch_warnings():
        # Apprise loads its plugins on first use; one imports the deprecated imghdr
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        asset = apprise.AppriseAsset(
            app_id="momentumbot", app_desc="momentumbot alerts", storage_mode="memory"
        )
        plugins = [
            apprise.Apprise.instantiate(url, asset=asset) if scheme_of(url) else None
            for url in sources.urls
        ]
    targets = []
    for n, (url, plugin) in enumerate(zip(sources.urls, plugins, strict=True), 1):
        scheme = scheme_of(url)
        if plugin is None:
            what = f"scheme {scheme}://" if scheme else "no scheme://"
            raise ConfigError(
                f"{sources.source}: entry {n} ({what}) is not a notification URL Apprise "
                "can use; see docs/notify.md for the URL forms"
            )
        plugin.socket_connect_timeout = timeout_seconds
        plugin.socket_read_timeout = timeout_seconds
        targets.append(Target(n, str(plugin.service_name), scheme, plugin))
    return targets
