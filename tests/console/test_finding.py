"""Finding things (issue 14): `o`/`O` sort any table, `w` picks the log the log pane tails, `/`
filters the log, and every time shows on the campaign's clock, its zone named in the header."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from console.app import PostdeckApp
from console.widgets.fmt import log_line_in_zone, parse_duration, sort_value
from console.widgets.log_pane import LogPane
from console.widgets.status_line import StatusLine
from engine import columns as C
from engine.context import PostingContext
from engine.tracker import ProgressStore, serialize

from console_fixtures import (
    T0, async_test, fake_alive, frozen_clock, iso, job, next_frame, screen_text, wait_until,
    write_campaign)

ACCOUNTS = [("a.one", "phone-01"), ("b.two", "phone-02"), ("c.three", "phone-03"),
            ("d.four", "phone-04")]


def header_text(app) -> str:
    return str(app.dashboard.query_one(StatusLine).render().plain)


def table_header(table) -> str:
    return "".join(s.text for s in table.render_line(0))


@pytest.fixture
def berlin(tmp_path: Path):
    """A campaign on Berlin's clock (CEST in June, UTC+2) with jobs of mixed status and
    attempts, and a supervisor and a worker log."""
    d = tmp_path / "campaigns"
    root = write_campaign(d / "berlin", ACCOUNTS, 6, {"timezone": "Europe/Berlin"})
    rows = [
        job(root, 0, "a.one", "phone-01", C.SUCCESS, attempts="2", worker_id="0",
            claimed_at=iso(T0 - 3600), completed_at=iso(T0 - 3550)),
        job(root, 1, "b.two", "phone-02", C.PENDING, attempts="0"),
        job(root, 2, "c.three", "phone-03", C.FAILED, attempts="10", worker_id="1",
            claimed_at=iso(T0 - 1800), completed_at=iso(T0 - 1790), error="boom"),
        job(root, 3, "d.four", "phone-04", C.PENDING, attempts="9"),
        job(root, 4, "a.one", "phone-01", C.SUCCESS, attempts="1", worker_id="1",
            claimed_at=iso(T0 - 600), completed_at=iso(T0 - 560)),
    ]
    (root / "progress.csv").write_bytes(serialize(rows))
    ctx = PostingContext.for_campaign_dir(root, d)
    ctx.logs_dir.mkdir(parents=True, exist_ok=True)
    (ctx.logs_dir / "supervisor.log").write_text(
        "2025-06-15 10:00:00 INFO run run-b started: 2 worker(s)\n"
        "2025-06-15 11:50:00 WARNING failed clip_002.mp4_berlin: boom\n"
        "2025-06-15 11:51:00 INFO claimed clip_004.mp4_berlin (account a.one)\n")
    (ctx.logs_dir / "worker-0.log").write_text(
        "2025-06-15 11:00:00 INFO worker 0 up on phone-01\n"
        "2025-06-15 11:00:05 INFO claimed clip_000.mp4_berlin (account a.one, attempt 2)\n")
    return d, ctx


def app_on(d: Path, campaign: str = "berlin") -> PostdeckApp:
    return PostdeckApp(d, campaign, clock=frozen_clock, pid_alive=fake_alive,
                       poll_interval=3600, blink=False)


@pytest.fixture(autouse=True)
def host_in_utc(monkeypatch):
    """The logs' stamps are in the host's local time: pin it, whatever the machine's zone."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_sort_values_and_durations():
    assert parse_duration("1m25s") == 85 and parse_duration("2d03h") == 51 * 3600
    assert parse_duration("clip") is None and parse_duration("") is None
    cells = ["10", "9", "", "1m05s", "50s", "b", "A"]
    assert sorted(cells, key=sort_value) == ["9", "10", "50s", "1m05s", "A", "b", ""]


