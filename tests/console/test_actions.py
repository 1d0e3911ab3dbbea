"""The console's actions on one job (t retry, K skip, F to the front) and on one account (d out
of rotation and back), against a real store in a temporary campaign (pilot tests)."""
from __future__ import annotations

from pathlib import Path

import pytest

from console.app import (COMMANDS, RISK_ACCOUNT_OR_CONTENT, RISK_UNKNOWN_OUTCOME,
                         ConsoleCommands, PostdeckApp)
from console.screens.confirm import ConfirmModal
from console.screens.job_detail import JobDetailScreen
from console.widgets.accounts import AccountsPanel
from console.widgets.key_footer import FooterItem
from engine import columns as C
from engine import rotation
from engine.context import PostingContext
from engine.errors import OUTCOME_UNKNOWN
from engine.store import open_store
from engine.tracker import serialize

from console_fixtures import (ACCOUNTS, async_test, job, next_frame, until_notified,
                              wait_until, write_campaign)

RETRYABLE, SUSPENDED, UNKNOWN, PENDING_A, PENDING_B, CLAIMED = (
    f"clip_{i:03d}.mp4_acts" for i in range(6))


def rows(ctx: PostingContext) -> list[list[str]]:
    return open_store(ctx).read().rows


def row_of(ctx: PostingContext, job_id: str) -> list[str]:
    return next(r for r in rows(ctx) if r[C.JOB_ID] == job_id)


@pytest.fixture
def acts(tmp_path: Path):
    """A campaign, not running, with one failure of each kind, two pending jobs and one a
    worker holds."""
    d = tmp_path / "campaigns"
    root = write_campaign(d / "acts", ACCOUNTS[:6], 8, {"timezone": "UTC"})
    ctx = PostingContext.for_campaign(d, "acts")
    ctx.progress_file.write_bytes(serialize([
        job(root, 0, "luna.clips", "phone-01", C.FAILED, attempts="3",
            error="appium crashed", error_type="appium_crash", error_category="infrastructure"),
        job(root, 1, "max_reels", "phone-02", C.FAILED, attempts="1",
            error="account suspended", error_type="suspended", error_category="account"),
        job(root, 2, "studio.nord", "phone-03", C.FAILED, attempts="1",
            error="lost the phone while publishing", error_type=OUTCOME_UNKNOWN,
            error_category="unknown"),
        job(root, 3, "daily.drip", "phone-04", C.PENDING),
        job(root, 4, "kira_moves", "phone-05", C.PENDING),
        job(root, 5, "the.snack.lab", "phone-06", C.CLAIMED, worker_id="1", attempts="1",
            claimed_at="2025-06-15T12:00:00+00:00", phase="preparing", claim_id="c5"),
    ]))
    return d, ctx


def app_on(d: Path) -> PostdeckApp:
    return PostdeckApp(d, "acts", poll_interval=0.2, blink=False)


async def on_job(pilot, job_id: str) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: app.dashboard.jobs.row_count == 6, what="the jobs")
    assert app.focused is app.dashboard.jobs
    assert app.dashboard.jobs.move_to_key(job_id)


async def confirm_shown(pilot) -> ConfirmModal:
    return await wait_until(pilot, lambda: isinstance(pilot.app.screen, ConfirmModal)
                            and pilot.app.screen, what="a confirmation")


@async_test
async def test_t_retries_a_retryable_failure_after_a_plain_confirm(acts):
    d, ctx = acts
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await on_job(pilot, RETRYABLE)
        await pilot.press("t")
        modal = await confirm_shown(pilot)
        assert modal.title_text == f"Retry {RETRYABLE} now?"
        assert "retryable error (infrastructure/appium_crash" in modal.body
        assert RISK_UNKNOWN_OUTCOME not in modal.body and RISK_ACCOUNT_OR_CONTENT not in modal.body
        await pilot.press("y")
        await until_notified(pilot, f"{RETRYABLE} is back in the queue")
        row = row_of(ctx, RETRYABLE)
        assert row[C.STATUS] == C.RETRYING and row[C.ATTEMPTS] == "0"
        await wait_until(pilot, lambda: app.dashboard.jobs.get_cell(RETRYABLE, "status")
                         == C.RETRYING, what="the table to follow")


@pytest.mark.parametrize("job_id, risk", [(UNKNOWN, RISK_UNKNOWN_OUTCOME),
                                          (SUSPENDED, RISK_ACCOUNT_OR_CONTENT)])
