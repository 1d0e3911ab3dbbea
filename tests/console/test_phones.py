"""What the farm costs and how it is paced, on screen: each phone's power and on-time today in
the phones panel (phones no worker drives included), a closed posting window in the header, and
an account waiting on its phone's gap in the accounts panel. Real campaign folders, real power
records written by the engine's PhonePower, a frozen clock (pilot tests)."""
from __future__ import annotations

from datetime import timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from console.app import PostdeckApp
from console.widgets.accounts import AccountRows
from console.widgets.fmt import opens_text
from console.widgets.live_table import LiveTable
from console.widgets.status_line import StatusLine
from console.widgets.workers import PHONE_KEY
from engine import columns as C
from engine.accounts import AVAILABLE, AccountState
from engine.context import PostingContext
from engine.status import campaign_status
from engine.tracker import serialize

from console_fixtures import (
    T0, async_test, fake_alive, frozen_clock, heartbeat, iso, job, next_frame, power,
    screen_text, until_notified, write_campaign)

PHONES = [("ana.posts", "phone-a"), ("ben.clips", "phone-b"), ("cleo.daily", "phone-c")]


def campaign(tmp_path: Path, **settings) -> tuple[Path, PostingContext]:
    """`farm`: three accounts on three phones, a pending job each, no run."""
    d = tmp_path / "campaigns"
    root = write_campaign(d / "farm", PHONES, 3, {"timezone": "UTC", **settings})
    (root / "progress.csv").write_bytes(serialize(
        [job(root, i, account, phone, C.PENDING) for i, (account, phone) in enumerate(PHONES)]))
    return d, PostingContext.for_campaign(d, "farm")


def app_on(d: Path) -> PostdeckApp:
    return PostdeckApp(d, "farm", clock=frozen_clock, pid_alive=fake_alive,
                       poll_interval=3600, blink=False)


def cells(table: LiveTable, key: str, *columns: str) -> tuple[str, ...]:
    return tuple(table.get_cell(key, c) for c in columns)


def tone(table: LiveTable, key: str, column: str) -> str | None:
    cell = table._rows[key][table._column_index(column)]
    return None if isinstance(cell, str) else cell[1]


@async_test
async def test_a_phone_left_on_shows_in_the_phones_panel(tmp_path):
    """No run, no worker: a phone whose record says on (a crash left it on) is listed, on, with
    its on-time today; a phone that was on earlier today is listed off with its time, and one
    that was off all day (phone-a) is not listed."""
    d, ctx = campaign(tmp_path)
    power(ctx, "phone-b", [(T0 - 900, "starting", "3"), (T0 - 880, "on", "3")])
    power(ctx, "phone-c", [(T0 - 3600, "on", "1"), (T0 - 3300, "off", "")])
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        phones = app.dashboard.query_one("#workers", LiveTable)
        # the one still on first: it bills with nobody driving it
        assert phones.visible_keys == [PHONE_KEY + p for p in ("phone-b", "phone-c")]
        b = PHONE_KEY + "phone-b"
        assert cells(phones, b, "phone", "power", "on_today", "state") == (
            "phone-b", "on", "15m00s", "no worker")
        assert tone(phones, b, "power") == "busy" and tone(phones, b, "state") == "warn"
        c = PHONE_KEY + "phone-c"
        assert cells(phones, c, "power", "on_today", "state") == ("off", "5m00s", "")
        assert tone(phones, c, "power") == "dim"
        assert "15m00s" in screen_text(app)
        # enter on a phone no worker drives says so (there is no job to open)
        app.dashboard.activate(1)
        phones.move_to_key(b)
        await pilot.press("enter")
        await until_notified(pilot, "no worker drives phone-b now")


@async_test
async def test_a_workers_phone_shows_its_power_and_narrow_keeps_it(tmp_path):
    """A worker's row carries its phone's power; on 80 columns the ports, pid and account go,
    the power and on-time stay."""
    d, ctx = campaign(tmp_path)
    heartbeat(ctx, 0, 5100, "phone-a", "posting", "clip_000.mp4_farm", "ana.posts", 1.0)
    power(ctx, "phone-a", [(T0 - 65, "starting", "0"), (T0 - 45, "on", "0")])
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        phones = app.dashboard.query_one("#workers", LiveTable)
        assert phones.visible_keys[0] == "0"
        assert cells(phones, "0", "phone", "power", "on_today", "state") == (
            "phone-a", "on", "1m05s", "posting")
        assert PHONE_KEY + "phone-a" not in phones.visible_keys   # listed once, as the worker's
    app = app_on(d)
    async with app.run_test(size=(80, 24)) as pilot:
        await next_frame(pilot)
        app.dashboard.activate(1)
        await pilot.pause()
        header = "".join(s.text for s in
                         app.dashboard.query_one("#workers", LiveTable).render_line(0))
        assert all(label in header for label in ("wkr", "phone", "power", "on today", "state",
                                                  "job", "beat"))
        assert not any(label in header for label in ("appium", "sysPorts", "pid", "account"))


