"""Alpha Vantage fetch against a real local HTTP server replaying the provider's answers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from momentumbot.cli import main
from momentumbot.config.schema import DataConfig
from momentumbot.data.alphavantage import (
    AlphaVantageFetcher,
    AlphaVantageSettings,
    FetchReport,
    classify_body,
    describe_stop,
    month_bounds_ns,
    months_between,
    parse_month_body,
    truncated_csv,
)
from momentumbot.data.importers import import_files
from momentumbot.data.manifest import FetchManifest
from momentumbot.data.store import BarStore
from momentumbot.domain.errors import ConfigError, DataError
from tests.data.av_replay import (
    INVALID_CALL,
    RATE_LIMIT_INFORMATION,
    RATE_LIMIT_NOTE,
    RECORDED_DIR,
    AvReplay,
    Behaviour,
    ReplayState,
    month_bodies,
)

KEY = "K3YZ-7Q9W-SECRET-41"
SYMBOLS = ["AAPL", "MSFT", "UGA"]
MONTHS = ["2019-01", "2019-02", "2019-03"]


@pytest.fixture(scope="module")
def bodies(shared_data: Path) -> dict[tuple[str, str], bytes]:
    return month_bodies(shared_data, [*SYMBOLS, "SPY"])


@pytest.fixture
def replay(bodies: dict[tuple[str, str], bytes]) -> Iterator[AvReplay]:
    with AvReplay(ReplayState(dict(bodies), KEY)) as server:
        yield server


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_fetcher(
    store: BarStore, url: str, sleeps: Sleeps | None = None, **kw: object
) -> AlphaVantageFetcher:
    settings = AlphaVantageSettings(
        api_key=KEY,
        base_url=url,
        requests_per_minute=float(kw.pop("rpm", 600_000.0)),  # type: ignore[arg-type]
        retries=int(kw.pop("retries", 3)),  # type: ignore[call-overload]
        backoff_seconds=2.0,
        timeout_seconds=5.0,
    )
    return AlphaVantageFetcher(
        settings,
        store,
        sleep=sleeps if sleeps is not None else Sleeps(),
        **kw,  # type: ignore[arg-type]
    )


def contents(store: BarStore) -> dict[str, pd.DataFrame]:
    return {s: store.read(s) for s in store.symbols()}


def assert_same_store(a: BarStore, b: BarStore) -> None:
    ca, cb = contents(a), contents(b)
    assert sorted(ca) == sorted(cb)
    for sym in ca:
        pd.testing.assert_frame_equal(ca[sym], cb[sym])


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, bodies: dict[tuple[str, str], bytes]
) -> BarStore:
    """Every symbol-month fetched in one clean run (the expected end state of any resumed run)."""
    ref = BarStore(tmp_path_factory.mktemp("reference"))
    with AvReplay(ReplayState(dict(bodies), KEY)) as server:
        report = make_fetcher(ref, server.url).fetch(SYMBOLS, MONTHS)
    assert report.stop_kind is None and not report.failed and len(report.fetched) == 9
    return ref


# ---- the happy path


def test_multi_symbol_multi_month_fetch(
    replay: AvReplay, store: BarStore, shared_data: Path, tmp_path: Path
) -> None:
    report = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    assert report.stop_kind is None and not report.failed
    assert [(r.symbol, r.month) for r in report.fetched] == [
        (s, m) for s in SYMBOLS for m in MONTHS
    ]
    assert report.requests == 9 and report.retries == 0
    # one request per symbol and month, with the documented parameters
    for params in replay.state.requests:
        assert params["function"] == "TIME_SERIES_INTRADAY"
        assert params["interval"] == "1min" and params["outputsize"] == "full"
        assert params["datatype"] == "csv" and params["extended_hours"] == "false"
        assert params["adjusted"] == "true"
        assert params["apikey"] == KEY
    assert sorted(replay.state.csv_requests()) == sorted((s, m) for s in SYMBOLS for m in MONTHS)
    # 2019-02 is exactly what importing the provider's own file gives
    direct = BarStore(tmp_path / "direct")
    import_files(
        direct,
        [shared_data / RECORDED_DIR / f"{s}_1min.csv.gz" for s in SYMBOLS],
        fmt="alphavantage",
    )
    lo, hi = month_bounds_ns("2019-02")
    for sym in SYMBOLS:
        got = store.read(sym, lo, hi)
        pd.testing.assert_frame_equal(got, direct.read(sym))
        assert got["ts"].iloc[0] == pd.Timestamp("2019-02-11 14:30", tz="UTC")  # 09:30 New York
        # each month holds its week; March is after the DST change (13:30 UTC = 09:30 New York)
        assert store.read(sym).shape[0] == 3 * direct.read(sym).shape[0]
    march = store.read("AAPL", *month_bounds_ns("2019-03"))
    assert march["ts"].iloc[0] == pd.Timestamp("2019-03-11 13:30", tz="UTC")
    rows = {r.month: r for r in report.fetched if r.symbol == "AAPL"}
    assert rows["2019-02"].label == "end" and rows["2019-02"].bars == rows["2019-02"].added == 1948
    manifest = FetchManifest(store.root, "alphavantage")
    entry = manifest.get("AAPL", "2019-02")
    assert entry is not None and entry["complete"] and entry["bars"] == 1948


def test_rerun_skips_everything_already_stored(replay: AvReplay, store: BarStore) -> None:
    make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    report = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    assert report.requests == 0 and len(report.skipped) == 9 and not report.fetched


def test_rate_gate_spaces_requests(replay: AvReplay, store: BarStore) -> None:
    now = [0.0]
    sleeps = Sleeps()

    def sleep(s: float) -> None:
        sleeps.append(s)
        now[0] += s

    f = make_fetcher(store, replay.url, sleeps=None, rpm=30.0, clock=lambda: now[0])
    f._sleep = sleep
    f.fetch(["AAPL"], MONTHS)
    assert sleeps == [2.0, 2.0]  # 30 a minute: two seconds apart, none before the first


# ---- failures: nothing lost, nothing duplicated


def test_rate_limit_midway_then_rerun_fetches_only_what_is_missing(
    replay: AvReplay, store: BarStore, reference: BarStore
) -> None:
    replay.state.limit_after = 4
    first = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    assert first.stop_kind == "rate_limit"
    assert len(first.fetched) == 4 and len(first.not_fetched) == 5 and first.requests == 5
    assert "25 requests per day" in first.stop_reason
    message = describe_stop(first)
    assert "Fetched 4 of 9" in message and "run the same command again later" in message
    assert "UGA 2019-03" in message
    stored_after_first = contents(store)

    replay.state.limit_after = None  # the next day
    replay.state.requests.clear()
    second = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    assert second.stop_kind is None and len(second.skipped) == 4 and len(second.fetched) == 5
    assert replay.state.csv_requests() == first.not_fetched  # only the missing months
    assert all(r.unchanged == 0 for r in second.fetched)
    for sym, frame in stored_after_first.items():  # every bar stored earlier is still there
        now = store.read(sym)
        kept = now[now["ts"].isin(frame["ts"])].reset_index(drop=True)
        pd.testing.assert_frame_equal(kept, frame)
    assert_same_store(store, reference)


def test_note_answer_is_a_rate_limit_too(replay: AvReplay, store: BarStore) -> None:
    replay.state.scripted[("MSFT", "2019-01")] = [Behaviour("json", RATE_LIMIT_NOTE)]
    report = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    assert report.stop_kind == "rate_limit" and "5 calls per minute" in report.stop_reason
    assert [(r.symbol, r.month) for r in report.fetched] == [("AAPL", m) for m in MONTHS]


def test_premium_note_is_a_refusal_not_a_rate_limit(replay: AvReplay, store: BarStore) -> None:
    premium = {
        "Information": "Thank you for using Alpha Vantage! This is a premium endpoint. You may "
        "subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to "
        "instantly unlock all premium endpoints"
    }
    replay.state.scripted[("AAPL", "2019-01")] = [Behaviour("json", premium)]
    report = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    assert report.stop_kind == "refused" and "premium endpoint" in report.stop_reason
    assert "change the plan or the options" in describe_stop(report)


def test_error_answer_for_a_bad_symbol(
    replay: AvReplay, store: BarStore, reference: BarStore
) -> None:
    report = make_fetcher(store, replay.url).fetch(["AAPL", "NOPE", "MSFT", "UGA"], MONTHS)
    assert report.stop_kind is None
    assert list(report.failed) == ["NOPE"]
    assert "Invalid API call" in report.failed["NOPE"]
    # one request for NOPE, its other months not tried; every other symbol complete
    assert replay.state.csv_requests().count(("NOPE", "2019-01")) == 1
    assert ("NOPE", "2019-02") not in replay.state.csv_requests()
    assert report.not_fetched == [("NOPE", m) for m in MONTHS]
    assert not store.has("NOPE")
    assert_same_store(store, reference)


def test_network_failures_are_retried_with_backoff(
    replay: AvReplay, store: BarStore, reference: BarStore
) -> None:
    replay.state.scripted[("AAPL", "2019-02")] = [Behaviour("drop"), Behaviour("status")]
    replay.state.scripted[("MSFT", "2019-03")] = [Behaviour("drop")]
    sleeps = Sleeps()
    report = make_fetcher(store, replay.url, sleeps=sleeps).fetch(SYMBOLS, MONTHS)
    assert report.stop_kind is None and not report.failed and len(report.fetched) == 9
    assert report.retries == 3 and report.requests == 12
    backoffs = [s for s in sleeps if s >= 1.0]
    assert backoffs == [2.0, 4.0, 2.0]  # doubling per request, reset for the next one
    assert_same_store(store, reference)


@pytest.mark.parametrize("kind", ["cut-transport", "cut-body"])
def test_truncated_body_is_retried_and_never_stored(
    kind: str, replay: AvReplay, store: BarStore, reference: BarStore
) -> None:
    replay.state.scripted[("MSFT", "2019-02")] = [Behaviour(kind, keep=0.53)]
    report = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    assert report.retries == 1 and report.stop_kind is None and len(report.fetched) == 9
    assert_same_store(store, reference)


def test_persistent_failure_stops_cleanly_and_resumes(
    replay: AvReplay, store: BarStore, reference: BarStore
) -> None:
    replay.state.scripted[("MSFT", "2019-02")] = [Behaviour("cut-transport")] * 4
    first = make_fetcher(store, replay.url, retries=3).fetch(SYMBOLS, MONTHS)
    assert first.stop_kind == "network" and "gave up after 4 attempts" in first.stop_reason
    assert [(r.symbol, r.month) for r in first.fetched] == [
        ("AAPL", "2019-01"), ("AAPL", "2019-02"), ("AAPL", "2019-03"), ("MSFT", "2019-01"),
    ]  # fmt: skip
    lo, hi = month_bounds_ns("2019-02")
    assert store.read("MSFT", lo, hi).empty  # no part of the cut month
    second = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    assert second.stop_kind is None and len(second.skipped) == 4
    assert_same_store(store, reference)


def test_month_fetched_while_running_is_fetched_again(replay: AvReplay, store: BarStore) -> None:
    inside_march = int(pd.Timestamp("2019-03-20 12:00", tz="UTC").value)
    first = make_fetcher(store, replay.url, now_ns=lambda: inside_march).fetch(["AAPL"], MONTHS)
    assert len(first.fetched) == 3
    entry = FetchManifest(store.root, "alphavantage").get("AAPL", "2019-03")
    assert entry is not None and not entry["complete"]
    replay.state.requests.clear()
    second = make_fetcher(store, replay.url).fetch(["AAPL"], MONTHS)
    assert replay.state.csv_requests() == [("AAPL", "2019-03")]
    (again,) = second.fetched
    assert again.added == 0 and again.unchanged == again.bars > 0  # merged, not duplicated


def test_refresh_and_a_change_of_adjustment_fetch_again(replay: AvReplay, store: BarStore) -> None:
    make_fetcher(store, replay.url).fetch(["AAPL"], ["2019-02"])
    replay.state.requests.clear()
    again = make_fetcher(store, replay.url).fetch(["AAPL"], ["2019-02"], refresh=True)
    assert len(again.fetched) == 1 and again.fetched[0].unchanged == 1948
    raw = make_fetcher(store, replay.url).fetch(["AAPL"], ["2019-02"], adjusted=False)
    assert len(raw.fetched) == 1 and replay.state.requests[-1]["adjusted"] == "false"
    entry = FetchManifest(store.root, "alphavantage").get("AAPL", "2019-02")
    assert entry is not None and entry["adjusted"] is False
    assert store.info("AAPL").rows == 1948


def test_store_file_lost_means_fetch_again(replay: AvReplay, store: BarStore) -> None:
    make_fetcher(store, replay.url).fetch(["AAPL", "MSFT"], ["2019-02"])
    store.path("AAPL").unlink()
    replay.state.requests.clear()
    report = make_fetcher(store, replay.url).fetch(["AAPL", "MSFT"], ["2019-02"])
    assert replay.state.csv_requests() == [("AAPL", "2019-02")]
    assert report.skipped == [("MSFT", "2019-02")] and store.info("AAPL").rows == 1948


def test_answer_that_differs_from_stored_bars_is_refused(
    replay: AvReplay, store: BarStore, bodies: dict[tuple[str, str], bytes]
) -> None:
    make_fetcher(store, replay.url).fetch(["AAPL"], ["2019-02"])
    before = store.read("AAPL")
    lines = bodies[("AAPL", "2019-02")].decode().splitlines()
    stamp, o, h, lo_, c, v = lines[5].split(",")
    lines[5] = ",".join([stamp, o, h, lo_, c, str(int(v) + 1)])
    replay.state.bodies[("AAPL", "2019-03")] = bodies[("AAPL", "2019-03")]
    replay.state.bodies[("AAPL", "2019-02")] = "\n".join(lines).encode()
    manifest = FetchManifest(store.root, "alphavantage")
    manifest.put("AAPL", "2019-02", {"complete": False})  # as if fetched mid-month
    report = make_fetcher(store, replay.url).fetch(["AAPL"], ["2019-02", "2019-03"])
    assert "differs from the stored AAPL bar" in report.failed["AAPL"]
    assert "--replace" in report.failed["AAPL"]
    pd.testing.assert_frame_equal(store.read("AAPL"), before)
    replaced = make_fetcher(store, replay.url).fetch(["AAPL"], ["2019-02"], replace=True)
    assert replaced.fetched[0].added == 1


def test_refused_key_stops_at_once(replay: AvReplay, store: BarStore) -> None:
    replay.state.api_key = "another"
    report = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS)
    assert report.stop_kind == "api_key" and report.requests == 1
    assert "fix ALPHAVANTAGE_API_KEY" in describe_stop(report)


def test_request_budget_stops_cleanly(replay: AvReplay, store: BarStore) -> None:
    report = make_fetcher(store, replay.url).fetch(SYMBOLS, MONTHS, max_requests=2)
    assert report.stop_kind == "budget" and len(report.fetched) == 2 and report.requests == 2


# ---- the key never shows


def test_key_never_appears_in_logs_output_or_errors(
    replay: AvReplay,
    store: BarStore,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx, httpcore and ours, at their most talkative
    replay.state.scripted[("AAPL", "2019-01")] = [Behaviour("drop")]
    replay.state.scripted[("AAPL", "2019-02")] = [Behaviour("cut-transport")]
    report = make_fetcher(store, replay.url, retries=1).fetch(["AAPL", "NOPE"], MONTHS)
    texts = [describe_stop(report), repr(report), str(report.failed)]
    # the CLI: a rate limit, a bad symbol, the table and the messages
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", KEY)
    monkeypatch.setenv("ALPHAVANTAGE_BASE_URL", replay.url)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\nalphavantage_requests_per_minute = 100000.0\n")
    replay.state.limit_after = replay.state.served + 2
    args = ["data", "fetch", "--symbols", "NOPE,MSFT,UGA", "--from", "2019-01", "--to", "2019-03"]
    code = main([*args, "--store", str(tmp_path / "s2"), "--config", str(cfg)])
    out, err = capsys.readouterr()
    assert code == 4 and "rate limit" in err
    settings = AlphaVantageSettings.from_config(DataConfig(), {"ALPHAVANTAGE_API_KEY": KEY})
    texts += [out, err, repr(settings), str(settings)]
    assert caplog.records and any("127.0.0.1" in r.getMessage() for r in caplog.records)
    assert KEY not in caplog.text
    for text in texts:
        assert KEY not in text
    assert any(r.get("apikey") == KEY for r in replay.state.requests)  # it did go on the wire


# ---- the CLI


def test_cli_fetch_stops_on_the_limit_and_resumes(
    replay: AvReplay,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ALPHAVANTAGE_API_KEY", KEY)
    monkeypatch.setenv("ALPHAVANTAGE_BASE_URL", replay.url)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[data]\nalphavantage_requests_per_minute = 100000.0\n")
    store = tmp_path / "store"
    args = ["data", "fetch", "--symbols", "aapl,msft", "--from", "2019-01", "--to", "2019-02"]
    args += ["--store", str(store), "--config", str(cfg)]
    replay.state.limit_after = 3
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 4
    assert "Fetched 3 of 4 symbol-months" in err and "MSFT 2019-02" in err
    assert "AAPL" in out and "3 symbol-months fetched" in out
    replay.state.limit_after = None
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 symbol-months fetched, 3 already stored" in out
    assert BarStore(store).symbols() == ["AAPL", "MSFT"]


def test_cli_fetch_needs_a_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALPHAVANTAGE_API_KEY", raising=False)
    code = main(["data", "fetch", "--symbols", "AAPL", "--from", "2024-01", "--to", "2024-01",
                 "--store", str(tmp_path)])  # fmt: skip
    _, err = capsys.readouterr()
    assert code == 2 and "ALPHAVANTAGE_API_KEY" in err
    code = main(["data", "fetch", "--symbols", "AAPL", "--from", "2024-1", "--to", "2024-01"])
    _, err = capsys.readouterr()
    assert code == 2 and "YYYY-MM" in err


# ---- pieces


def test_settings_environment_wins_over_config() -> None:
    cfg = DataConfig.model_validate(
        {"alphavantage_api_key": "from-config", "alphavantage_base_url": "https://mirror/q"}
    )
    s = AlphaVantageSettings.from_config(cfg, {})
    assert s.api_key == "from-config" and s.base_url == "https://mirror/q"
    s = AlphaVantageSettings.from_config(
        cfg, {"ALPHAVANTAGE_API_KEY": "from-env", "ALPHAVANTAGE_BASE_URL": "http://127.0.0.1:9/q"}
    )
    assert s.api_key == "from-env" and s.base_url == "http://127.0.0.1:9/q"
    assert "from-env" not in repr(s)
    with pytest.raises(ConfigError, match="not an http"):
        AlphaVantageSettings.from_config(cfg, {"ALPHAVANTAGE_BASE_URL": "ftp://x"})


def test_months() -> None:
    assert months_between("2023-11", "2024-02") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    with pytest.raises(ConfigError, match="after"):
        months_between("2024-02", "2024-01")
    with pytest.raises(ConfigError, match="YYYY-MM"):
        months_between("2024-13", "2024-12")
    lo, hi = month_bounds_ns("2024-03")
    assert pd.Timestamp(lo, tz="UTC") == pd.Timestamp("2024-03-01 05:00", tz="UTC")
    assert pd.Timestamp(hi, tz="UTC") == pd.Timestamp("2024-04-01 04:00", tz="UTC")  # EDT


def test_classify_the_documented_answers() -> None:
    for doc in (RATE_LIMIT_NOTE, RATE_LIMIT_INFORMATION):
        assert classify_body(json.dumps(doc).encode())[0] == "rate_limit"
    kind, text = classify_body(json.dumps(INVALID_CALL, indent=4).encode())
    assert kind == "error" and text.startswith("Invalid API call")
    assert classify_body(b"timestamp,open,high,low,close,volume\n")[0] == "csv"
    assert classify_body(b'{"Meta Data": {}}')[0] == "unexpected"
    assert not truncated_csv(
        b"timestamp,open,high,low,close,volume\r\n2024-01-02 09:30:00,1,1,1,1,5\r\n"
    )
    assert truncated_csv(b"timestamp,open,high,low,close,volume\n2024-01-02 09:30:00,1,1,1")
    assert truncated_csv(b"timestamp,open,high,low,close,volume\n2024-01-02 09:30:00,1,1,1,1,")
    assert truncated_csv(b"")


def _extended_body(label: str) -> bytes:
    """A day of extended-hours bars (04:00-20:00 New York), newest first, like the provider."""
    starts = pd.date_range("2024-01-03 04:00", "2024-01-03 19:59", freq="min")
    stamps = starts + (pd.Timedelta(minutes=1) if label == "end" else pd.Timedelta(0))
    rows = [f"{t:%Y-%m-%d %H:%M:%S},10.0,10.5,9.5,10.2,{100 + i}" for i, t in enumerate(stamps)]
    return ("timestamp,open,high,low,close,volume\n" + "\n".join(reversed(rows))).encode()


@pytest.mark.parametrize("label", ["start", "end"])
def test_extended_hours_answers_are_normalised_to_start_labels(label: str) -> None:
    bars = parse_month_body(_extended_body(label), "XYZ", "2024-01", extended_hours=True)
    assert bars is not None and bars.label == label
    ts = bars.bars["ts"].sort_values()
    assert ts.iloc[0] == pd.Timestamp("2024-01-03 09:00", tz="UTC")  # 04:00 New York
    assert ts.iloc[-1] == pd.Timestamp("2024-01-04 00:59", tz="UTC")  # 19:59 New York
    assert np.all(np.diff(ts.astype("int64").to_numpy()) == 60_000_000_000)


def test_bad_bar_in_an_answer_names_symbol_and_month() -> None:
    body = b"timestamp,open,high,low,close,volume\n2024-01-03 09:31:00,10,9,11,10,5\n"
    with pytest.raises(DataError, match=r"Alpha Vantage XYZ 2024-01: line 2: low is above high"):
        parse_month_body(body, "XYZ", "2024-01", extended_hours=False, label="end")
    assert parse_month_body(b"timestamp,open,high,low,close,volume\r\n", "X", "2024-01",
                            extended_hours=False) is None  # fmt: skip


def test_report_counts() -> None:
    r = FetchReport(skipped=[("A", "2024-01")], not_fetched=[("A", "2024-02")])
    assert r.planned == 2
