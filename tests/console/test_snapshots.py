"""Snapshots of the console on the frozen fixture (clock stopped at 2025-06-15 12:00 UTC, fixed
rows, heartbeats and logs, cursor blink off). Update with `pytest --snapshot-update` after
checking the report."""
from __future__ import annotations

from console.screens.confirm import ConfirmModal
from console.screens.job_detail import JobDetailScreen
from console.screens.start_form import StartForm

from console_fixtures import (  # noqa: F401 (fixtures used by name)
    frozen_app, frozen_dir, next_frame, running, spring_ctx, until_notified, wait_until)


async def first_frame(pilot) -> None:
    await next_frame(pilot)


def test_dashboard_80x24(snap_compare, frozen_app, running):
    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=first_frame)


def test_dashboard_120x40(snap_compare, frozen_app, running):
    assert snap_compare(frozen_app(), terminal_size=(120, 40), run_before=first_frame)


def test_dashboard_120x40_campaigns_focused(snap_compare, frozen_app, running):
    """Opened without --campaign: the running campaign is opened, the campaigns panel focused."""
    assert snap_compare(frozen_app(None), terminal_size=(120, 40), run_before=first_frame)


def test_reset_confirmation(snap_compare, frozen_app):
    async def press_reset(pilot):
        await next_frame(pilot)
        await pilot.press("R")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal),
                         what="the confirmation")

    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=press_reset)


def test_reset_refused_while_running(snap_compare, frozen_app, running):
    async def press_reset(pilot):
        await next_frame(pilot)
        await pilot.press("R")
        await until_notified(pilot, "refused", "error")
        assert not isinstance(pilot.app.screen, ConfirmModal)

    assert snap_compare(frozen_app(), terminal_size=(100, 30), run_before=press_reset)


def test_job_detail(snap_compare, frozen_app, running):
    async def open_detail(pilot):
        await next_frame(pilot)
        pilot.app.dashboard.jobs.move_to_key("clip_006.mp4_spring")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, JobDetailScreen)
                         and pilot.app.screen.detail is not None, what="the job detail")

    assert snap_compare(frozen_app(), terminal_size=(120, 40), run_before=open_detail)


def test_help(snap_compare, frozen_app):
    assert snap_compare(frozen_app(), terminal_size=(120, 40), press=["question_mark"],
                        run_before=first_frame)


def test_start_form(snap_compare, frozen_app):
    async def open_form(pilot):
        await next_frame(pilot)
        await pilot.press("s")
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, StartForm) and "looking"
                         not in str(pilot.app.screen.query_one("#available").render()),
                         what="the start form with the backend's phones")

    assert snap_compare(frozen_app(), terminal_size=(80, 24), run_before=open_form)
