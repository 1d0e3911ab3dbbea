"""Each key does what it says, against a real store in a temporary campaign (pilot tests)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from console.app import COMMANDS, ConsoleCommands, PostdeckApp
from console.screens.confirm import ConfirmModal
from console.screens.help import HelpScreen
from console.screens.history import HistoryScreen
from console.screens.job_detail import JobDetailScreen
from console.screens.start_form import StartForm, parse_request
from console.widgets.key_footer import FooterItem
from console.widgets.live_table import LiveTable
from engine import columns as C
from engine.context import PostingContext
from engine.tracker import ProgressStore, serialize

from console_fixtures import (  # noqa: F401 (fixtures used by name)
    ACCOUNTS, async_test, fake_alive, frozen_clock, frozen_dir, job, next_frame,
    running, screen_text, spring_ctx, until_notified, wait_until, write_campaign)

def rows(ctx: PostingContext) -> list[list[str]]:
    return ProgressStore.for_context(ctx).read().rows


def status_of(ctx: PostingContext, job_id: str) -> str:
    return next(r[C.STATUS] for r in rows(ctx) if r[C.JOB_ID] == job_id)


@pytest.fixture
def fresh(tmp_path: Path):
    """A campaign with videos and accounts but no progress file yet."""
    d = tmp_path / "campaigns"
    write_campaign(d / "fresh", ACCOUNTS[:4], 8, {"timezone": "UTC"})
    return d, PostingContext.for_campaign(d, "fresh")


def app_on(d: Path, campaign: str | None = "fresh", **kwargs) -> PostdeckApp:
    kwargs.setdefault("poll_interval", 0.2)
    return PostdeckApp(d, campaign, blink=False, **kwargs)


@async_test
async def test_seed_with_S(fresh):
    d, ctx = fresh
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        assert app.dashboard.jobs.row_count == 0
        await pilot.press("S")
        await until_notified(pilot, "seeded 4 job(s) for 4 account(s)")
        assert len(rows(ctx)) == 4
        await wait_until(pilot, lambda: app.dashboard.jobs.row_count == 4, what="4 rows")
        assert app.dashboard.jobs.get_cell(rows(ctx)[0][C.JOB_ID], "status") == C.PENDING
        await pilot.press("S")       # seeding again adds nothing: one video per account per day
        await until_notified(pilot, "nothing to seed")
        assert len(rows(ctx)) == 4


@async_test
async def test_retry_failed_with_r_and_confirm(fresh):
    d, ctx = fresh
    ctx.progress_file.write_bytes(serialize([
        job(ctx.root, 0, "luna.clips", "phone-01", C.FAILED, attempts="3",
            error="appium crashed", error_type="appium_crash", error_category="infrastructure"),
        job(ctx.root, 1, "max_reels", "phone-02", C.FAILED, attempts="1",
            error="account suspended", error_type="suspended", error_category="account"),
    ]))
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm")
        assert "2 job(s) are failed" in app.screen.body
        await pilot.press("n")                  # cancel: nothing changes
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmModal)
        assert status_of(ctx, "clip_000.mp4_fresh") == C.FAILED
        await pilot.press("r")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm")
        await pilot.press("y")
        await until_notified(pilot, "1 failed job(s) put back in the queue")
        assert status_of(ctx, "clip_000.mp4_fresh") == C.RETRYING
        assert status_of(ctx, "clip_001.mp4_fresh") == C.FAILED   # an account error stays
        await wait_until(pilot, lambda: app.dashboard.jobs.get_cell(
            "clip_000.mp4_fresh", "status") == C.RETRYING, what="the table to follow")


@async_test
async def test_reset_with_R_and_confirm_archives(fresh):
    d, ctx = fresh
    ctx.progress_file.write_bytes(serialize([job(ctx.root, 0, "luna.clips", "phone-01",
                                                 C.SUCCESS)]))
    before = ctx.progress_file.read_bytes()
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        assert app.dashboard.jobs.row_count == 1
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm")
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert not list(ctx.root.glob("progress_*.csv"))
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm")
        await pilot.press("enter")
        await until_notified(pilot, "new day started")
        archives = list(ctx.root.glob("progress_*.csv"))
        assert len(archives) == 1 and archives[0].read_bytes() == before
        assert rows(ctx) == []
        await wait_until(pilot, lambda: app.dashboard.jobs.row_count == 0, what="empty table")


@async_test
async def test_reset_refused_while_running_changes_nothing(frozen_dir, running):
    ctx = running
    before = ctx.progress_file.read_bytes()
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await pilot.press("R")
        text = await until_notified(pilot, "refused", "error")
        assert "supervisor pid 4242" in text
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmModal)    # nothing to confirm: refused
    assert ctx.progress_file.read_bytes() == before
    assert not list(ctx.root.glob("progress_*.csv"))


@async_test
async def test_action_takes_the_campaign_when_pressed(frozen_dir):
    """R on the campaigns panel acts on the row under the cursor when R was pressed, even if the
    cursor moves before the confirmation."""
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    autumn = PostingContext.for_campaign(frozen_dir, "autumn")
    spring = PostingContext.for_campaign(frozen_dir, "spring")
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        campaigns = app.dashboard.campaigns
        app.dashboard.activate(0)
        campaigns.move_to_key("autumn")
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm")
        assert "autumn" in app.screen.title_text
        campaigns.move_to_key("spring")           # the cursor moves meanwhile
        await pilot.press("y")
        await until_notified(pilot, "campaign 'autumn': new day started")
    assert list(autumn.root.glob("progress_*.csv"))
    assert not list(spring.root.glob("progress_*.csv"))


@async_test
async def test_filter_the_focused_table(frozen_dir):
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        jobs = app.dashboard.jobs
        assert app.focused is jobs and len(jobs.visible_keys) == 12
        await pilot.press("slash")
        assert app.focused.id == "filter"
        await pilot.press(*"luna")
        assert jobs.visible_keys == ["clip_000.mp4_spring", "clip_004.mp4_spring"]
        await pilot.press("enter")                  # keeps the filter, back to the table
        assert app.focused is jobs and jobs.filter_text == "luna"
        assert "filter: luna" in str(jobs.border_subtitle)
        await next_frame(pilot)                     # a poll keeps it filtered
        assert len(jobs.visible_keys) == 2
        await pilot.press("slash", "escape")        # escape clears it
        assert app.focused is jobs and len(jobs.visible_keys) == 12
        await pilot.press("tab", "tab", "tab", "tab")   # log, campaigns, phones, accounts
        assert app.focused is app.dashboard.query_one("#accounts")
        await pilot.press("slash", *"block")
        accounts = app.dashboard.query_one("#accounts", LiveTable)
        assert accounts.visible_keys == ["kira_moves"]


@async_test
async def test_enter_opens_job_detail(frozen_dir):
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        app.dashboard.jobs.move_to_key("clip_006.mp4_spring")
        await pilot.press("enter")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, JobDetailScreen)
                                  and app.screen.detail is not None and app.screen)
        detail = screen.detail
        assert detail.job["caption"].startswith("Clip 6: golden hour")
        assert "offline" in detail.job["error"]
        sources = {s for s, _ in detail.log_lines}
        assert sources == {"supervisor", "worker-0"}
        assert all("clip_006.mp4_spring" in line for _, line in detail.log_lines)
        text = screen_text(app)
        assert "golden hour" in text and "adb_timeout" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, JobDetailScreen)
        # enter on a worker opens its current job
        app.dashboard.activate(1)
        app.dashboard.query_one("#workers", LiveTable).move_to_key("1")
        await pilot.press("enter")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, JobDetailScreen)
                                  and app.screen)
        assert screen.job_id == "clip_007.mp4_spring"


@async_test
async def test_help_and_quit(frozen_dir):
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await next_frame(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "reset the day" in screen_text(app)
        await pilot.press("q")                      # q closes help, it does not quit
        assert not isinstance(app.screen, HelpScreen) and app.is_running
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value == 0


@async_test
async def test_a_click_on_a_footer_key_presses_it(frozen_dir):
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    # 160 columns: room for every key of the jobs panel and the palette hint (at 120 the
    # panel's own keys take the hint's place)
    async with app.run_test(size=(160, 40)) as pilot:
        await next_frame(pilot)
        keys = {item.key: item for item in app.screen.query(FooterItem)}
        assert list(keys)[:3] == ["s", "x", "X"] and "ctrl+p" in keys
        await pilot.click(keys["question_mark"])
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")


@async_test
async def test_tab_moves_focus_through_the_panels(frozen_dir):
    for size in ((120, 40), (80, 24)):
        app = PostdeckApp(frozen_dir, None, clock=frozen_clock, pid_alive=fake_alive,
                          poll_interval=3600, blink=False)
        async with app.run_test(size=size) as pilot:
            await next_frame(pilot)
            seen = [app.focused.id]
            for _ in range(5):
                await pilot.press("tab")
                seen.append(app.focused.id)
            assert seen == ["campaigns", "workers", "accounts", "jobs", "log", "campaigns"]
            await pilot.press("shift+tab")
            assert app.focused.id == "log"
            if size == (80, 24):                    # one panel at a time: only it is shown
                shown = [p.id for p in app.dashboard.query(".panel") if p.display]
                assert shown == ["log"]


@async_test
async def test_enter_on_a_campaign_opens_it(frozen_dir):
    app = PostdeckApp(frozen_dir, None, clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        assert app.campaign == "spring"            # the running one... or the enabled one
        assert app.focused is app.dashboard.campaigns
        app.dashboard.campaigns.move_to_key("autumn")
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.frame is not None and app.frame.campaign == "autumn"
                         and app.dashboard.jobs.row_count == 2, what="autumn's jobs")
        assert app.focused is app.dashboard.jobs
        assert app.dashboard.jobs.visible_keys == ["clip_000.mp4_autumn", "clip_001.mp4_autumn"]


@async_test
async def test_enter_on_an_account_filters_its_jobs(frozen_dir):
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        app.dashboard.activate(2)
        app.dashboard.query_one("#accounts", LiveTable).move_to_key("max_reels")
        await pilot.press("enter")
        assert app.focused is app.dashboard.jobs
        assert app.dashboard.jobs.visible_keys == ["clip_001.mp4_spring", "clip_008.mp4_spring"]


@async_test
async def test_command_palette_lists_every_action(frozen_dir):
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        provider = ConsoleCommands(app.screen)
        titles = [hit.text async for hit in provider.discover()]
        assert len(titles) == len(COMMANDS) == 17 and "Reset the day" in titles
        assert {"History", "Pause or resume the run"} <= set(titles)
        hits = [hit async for hit in provider.search("seed")]
        assert "Seed today's jobs" in [hit.text for hit in hits]
        ids = {b.id for b in app.BINDINGS}
        assert {"start", "stop", "stop-all", "pause", "history", "reset-day", "seed",
                "retry-failed", "filter", "help", "quit"} <= ids
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"help")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")


@async_test
async def test_corrupt_progress_file_is_reported_not_fatal(frozen_dir, spring_ctx):
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=0.2, blink=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        assert app.dashboard.jobs.row_count == 12
        spring_ctx.progress_file.write_text("not,a,progress,file\n")
        await until_notified(pilot, "has a header that is not a progress file's", "error")
        assert app.dashboard.jobs.row_count == 12     # the last good rows stay
        assert app.is_running


def test_start_form_parsing():
    assert parse_request("2", "") == parse_request(" 2 ", " ")
    assert parse_request("2", "a, b").phones == ["a", "b"]
    for workers, phones, message in (("0", "", "at least 1"), ("two", "", "whole number"),
                                     ("2", "a", "1 phone(s) named for 2 worker(s)"),
                                     ("2", "a,a", "named twice"), ("2", "a,", "is empty")):
        with pytest.raises(ValueError, match=re.escape(message)):
            parse_request(workers, phones)


@async_test
async def test_start_form_shows_errors_and_cancels(fresh):
    d, ctx = fresh
    app = app_on(d)
    async with app.run_test(size=(100, 30)) as pilot:
        await next_frame(pilot)
        await pilot.press("s")
        form = await wait_until(pilot, lambda: isinstance(app.screen, StartForm) and app.screen)
        assert form.query_one("#workers").value == "4"          # four phones in the campaign
        await wait_until(pilot, lambda: "phone-01" in str(form.query_one("#available").render()),
                         what="the backend's phones")
        form.query_one("#phones").value = "phone-01"
        await pilot.press("enter")
        assert "1 phone(s) named for 4 worker(s)" in str(form.query_one("#form-error").render())
        await pilot.press("escape")
        assert not isinstance(app.screen, StartForm)
        assert not (ctx.state_dir / "run.json").exists()


@async_test
async def test_h_opens_the_history_of_the_open_campaign_and_escape_closes_it(frozen_dir):
    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        await pilot.press("h")
        await wait_until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        await wait_until(pilot, lambda: "success rate" in screen_text(app).lower(),
                         what="the history drawn")
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen),
                         what="history closed")