def test_log_stamps_move_to_the_campaign_zone():
    from zoneinfo import ZoneInfo
    line = "2025-06-15 11:50:00 WARNING failed clip_002: boom"
    assert log_line_in_zone(line, ZoneInfo("Europe/Berlin")) == \
        "2025-06-15 13:50:00 WARNING failed clip_002: boom"
    assert log_line_in_zone("Traceback (most recent call last):", ZoneInfo("Europe/Berlin")) \
        == "Traceback (most recent call last):"


@async_test
async def test_o_sorts_the_jobs_panel_and_O_reverses(berlin):
    d, ctx = berlin
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        jobs = app.dashboard.jobs
        jobs.focus()
        own = list(jobs.visible_keys)
        assert own == [f"clip_{i:03d}.mp4_berlin" for i in range(5)]
        jobs.move_to_key("clip_003.mp4_berlin")
        for _ in range(4):          # job, account, video, status
            await pilot.press("o")
        assert jobs.sort_column == "status" and not jobs.sort_descending
        statuses = [jobs.get_cell(k, "status") for k in jobs.visible_keys]
        assert statuses == sorted(statuses)
        # stable: the pending jobs keep their file order
        assert [k for k in jobs.visible_keys if jobs.get_cell(k, "status") == C.PENDING] == \
            ["clip_001.mp4_berlin", "clip_003.mp4_berlin"]
        assert jobs.cursor_key == "clip_003.mp4_berlin"        # the cursor keeps its row
        assert "status▲" in table_header(jobs)
        await pilot.press("o", "o", "o")        # phase, worker, attempts
        assert jobs.sort_column == "attempts"
        tries = [jobs.get_cell(k, "attempts") for k in jobs.visible_keys]
        assert tries == ["0", "1", "2", "9", "10"]              # numbers, not text
        assert "tr▲" in table_header(jobs)                     # the arrow is never cut
        await pilot.press("O")
        assert jobs.sort_descending
        assert [jobs.get_cell(k, "attempts") for k in jobs.visible_keys] == \
            ["10", "9", "2", "1", "0"]
        assert "tr▼" in table_header(jobs)
        await pilot.press("O")
        assert [jobs.get_cell(k, "attempts") for k in jobs.visible_keys] == tries
        for _ in range(len(jobs.columns) - 6):                 # past the last: none again
            await pilot.press("o")
        assert jobs.sort_column is None and jobs.visible_keys == own
        assert "▲" not in table_header(jobs) and "▼" not in table_header(jobs)


@async_test
async def test_a_poll_that_changes_the_sort_key_sorts_again(berlin, monkeypatch):
    d, ctx = berlin
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        jobs = app.dashboard.jobs
        jobs.set_sort("attempts")
        assert jobs.visible_keys[-1] == "clip_002.mp4_berlin"          # 10 tries
        calls = {"update_cell": 0, "add_row": 0, "remove_row": 0}
        for name in calls:
            real = getattr(jobs, name)

            def spy(*args, _real=real, _name=name, **kwargs):
                calls[_name] += 1
                return _real(*args, **kwargs)
            monkeypatch.setattr(jobs, name, spy)
        rows = ProgressStore.for_context(ctx).read().rows
        rows[1][C.ATTEMPTS] = "11"                                     # b.two: 0 -> 11
        ctx.progress_file.write_bytes(serialize(rows))
        await next_frame(pilot)
        assert jobs.visible_keys[-1] == "clip_001.mp4_berlin"
        assert [jobs.get_cell(k, "attempts") for k in jobs.visible_keys] == \
            ["1", "2", "9", "10", "11"]
        assert calls == {"update_cell": 1, "add_row": 0, "remove_row": 0}   # the cheap path
        rows[4][C.ERROR] = "later"                                     # not the sort key
        ctx.progress_file.write_bytes(serialize(rows))
        await next_frame(pilot)
        assert jobs.get_cell("clip_004.mp4_berlin", "error") == "later"
        assert [jobs.get_cell(k, "attempts") for k in jobs.visible_keys] == \
            ["1", "2", "9", "10", "11"]


