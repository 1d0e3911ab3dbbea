"""The console driving real runs on the simulated backend: start from the form and watch jobs
move, stop, reset after the run ended, and quit while a run goes on (the run finishes)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from console.app import PostdeckApp
from console.screens.confirm import ConfirmModal
from console.screens.start_form import StartForm
from console.widgets.workers import phone_of_key
from engine import columns as C
from engine.context import PostingContext
from engine.runstate import process_alive, read_run_info, running_supervisor
from engine.workers import RunOptions
from engine.tracker import ProgressStore

from console_fixtures import (async_test, next_frame, screen_text, until_notified, wait_until,
                              write_campaign)

pytestmark = pytest.mark.slow
runs = pytest.importorskip("engine.runs")


def sim_campaign(campaigns_dir: Path, name: str, accounts: int, post_seconds: float) -> PostingContext:
    write_campaign(campaigns_dir / name, [(f"acct{i:02d}", f"phone-{i:02d}")
                                          for i in range(accounts)], accounts,
                   {"backend": "simulated", "timezone": "UTC",
                    "simulation": {"boot_seconds": 0.05, "post_seconds": post_seconds,
                                   "failure_rate": 0}})
    return PostingContext.for_campaign(campaigns_dir, name)


@pytest.fixture
def cleanup():
    """Whatever happens in a test, no run outlives it."""
    contexts: list[PostingContext] = []
    yield contexts.append
    for ctx in contexts:
        if running_supervisor(ctx) is not None:
            runs.request_stop(ctx, now=True)


def statuses(ctx: PostingContext) -> list[str]:
    return [r[C.STATUS] for r in ProgressStore.for_context(ctx).read().rows]


def wait_process_exit(pid: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and process_alive(pid):
        time.sleep(0.05)
    assert not process_alive(pid), f"pid {pid} still alive after {timeout}s"


async def start_from_form(pilot, workers: str | None = None) -> None:
    app = pilot.app
    await pilot.press("s")
    form = await wait_until(pilot, lambda: isinstance(app.screen, StartForm) and app.screen,
                            what="the start form")
    if workers is not None:
        form.query_one("#workers").value = workers
    await pilot.press("enter")
    await until_notified(pilot, "run started", timeout=30)


@async_test
async def test_start_watch_stop_then_reset(tmp_path, cleanup):
    d = tmp_path / "campaigns"
    ctx = sim_campaign(d, "live", accounts=12, post_seconds=0.8)
    cleanup(ctx)
    app = PostdeckApp(d, "live", poll_interval=0.1, blink=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await start_from_form(pilot, workers="2")
        jobs, header = app.dashboard.jobs, lambda: app.frame.header
        # the run seeds its jobs; the table shows them claimed, then done
        await wait_until(pilot, lambda: header().running and header().counts["claimed"] > 0,
                         timeout=30, what="a claimed job")
        claimed = [k for k in jobs.visible_keys if jobs.get_cell(k, "status") == C.CLAIMED]
        assert claimed and all(jobs.get_cell(k, "worker") in ("0", "1") for k in claimed)
        await wait_until(pilot, lambda: header().counts["success"] >= 2, timeout=30,
                         what="two successes")
        phones = app.dashboard.query_one("#workers")
        assert [k for k in phones.visible_keys if phone_of_key(k) is None] == ["0", "1"]
        # the phones that were on today are listed, each once (a worker's on its row); the
        # ones off all day are not
        listed = [phones.get_cell(k, "phone") for k in phones.visible_keys]
        listed = [p for p in listed if p != "-"]
        assert len(listed) == len(set(listed)) >= 2
        assert set(listed) <= {f"phone-{i:02d}" for i in range(12)}
        await pilot.press("p")                                   # pause, then resume
        await until_notified(pilot, "paused")
        await wait_until(pilot, lambda: header().paused_since, timeout=10, what="PAUSED")
        assert "PAUSED" in screen_text(app)
        await pilot.press("p")
        await until_notified(pilot, "resumed")
        await wait_until(pilot, lambda: not header().paused_since, timeout=10, what="resumed")
        await pilot.press("x")                                   # graceful stop
        await until_notified(pilot, "stop requested")
        await wait_until(pilot, lambda: not header().running, timeout=30, what="the run to end")
        done = statuses(ctx)
        assert C.CLAIMED not in done and 2 <= done.count(C.SUCCESS) < 12
        assert jobs.row_count == 12
        # the run has ended: the day can be reset
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm")
        await pilot.press("y")
        await until_notified(pilot, "new day started")
        await wait_until(pilot, lambda: jobs.row_count == 0, what="an empty table")
    assert len(list(ctx.root.glob("progress_*.csv"))) == 1
    assert statuses(ctx) == []


@async_test
async def test_quit_while_running_leaves_the_run_going(tmp_path, cleanup):
    d = tmp_path / "campaigns"
    ctx = sim_campaign(d, "detached", accounts=6, post_seconds=0.3)
    cleanup(ctx)
    app = PostdeckApp(d, "detached", poll_interval=0.1, blink=False)
    async with app.run_test(size=(80, 24), notifications=True) as pilot:
        await next_frame(pilot)
        await start_from_form(pilot, workers="2")
        await wait_until(pilot, lambda: app.frame.header.running, timeout=30, what="running")
        await pilot.press("q")
        await pilot.pause()
    assert not app.is_running
    info = read_run_info(ctx)
    assert info is not None and process_alive(info.pid)     # the console is gone, the run is not
    wait_process_exit(info.pid)
    assert statuses(ctx) == [C.SUCCESS] * 6
    # reopening the console shows the finished day
    app = PostdeckApp(d, "detached", poll_interval=0.1, blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await next_frame(pilot)
        assert app.frame.header.counts["success"] == 6 and not app.frame.header.running


@async_test
async def test_reopen_shows_a_run_live(tmp_path, cleanup):
    """A run started elsewhere (the CLI) shows live in a console opened later; stop all asks
    first and ends it."""
    d = tmp_path / "campaigns"
    ctx = sim_campaign(d, "elsewhere", accounts=8, post_seconds=2.0)
    cleanup(ctx)
    pid = runs.start_detached(ctx, RunOptions(workers=2)).pid
    app = PostdeckApp(d, "elsewhere", poll_interval=0.1, blink=False)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await wait_until(pilot, lambda: app.frame.header.running
                         and app.frame.header.counts["claimed"] > 0, timeout=30, what="live jobs")
        assert app.frame.header.supervisor_pid == pid
        await pilot.press("X")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="confirm")
        await pilot.press("y")
        await until_notified(pilot, "stopped at once", timeout=40)
        await wait_until(pilot, lambda: not app.frame.header.running, what="the run to end")
    wait_process_exit(pid)
    assert C.CLAIMED not in statuses(ctx)
