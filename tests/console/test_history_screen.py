"""The history screen (console/screens/history.py) on a fixed campaign folder: a month of
archives around the frozen clock (2025-06-15 12:00 UTC), in Europe/Berlin, with failures of
several types, unknown outcomes, idle days and one damaged archive. Snapshots at 80x24 and
120x40; update with `pytest --snapshot-update` after checking the report.

The screen is pushed directly: the `h` key is bound in console/app.py."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from textual.app import App

from console.screens.history import DayBars, HistoryScreen
from engine import columns as C
from engine.context import PostingContext
from engine.progress_csv import serialize

from console_fixtures import (  # noqa: F401 (fixtures used by name)
    T0, async_test, frozen_app, frozen_clock, frozen_dir, job, screen_text, spring_ctx,
    wait_until)

CSS = Path(__file__).resolve().parents[2] / "console" / "console.tcss"
ZONE = ZoneInfo("Europe/Berlin")
ACCOUNTS = ("daily.drip", "kira_moves", "luna.clips", "max_reels", "studio.nord")
# days ago -> (posted, failed, unknown); the other days the campaign was idle
DAYS = {0: (6, 1, 0), 1: (9, 2, 1), 2: (11, 0, 0), 3: (8, 3, 0), 5: (4, 4, 0), 6: (10, 1, 0),
        7: (12, 0, 1), 10: (7, 2, 0), 11: (9, 1, 0), 14: (3, 0, 0), 20: (5, 5, 0),
        21: (6, 1, 0), 28: (2, 0, 0), 29: (4, 1, 0)}
ERROR_TYPES = ("adb_timeout", "rate_limited", "adb_timeout", "suspended", "appium_crash",
               "network")


def build_history(root: Path) -> PostingContext:
    """The campaign `spring`: one archive per busy day (today's rows in progress.csv), each
    row done at 10:00 Berlin time plus a minute per row, and a damaged second archive of
    2025-06-01 holding one readable success."""
    root.mkdir(parents=True)
    (root / "accounts.txt").write_text("".join(f"{a},phone-{i}\n" for i, a in enumerate(ACCOUNTS)))
    (root / "campaign.json").write_text(json.dumps({"timezone": "Europe/Berlin"}))
    today = datetime.fromtimestamp(T0, ZONE).date()
    n = 0
    for ago, (posted, failed, unknown) in DAYS.items():
        day = today - timedelta(days=ago)
        at = datetime(day.year, day.month, day.day, 10, tzinfo=ZONE)
        rows = []
        for k in range(posted + failed + unknown):
            done = (at + timedelta(minutes=k)).astimezone(timezone.utc).isoformat(
                timespec="milliseconds")
            account, phone = ACCOUNTS[n % len(ACCOUNTS)], f"phone-{n % len(ACCOUNTS)}"
            if k < posted:
                r = job(root, n, account, phone, C.SUCCESS, completed_at=done, attempts="1")
            else:
                kind = "outcome_unknown" if k >= posted + failed else ERROR_TYPES[n % 6]
                r = job(root, n, account, phone, C.FAILED, completed_at=done, attempts="1",
                        error=f"{kind} happened", error_type=kind)
            rows.append(r)
            n += 1
        name = "progress.csv" if ago == 0 else f"progress_{day:%Y%m%d}.csv"
        (root / name).write_bytes(serialize(rows))
    damaged = serialize([job(root, n, "luna.clips", "phone-2", C.SUCCESS,
                             completed_at="2025-06-01T09:00:00.000+00:00")])
    (root / "progress_20250601_1.csv").write_bytes(damaged + b"x,luna.clips,v,c,posted?"
                                                   + b"," * 16 + b"\n")
    return PostingContext.for_campaign_dir(root, root.parent)


class HistoryHost(App[None]):
    """The console's stylesheet and nothing else under the screen: the snapshots show the
    history alone, whatever the dashboard looks like."""
    CSS_PATH = str(CSS)

    def __init__(self, ctx: PostingContext) -> None:
        super().__init__()
        self.ctx = ctx

    def on_mount(self) -> None:
        self.push_screen(HistoryScreen(self.ctx, clock=frozen_clock))


@pytest.fixture
def history_ctx(tmp_path: Path) -> PostingContext:
    return build_history(tmp_path / "campaigns" / "spring")


async def loaded(pilot) -> None:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, HistoryScreen)
                     and pilot.app.screen.data is not None, what="the history")
    await pilot.pause()


def test_history_80x24(snap_compare, history_ctx):
    assert snap_compare(HistoryHost(history_ctx), terminal_size=(80, 24), run_before=loaded)


def test_history_120x40(snap_compare, history_ctx):
    assert snap_compare(HistoryHost(history_ctx), terminal_size=(120, 40), run_before=loaded)


def test_history_80x24_scrolled_to_the_accounts(snap_compare, history_ctx):
    async def to_the_end(pilot):
        await loaded(pilot)
        await pilot.press("end")
        await pilot.pause()

    assert snap_compare(HistoryHost(history_ctx), terminal_size=(80, 24), run_before=to_the_end)


@async_test
async def test_the_screen_shows_what_the_engine_counts(history_ctx):
    app = HistoryHost(history_ctx)
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        h = app.screen.data
        assert sum(d["success"] for d in h["days"]) == sum(p for p, _, _ in DAYS.values()) + 1
        assert [d["date"] for d in h["days"]][-1] == "2025-06-15"
        text = screen_text(app)
        assert "History of spring: last 30 days" in text
        assert "2025-05-17 to 2025-06-15 (Europe/Berlin)" in text
        assert "progress_20250601_1.csv, line 3, has an unknown status 'posted?'" in text
        # 120 columns: the error types and the accounts stand beside the days
        assert "Sat 05-17" in text and "Failures by error type (23)" in text
        assert "Accounts (5)" in text and "studio.nord" in text
        await pilot.press("end")
        await pilot.pause()
        assert "Sun 06-15 " in screen_text(app)


@async_test
async def test_80x24_scrolls_and_escape_or_q_closes(history_ctx):
    app = HistoryHost(history_ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        scroll = app.screen.query_one("VerticalScroll")
        assert scroll.max_scroll_y > 0
        assert "Accounts (5)" not in screen_text(app)
        await pilot.press("end")
        await wait_until(pilot, lambda: scroll.scroll_y == scroll.max_scroll_y, what="the end")
        assert "Accounts (5)" in screen_text(app) and "studio.nord" in screen_text(app)
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen),
                         what="escape to close the history")
        app.push_screen(HistoryScreen(history_ctx, clock=frozen_clock))
        await loaded(pilot)
        await pilot.press("q")
        await wait_until(pilot, lambda: not isinstance(app.screen, HistoryScreen),
                         what="q to close the history")


@async_test
async def test_over_the_console_on_the_frozen_day(frozen_app, spring_ctx):
    """Over the real console: the frozen day's five posts and one suspended account."""
    app = frozen_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(HistoryScreen(spring_ctx, clock=frozen_clock))
        await loaded(pilot)
        assert app.screen.data["days"][-1] == {"date": "2025-06-15", "success": 5,
                                               "failed": 1, "unknown": 0}
        text = screen_text(app)
        assert "5 posted  1 failed  0 unknown outcome  ·  success rate 83.3%" in text
        assert "suspended" in text


@async_test
async def test_a_history_that_cannot_be_made_says_why(history_ctx):
    app = HistoryHost(history_ctx)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        app.push_screen(HistoryScreen(history_ctx, clock=frozen_clock, days=0))
        await wait_until(pilot, lambda: getattr(app.screen, "error", None), what="the error")
        assert "reading the history failed: ValueError" in screen_text(app)


def test_bars_fit_the_width_and_keep_every_part_visible():
    assert DayBars.cells([10, 0, 0], 40, 10) == [40, 0, 0]
    assert DayBars.cells([100, 1, 1], 40, 102) == [38, 1, 1]
    assert DayBars.cells([5, 5, 0], 40, 20) == [10, 10, 0]
    assert DayBars.cells([0, 0, 0], 40, 0) == [0, 0, 0]
    assert sum(DayBars.cells([1, 1, 1], 2, 3)) == 2