@async_test
async def test_w_switches_the_log_pane_to_a_worker_log_and_back(berlin):
    d, ctx = berlin
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        log = app.dashboard.query_one(LogPane)
        log.focus()
        assert log.border_title == "Supervisor log" and log.row_count == 3
        await pilot.press("w")
        assert log.border_title == "Worker 0 log" and app.feed.log_source == "worker-0.log"
        await wait_until(pilot, lambda: log.row_count == 2, what="the worker's log")
        assert "worker 0 up on phone-01" in log.get_cell(log.visible_keys[0], "message")
        # it tails the worker's file
        with open(ctx.logs_dir / "worker-0.log", "a") as fh:
            fh.write("2025-06-15 11:59:00 ERROR lost phone-01\n")
        await next_frame(pilot)
        assert log.row_count == 3 and log.get_cell(log.visible_keys[-1], "message") == \
            "lost phone-01"
        assert log.cursor_key == log.visible_keys[-1]          # it follows the tail
        await pilot.press("w")                                  # only one worker: back
        assert log.border_title == "Supervisor log"
        await wait_until(pilot, lambda: log.row_count == 3 and "started" in log.get_cell(
            log.visible_keys[0], "message"), what="the supervisor's log again")
        assert "Supervisor log" in screen_text(app)


@async_test
async def test_slash_filters_the_log(berlin):
    d, ctx = berlin
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        log = app.dashboard.query_one(LogPane)
        app.dashboard.activate(4)
        await pilot.press("slash")
        await pilot.press(*"boom")
        assert log.filter_text == "boom" and len(log.visible_keys) == 1
        assert log.get_cell(log.visible_keys[0], "message") == "failed clip_002.mp4_berlin: boom"
        await pilot.press("enter")
        assert log.has_focus and log.filter_text == "boom"
        await pilot.press("slash", "escape")
        assert log.filter_text == "" and len(log.visible_keys) == 3


@async_test
async def test_times_show_in_the_campaign_zone(berlin):
    d, ctx = berlin
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        # T0 is 12:00 UTC: 14:00 in Berlin (CEST)
        assert header_text(app).endswith("│ 14:00 CEST")
        assert "14:00 CEST" in screen_text(app).splitlines()[0]
        jobs = app.dashboard.jobs
        assert datetime.fromtimestamp(T0 - 600, timezone.utc).strftime("%H:%M:%S") == "11:50:00"
        assert jobs.get_cell("clip_004.mp4_berlin", "claimed") == "13:50:00"
        log = app.dashboard.query_one(LogPane)
        assert [log.get_cell(k, "time") for k in log.visible_keys] == \
            ["12:00:00", "13:50:00", "13:51:00"]
    async with app_on(d).run_test(size=(140, 40)) as pilot:
        await next_frame(pilot)
        assert header_text(pilot.app).endswith("│ 14:00 Europe/Berlin")   # room: its name
    async with app_on(d).run_test(size=(80, 24)) as pilot:
        await next_frame(pilot)
        assert header_text(pilot.app).endswith(" CEST")     # a narrow header still names it


@async_test
async def test_another_campaign_goes_back_to_the_supervisor_log(berlin):
    d, ctx = berlin
    other = write_campaign(d / "other", ACCOUNTS[:1], 1, {"timezone": "UTC"})
    (other / ".postdeck" / "logs").mkdir(parents=True)
    (other / ".postdeck" / "logs" / "supervisor.log").write_text(
        "2025-06-15 09:00:00 INFO other started\n")
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        log = app.dashboard.query_one(LogPane)
        log.focus()
        await pilot.press("w")
        await wait_until(pilot, lambda: log.row_count == 2, what="the worker's log")
        app.open_campaign("other")
        await wait_until(pilot, lambda: log.border_title == "Supervisor log"
                         and log.row_count == 1, what="the other campaign's supervisor log")
        assert log.get_cell(log.visible_keys[0], "message") == "other started"