@async_test
async def test_t_on_a_risky_failure_names_the_risk_and_cancel_changes_nothing(acts, job_id, risk):
    d, ctx = acts
    before = ctx.progress_file.read_bytes()
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await on_job(pilot, job_id)
        await pilot.press("t")
        modal = await confirm_shown(pilot)
        assert risk in modal.body and modal.title_text == f"Retry {job_id} anyway?"
        await pilot.press("n")
        await pilot.pause(0.3)
        assert not isinstance(app.screen, ConfirmModal)
        assert ctx.progress_file.read_bytes() == before
        await pilot.press("t")                  # confirmed: retried with consent
        await confirm_shown(pilot)
        await pilot.press("y")
        await until_notified(pilot, f"{job_id} is back in the queue")
        assert row_of(ctx, job_id)[C.STATUS] == C.RETRYING


@async_test
async def test_t_on_a_job_that_is_not_failed_is_refused_in_the_engines_words(acts):
    d, ctx = acts
    before = ctx.progress_file.read_bytes()
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await on_job(pilot, CLAIMED)
        await pilot.press("t")
        text = await until_notified(pilot, "a worker holds it", "error")
        assert CLAIMED in text and not isinstance(app.screen, ConfirmModal)
        assert ctx.progress_file.read_bytes() == before


@async_test
async def test_K_skips_after_confirm_with_the_users_reason(acts, monkeypatch):
    d, ctx = acts
    monkeypatch.setattr(rotation, "current_user", lambda: "maria")
    before = ctx.progress_file.read_bytes()
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await on_job(pilot, PENDING_B)
        await pilot.press("K")
        modal = await confirm_shown(pilot)
        assert modal.title_text == f"Skip {PENDING_B}?"
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert ctx.progress_file.read_bytes() == before
        await pilot.press("K")
        await confirm_shown(pilot)
        await pilot.press("y")
        await until_notified(pilot, f"{PENDING_B} skipped")
        row = row_of(ctx, PENDING_B)
        assert row[C.STATUS] == C.SKIPPED
        assert row[C.ERROR] == "skipped in the console by maria"


@async_test
async def test_K_on_a_claimed_job_is_refused_and_changes_nothing(acts):
    d, ctx = acts
    before = ctx.progress_file.read_bytes()
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await on_job(pilot, CLAIMED)
        await pilot.press("K")
        await confirm_shown(pilot)
        await pilot.press("y")
        text = await until_notified(pilot, "is claimed by worker 1", "error")
        assert "Skip job" in text and "a worker holds it" in text
        assert ctx.progress_file.read_bytes() == before


@async_test
async def test_F_moves_a_pending_job_to_the_front_without_asking(acts):
    d, ctx = acts
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await on_job(pilot, PENDING_B)
        await pilot.press("F")
        await until_notified(pilot, f"{PENDING_B} is first in the queue")
        assert not isinstance(app.screen, ConfirmModal)
        assert rows(ctx)[0][C.JOB_ID] == PENDING_B
        assert [r[C.JOB_ID] for r in rows(ctx)][1:] == [RETRYABLE, SUSPENDED, UNKNOWN,
                                                         PENDING_A, CLAIMED]
        before = ctx.progress_file.read_bytes()
        app.dashboard.jobs.move_to_key(RETRYABLE)    # a failed job is not pending: refused
        await pilot.press("F")
        await until_notified(pilot, RETRYABLE, "error")
        assert ctx.progress_file.read_bytes() == before


@async_test
async def test_the_job_detail_acts_on_its_job(acts, monkeypatch):
    d, ctx = acts
    monkeypatch.setattr(rotation, "current_user", lambda: "maria")
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await next_frame(pilot)
        await on_job(pilot, PENDING_A)
        await pilot.press("enter")
        detail = await wait_until(pilot, lambda: isinstance(app.screen, JobDetailScreen)
                                  and app.screen, what="the detail")
        await wait_until(pilot, lambda: detail.detail is not None, what="the detail loaded")
        app.dashboard.jobs.move_to_key(RETRYABLE)    # the detail's job, not the cursor's
        await pilot.press("F")
        await until_notified(pilot, f"{PENDING_A} is first in the queue")
        assert rows(ctx)[0][C.JOB_ID] == PENDING_A
        await pilot.press("K")
        await confirm_shown(pilot)
        await pilot.press("y")
        await until_notified(pilot, f"{PENDING_A} skipped")
        assert row_of(ctx, PENDING_A)[C.STATUS] == C.SKIPPED
        assert app.screen is detail                  # back on the detail, read again
        await wait_until(pilot, lambda: detail.detail is not None and detail.detail.job
                         and detail.detail.job["status"] == C.SKIPPED, what="the detail again")
        assert row_of(ctx, RETRYABLE)[C.STATUS] == C.FAILED