@async_test
async def test_a_closed_window_shows_in_the_header(tmp_path):
    """T0 is 14:00 in Berlin: a 22:00-23:30 window is closed and opens at 22:00 on the campaign's
    clock, in full on a wide terminal and short on a narrow one."""
    d, _ = campaign(tmp_path, posting_window="22:00-23:30", timezone="Europe/Berlin")
    app = app_on(d)
    async with app.run_test(size=(160, 40)) as pilot:
        await next_frame(pilot)
        assert app.frame.header.window_opens == "22:00"
        line = str(app.dashboard.query_one(StatusLine).render())
        assert "window closed · opens 22:00" in line
        assert line.index("idle") < line.index("window") < line.index("pending")
    app = app_on(d)
    async with app.run_test(size=(80, 24)) as pilot:
        await next_frame(pilot)
        assert "window opens 22:00" in screen_text(app).splitlines()[0]


@async_test
async def test_an_open_window_or_none_adds_nothing(tmp_path):
    for settings in ({"posting_window": "09:00-23:00"}, {}):
        d, _ = campaign(tmp_path / str(len(settings)), **settings)
        app = app_on(d)
        async with app.run_test(size=(160, 40)) as pilot:
            await next_frame(pilot)
            assert app.frame.header.window_opens == ""
            assert "window" not in str(app.dashboard.query_one(StatusLine).render())


def test_opens_text_says_tomorrow_past_midnight():
    utc = timezone.utc
    assert opens_text(None, T0, utc) == ""
    assert opens_text("2025-06-15T22:00:00+00:00", T0, utc) == "22:00"
    assert opens_text("2025-06-16T09:00:00+00:00", T0, utc) == "tomorrow 09:00"
    # the campaign's clock, whatever offset the text carries
    assert opens_text("2025-06-15T20:00:00+00:00", T0, ZoneInfo("Europe/Berlin")) == "22:00"


@async_test
async def test_an_account_waiting_on_its_phones_gap_shows_when_it_may_post(tmp_path):
    """min_gap_seconds 600: phone-a's last post ended 2 min ago, so ana.posts (a job waiting)
    may post in 8 min; phone-b's gap is over. The console agrees with --status --json."""
    d, ctx = campaign(tmp_path, min_gap_seconds=600)
    power(ctx, "phone-a", [(T0 - 200, "on", "0"), (T0 - 120, "post_ended", ""),
                           (T0 - 120, "off", "")])
    power(ctx, "phone-b", [(T0 - 900, "on", "1"), (T0 - 700, "post_ended", ""),
                           (T0 - 700, "off", "")])
    status = {a["account"]: a["gap_until"] for a in campaign_status(ctx, now=T0)["accounts"]}
    assert status == {"ana.posts": iso(T0 + 480), "ben.clips": None, "cleo.daily": None}
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        accounts = app.dashboard.query_one("#accounts", LiveTable)
        assert cells(accounts, "ana.posts", "state", "waiting", "next") == (
            AVAILABLE, "1", "gap 8m00s")
        assert tone(accounts, "ana.posts", "next") == "info"
        assert accounts.get_cell("ben.clips", "next") == ""
        assert "gap 8m00s" in screen_text(app)


def test_a_gap_row_counts_down_and_is_not_kept_once_over():
    """A row with a gap is drawn again each poll; once the gap is over the same account state
    must not bring the old time back from the cache."""
    s = AccountState("ana.posts", "phone-a", AVAILABLE, 0, 2, 1, None, "")
    rows = AccountRows()
    assert rows.build([s], T0, {"ana.posts": T0 + 90})["ana.posts"][5] == ("gap 1m30s", "info")
    assert rows.build([s], T0 + 30, {"ana.posts": T0 + 90})["ana.posts"][5] == ("gap 1m00s", "info")
    assert rows.build([s], T0 + 100, {})["ana.posts"][5] == ""


def test_the_later_of_cooldown_and_gap_is_shown():
    cooling = AccountState("ana.posts", "phone-a", "COOLDOWN", 0, 2, 1, iso(T0 + 300), "")
    rows = AccountRows()
    assert rows.build([cooling], T0, {"ana.posts": T0 + 60})["ana.posts"][5] == (
        "5m00s", "warn")
    assert rows.build([cooling], T0, {"ana.posts": T0 + 600})["ana.posts"][5] == (
        "gap 10m00s", "info")



@async_test
async def test_on_a_shared_store_every_worker_row_names_its_host(tmp_path, pg_url, monkeypatch):
    """PostgreSQL with two hosts: this host's worker shows as `a/0`, host b's worker (a lease
    in the database, holding a job) as `b/3` with its job; enter on it opens the job."""
    monkeypatch.setenv("POSTDECK_STORE", pg_url)
    monkeypatch.setenv("POSTDECK_HOST", "a")
    d, ctx = campaign(tmp_path)
    heartbeat(ctx, 0, 5100, "phone-a", "posting", "clip_000.mp4_farm", "ana.posts", 1.0)
    from engine.store import open_store
    b = open_store(ctx, clock=frozen_clock)
    b.host_name = "b"
    lease = b.lease("3", 7777, 600.0)
    claimed = b.claim("3")
    lease.renew("posting", claimed.job_id, claimed.phone_id)
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        phones = app.dashboard.query_one("#workers", LiveTable)
        assert cells(phones, "0", "worker", "phone", "state") == ("a/0", "phone-a", "posting")
        assert cells(phones, "b/3", "worker", "pid", "phone", "state", "job") == (
            "b/3", "7777", claimed.phone_id, "posting", claimed.job_id)
        app.dashboard.activate(1)
        phones.move_to_key("b/3")
        await pilot.press("enter")
        await pilot.pause()
        assert claimed.job_id in screen_text(app)
    b.complete(claimed.job_id, claimed.claim_id)
    lease.close()
