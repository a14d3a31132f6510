"""[notify] in the config: URLs are secrets (from the environment; never written back), the
event names match the kinds the notifier sends, a URL Apprise cannot use is refused."""

from __future__ import annotations

from typing import get_args

import pytest

from momentumbot.config.loader import config_to_toml, parse_config
from momentumbot.config.schema import NotifyEventName
from momentumbot.domain.errors import ConfigError
from momentumbot.notify import Event, build_notifier
from momentumbot.notify.scrub import Scrubber
from momentumbot.notify.targets import split_urls


def test_event_names_in_the_config_are_the_notifier_kinds() -> None:
    assert set(get_args(NotifyEventName)) == {e.value for e in Event}
    assert parse_config({}).notify.events == [e.value for e in Event]  # all by default
    with pytest.raises(ConfigError, match=r"notify\.events"):
        parse_config({"notify": {"events": ["run_started", "lunch"]}})


def test_urls_in_the_file_work_with_a_warning_and_are_never_written_back() -> None:
    cfg = parse_config({"notify": {"urls": ["tgram://123456789:AAHsecretBotToken/987654"]}})
    n = build_notifier(cfg, {})
    assert [t.service for t in n.targets] == ["Telegram"]
    assert "[notify] urls: 1 notification URL(s) written in the config file" in n.warnings[0]
    assert "AAHsecretBotToken" not in " ".join(n.warnings)
    text = config_to_toml(cfg)
    assert "AAHsecretBotToken" not in text and "urls" not in text
    assert "AAHsecretBotToken" not in repr(cfg)


def test_the_environment_wins_over_the_file() -> None:
    cfg = parse_config({"notify": {"urls": ["tgram://123456789:AAHsecretBotToken/987654"]}})
    n = build_notifier(cfg, {"MOMENTUMBOT_NOTIFY_URLS": "ntfy://mytopic-xyz discord://11/tok"})
    assert [t.service for t in n.targets] == ["ntfy", "Discord"]
    assert "MOMENTUMBOT_NOTIFY_URLS is set and wins" in n.warnings[0]


def test_a_url_apprise_cannot_use_is_a_config_error_without_the_url() -> None:
    with pytest.raises(ConfigError) as err:
        build_notifier(parse_config({}), {"MOMENTUMBOT_NOTIFY_URLS": "ntfy://t foo://sekrit-tok"})
    assert "entry 2 (scheme foo://)" in str(err.value) and "sekrit" not in str(err.value)


def test_urls_split_on_whitespace_and_on_commas_before_a_scheme() -> None:
    raw = "tgram://1:a/2,discord://3/b\n ntfy://t , mailto://u:p@x.org?to=a@y.org,b@y.org"
    assert split_urls(raw) == [
        "tgram://1:a/2", "discord://3/b", "ntfy://t", "mailto://u:p@x.org?to=a@y.org,b@y.org",
    ]  # fmt: skip


def test_the_scrubber_masks_the_url_and_its_token_like_pieces() -> None:
    s = Scrubber(["discord://112233445566/TokenABCdef"], ["dash-secret"])
    out = s("id 112233445566 token TokenABCdef dash-secret https://bob:pw1@h.org/x discord")
    assert out == "id *** token *** *** https://***@h.org/x discord"


def test_a_wrong_value_for_the_urls_is_refused_without_showing_it() -> None:
    with pytest.raises(ConfigError) as err:
        parse_config({"notify": {"urls": "tgram://123456789:AAHsecretBotToken/987654"}})
    assert "key 'notify.urls'" in str(err.value) and "AAHsecretBotToken" not in str(err.value)
    assert "(the value is a secret: not shown)" in str(err.value)