async def focus_accounts(pilot, app) -> AccountsPanel:
    """The accounts panel of the `acts` campaign, drawn and focused."""
    await next_frame(pilot)
    app.dashboard.activate(2)
    accounts = app.dashboard.query_one(AccountsPanel)
    await wait_until(pilot, lambda: accounts.row_count == 6 and app.focused is accounts,
                     what="the accounts, focused")
    return accounts


@async_test
async def test_d_takes_an_account_out_of_rotation_and_back(acts, monkeypatch):
    d, ctx = acts
    monkeypatch.setattr(rotation, "current_user", lambda: "maria")
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        accounts = await focus_accounts(pilot, app)
        accounts.move_to_key("daily.drip")
        await pilot.press("d")
        modal = await confirm_shown(pilot)
        assert modal.title_text == "Take daily.drip out of rotation?"
        await pilot.press("n")
        await pilot.pause(0.3)
        assert rotation.disabled(ctx) == {}
        await pilot.press("d")
        await confirm_shown(pilot)
        await pilot.press("y")
        await until_notified(pilot, "daily.drip is out of rotation")
        entry = rotation.disabled(ctx)["daily.drip"]
        assert entry["by"] == "maria" and entry["why"] == "taken out in the console"
        await wait_until(pilot, lambda: accounts.get_cell("daily.drip", "state") == "OFF",
                         what="OFF in the panel")
        assert accounts.get_cell("daily.drip", "next") == "by maria"
        assert accounts.get_cell("daily.drip", "error").startswith("out ")
        assert accounts.get_cell("daily.drip", "error").endswith(": taken out in the console")
        await pilot.press("d")                    # out: back in at once, no confirmation
        await until_notified(pilot, "daily.drip is back in rotation")
        assert not isinstance(app.screen, ConfirmModal)
        assert rotation.disabled(ctx) == {}
        await wait_until(pilot, lambda: accounts.get_cell("daily.drip", "state") != "OFF",
                         what="the account back")
        assert accounts.get_cell("daily.drip", "error") == ""
        assert accounts.get_cell("daily.drip", "next") == ""


@async_test
async def test_the_keys_show_in_the_footer_only_on_their_panel(acts):
    d, _ctx = acts
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)

        def keys() -> set[str]:
            return {item.key for item in app.screen.query(FooterItem)}

        await wait_until(pilot, lambda: {"t", "K", "F"} <= keys(), what="the job keys")
        assert "d" not in keys()
        app.dashboard.activate(2)
        await wait_until(pilot, lambda: "d" in keys(), what="the account key")
        assert not {"t", "K", "F"} & keys()


@async_test
async def test_the_palette_lists_the_new_commands(acts):
    d, _ctx = acts
    app = app_on(d)
    async with app.run_test(size=(120, 40)) as pilot:
        await next_frame(pilot)
        provider = ConsoleCommands(app.screen)
        titles = [hit.text async for hit in provider.discover()]
        assert len(titles) == len(COMMANDS)
        assert {"Retry this job now", "Skip this job", "Move this job to the front",
                "Take the account out of rotation, or back"} <= set(titles)
        hits = [hit.text async for hit in provider.search("front")]
        assert "Move this job to the front" in hits


@async_test
async def test_shift_d_takes_the_accounts_phone_out_of_rotation_and_back(acts, monkeypatch):
    d, ctx = acts
    monkeypatch.setattr(rotation, "current_user", lambda: "maria")
    app = app_on(d)
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        accounts = await focus_accounts(pilot, app)
        accounts.move_to_key("daily.drip")
        phone = accounts.get_cell("daily.drip", "phone")
        await pilot.press("D")
        modal = await confirm_shown(pilot)
        assert modal.title_text == f"Take phone {phone} out of rotation?"
        await pilot.press("y")
        await until_notified(pilot, f"phone {phone} is out of rotation")
        assert set(rotation.phones_out(ctx)) == {phone} and rotation.disabled(ctx) == {}
        await wait_until(pilot, lambda: accounts.get_cell("daily.drip", "state") == "OFF",
                         what="OFF in the panel")
        await pilot.press("D")                    # out: back in at once
        await until_notified(pilot, f"phone {phone} is back in rotation")
        assert rotation.phones_out(ctx) == {}
