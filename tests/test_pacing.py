"""The pacing rules and the phone power records on their own: the posting window in a real time
zone (wrapping past midnight, across a daylight-saving change), the settings that carry them,
and the on-time a phone's record adds up."""
from __future__ import annotations

import json
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from engine.pacing import PostingWindow, jitter, window_status
from engine.power import PhonePower, Power
from engine.rules import Day

from helpers import make_campaign, one_message, run_cli, settings

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, tz: ZoneInfo = BERLIN) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


def window(text: str) -> PostingWindow:
    w = PostingWindow.of(settings(posting_window=text, timezone="Europe/Berlin"))
    assert w is not None
    return w


@pytest.mark.parametrize("text, local, is_open", [
    ("09:00-23:30", "2026-12-01 08:59:59", False),
    ("09:00-23:30", "2026-12-01 09:00:00", True),
    ("09:00-23:30", "2026-12-01 23:29:59", True),
    ("09:00-23:30", "2026-12-01 23:30:00", False),
    ("20:00-02:00", "2026-12-01 23:00:00", True),
    ("20:00-02:00", "2026-12-02 01:59:00", True),
    ("20:00-02:00", "2026-12-02 02:00:00", False),
    ("20:00-02:00", "2026-12-01 19:59:00", False),
    ("00:00-24:00", "2026-12-01 03:00:00", True),
])
def test_window_open_or_closed(text, local, is_open):
    w = window(text)
    assert w.is_open(at(local), BERLIN) is is_open
    assert (w.opens_at(at(local), BERLIN) is None) is is_open


def test_opens_at_is_the_next_start_in_local_time():
    w = window("09:00-23:30")
    assert w.opens_at(at("2026-12-01 05:00:00"), BERLIN) == at("2026-12-01 09:00:00")
    assert w.opens_at(at("2026-12-01 23:45:00"), BERLIN) == at("2026-12-02 09:00:00")
    # the night the clocks go back (25 October 2026): still 09:00 on the wall, a 25-hour wait
    before = at("2026-10-24 23:45:00")
    opens = w.opens_at(before, BERLIN)
    assert datetime.fromtimestamp(opens, BERLIN).strftime("%H:%M") == "09:00"
    assert opens - at("2026-10-24 09:00:00") == 25 * 3600


def test_window_status_for_the_json():
    s = settings(posting_window="09:00-23:30", timezone="Europe/Berlin")
    closed = window_status(s, at("2026-12-01 06:00:00"))
    assert closed == {"window": "09:00-23:30", "open": False,
                      "opens_at": "2026-12-01T09:00:00+01:00"}
    assert window_status(settings(), 0.0) == {"window": None, "open": True, "opens_at": None}


def test_jitter_stays_within_its_bound():
    rng = random.Random(7)
    draws = [jitter(settings(jitter_seconds=30), rng) for _ in range(500)]
    assert all(0 <= d <= 30 for d in draws) and max(draws) > 25 and min(draws) < 5
    assert jitter(settings(), rng) == 0


@pytest.mark.parametrize("key, value, words", [
    ("posting_window", "9-17", "must be a time range"),
    ("posting_window", "10:00-10:00", "must be a time range"),
    ("posting_window", "25:00-26:00", "must be a time range"),
    ("min_gap_seconds", -1, "must be a number of seconds"),
    ("keep_phone_on_seconds", 1e9, "must be a number of seconds"),
    ("evidence_days", 0, "whole number of days"),
    ("check_videos", "yes", "true or false"),
    ("notify", {"webhook": "ftp://x"}, "'webhook': must be an http:// or https://"),
    ("notify", {"command": "alert.sh"}, "'command': must be a list of a program"),
    ("notify", {"command": ["a"], "events": ["run_exploded"]}, "'events': must be a list"),
    ("notify", {}, "needs a command, a webhook or both"),
])
def test_bad_pacing_settings_are_one_message_naming_the_line(campaigns_dir, key, value, words):
    root = make_campaign(campaigns_dir, "c", settings={"enabled": True, key: value})
    before = (root / "campaign.json").read_bytes()
    res = run_cli("--no-ui", "--campaign", "c", "--run", campaigns_dir=campaigns_dir)
    assert res.returncode == 1
    message = one_message(res, "campaign.json", words)
    # the line of the key the message names (an inner key of notify names its own line)
    named = message.split("key '")[1].split("'")[0]
    lines = json.dumps({"enabled": True, key: value}, indent=2).splitlines()
    line = next(i for i, text in enumerate(lines, 1) if f'"{named}"' in text)
    assert f"line {line}:" in message
    assert (root / "campaign.json").read_bytes() == before


def test_a_webhook_token_never_shows_in_the_settings_repr():
    s = settings(notify=None)
    from engine.settings import Notify
    s = settings(notify=Notify(webhook="https://hooks.example.com/T0/B0/SECRETTOKEN"))
    assert "SECRETTOKEN" not in repr(s)


def test_on_time_adds_up_across_a_job_and_is_cut_at_midnight(tmp_path):
    utc = ZoneInfo("UTC")
    now = [at("2026-12-01 23:59:50", utc)]
    power = PhonePower(tmp_path / "power", utc, clock=lambda: now[0])
    power.set_state("p1", Power.STARTING, worker_id="0")
    now[0] += 4
    power.set_state("p1", Power.ON, worker_id="0")
    now[0] += 2
    record = power.set_state("p1", Power.OFF)
    assert record.on_seconds == pytest.approx(6) and record.state == "off"
    power.set_state("p1", Power.STARTING, worker_id="1")
    now[0] += 10                                  # 00:00:06 of the next day
    record = power.read("p1")
    today = Day.of(now[0], utc)
    assert record.running and record.worker_id == "1"
    assert record.on_seconds_today(now[0], today) == pytest.approx(6)   # since midnight only
    power.post_ended("p1")
    assert power.read("p1").last_post_end == now[0]


def test_a_damaged_power_record_reads_as_off(tmp_path):
    power = PhonePower(tmp_path / "power", ZoneInfo("UTC"))
    power.set_state("p1", Power.ON)
    (tmp_path / "power" / "p1.json").write_text("{not json")
    assert power.read("p1").state == "off"
    assert power.set_state("p1", Power.STARTING).state == "starting"
