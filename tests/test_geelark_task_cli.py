"""The `geelark-task` backend end to end through the CLI, against the local Geelark server
(signatures checked, 127.0.0.1): a day completes with share links as proof, and a crash while a
task runs is settled by asking Geelark, never guessed and never posted twice."""
from __future__ import annotations

import csv
import os
import signal
from collections import Counter
from pathlib import Path

import pytest

from engine import columns as C
from engine.context import PostingContext

import test_runs as runs
from conftest import postdeck, write_campaign
from geelark_fake_server import TEST_API_KEY, TEST_APP_ID, Drop, FakeGeelark

PHONES = {"g-1": "farm-01", "g-2": "farm-02"}


@pytest.fixture
def geelark():
    with FakeGeelark() as server:
        for phone_id, name in PHONES.items():
            server.add_phone(phone_id, name)
        yield server


def env_for(server: FakeGeelark) -> dict[str, str]:
    return {"GEELARK_BASE_URL": server.url, "GEELARK_APP_ID": TEST_APP_ID,
            "GEELARK_API_KEY": TEST_API_KEY, "GEELARK_TOKEN": "",
            "GEELARK_CREDENTIALS_FILE": "/nonexistent"}


def campaign(campaigns_dir: Path, accounts, videos: int, **settings) -> Path:
    return write_campaign(campaigns_dir / "c", accounts, videos, {
        "backend": "geelark-task", "task_poll_seconds": 0.1, **settings})


def cli(campaigns_dir: Path, server: FakeGeelark, *args: str, timeout: float = 120):
    return postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", *args,
                    env=env_for(server), timeout=timeout)


def ledger_lines(ctx: PostingContext) -> list[list[str]]:
    with open(ctx.ledger_file, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))[1:]


def start_detached(campaigns_dir: Path, server: FakeGeelark, *extra: str) -> int:
    res = cli(campaigns_dir, server, "--run", "--detach", *extra)
    assert res.returncode == 0, res.stderr
    return int(res.stdout.split("supervisor pid ")[1].split(")")[0])


def test_a_day_completes_with_share_links_as_proof(campaigns_dir, geelark):
    root = campaign(campaigns_dir, [("ann", "farm-01"), ("bob", "farm-02")], 2)
    res = cli(campaigns_dir, geelark, "--run", "--workers", "2")
    assert res.returncode == 0, res.stderr + res.stdout
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    rows = runs.rows_of(ctx)
    assert Counter(r[C.STATUS] for r in rows) == {C.SUCCESS: 2}
    tasks = {t.id: t for t in geelark.created_tasks}
    assert len(tasks) == 2
    for r in rows:
        task = tasks[r[C.TASK_ID]]
        assert r[C.VIDEO_ID] == task.share_link and r[C.VIDEO_ID].startswith("https://")
        assert task.caption == r[C.CAPTION]
    assert sorted(line[4] for line in ledger_lines(ctx)) == sorted(r[C.VIDEO_ID] for r in rows)
    runs.assert_invariants(ctx)


def test_a_lost_create_answer_is_found_by_name_and_posted_once(campaigns_dir, geelark):
    root = campaign(campaigns_dir, [("ann", "farm-01")], 1)
    geelark.script("/open/v1/rpa/task/instagramPubReels", Drop())
    res = cli(campaigns_dir, geelark, "--run")
    assert res.returncode == 0, res.stderr + res.stdout
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    row, = runs.rows_of(ctx)
    assert row[C.STATUS] == C.SUCCESS and len(geelark.created_tasks) == 1
    assert row[C.TASK_ID] == geelark.created_tasks[0].id


def _publishing(ctx: PostingContext):
    """The claimed row once its task id is on disk."""
    return next((r for r in runs.rows_of(ctx)
                 if r[C.STATUS] == C.CLAIMED and r[C.TASK_ID]), None)


@pytest.mark.parametrize("kill", ["worker", "worker_and_supervisor"])
def test_a_task_running_across_a_sigkill_is_settled_by_asking_geelark(campaigns_dir, geelark,
                                                                      kill):
    """The task stays in progress while the worker (and, in the second case, the supervisor) is
    killed; then it completes. The watching supervisor, or the next run, records the success
    with its link; nothing is posted again and nothing ends as an unknown outcome."""
    geelark.script_task(["waiting", "in_progress"])          # the last status sticks
    root = campaign(campaigns_dir, [("ann", "farm-01")], 1)
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    sup = start_detached(campaigns_dir, geelark)
    row = runs.wait_for(lambda: _publishing(ctx), timeout=60, what="a task id on disk")
    worker = next(hb.pid for hb in runs.live_workers(ctx))
    os.kill(worker, signal.SIGKILL)
    if kill == "worker_and_supervisor":
        os.kill(sup, signal.SIGKILL)
        runs.wait_exit(sup, timeout=10)
    else:
        runs.wait_for(lambda: (r := _publishing(ctx)) and r[C.WORKER_ID] == "watch",
                      timeout=30, what="the supervisor watching the task")
    geelark.release_task(row[C.TASK_ID], ["completed"])
    if kill == "worker_and_supervisor":
        res = cli(campaigns_dir, geelark, "--run")
        assert res.returncode == 0, res.stderr + res.stdout
    else:
        runs.wait_exit(sup, timeout=60)
    done, = runs.rows_of(ctx)
    assert done[C.STATUS] == C.SUCCESS, done
    assert done[C.TASK_ID] == row[C.TASK_ID] and done[C.VIDEO_ID].startswith("https://")
    assert len(geelark.created_tasks) == 1, "posted again"
    assert [line[3] for line in ledger_lines(ctx)] == [done[C.JOB_ID]]
    runs.assert_invariants(ctx)


def test_a_task_that_fails_after_its_worker_died_is_recorded_with_geelarks_reason(
        campaigns_dir, geelark):
    geelark.script_task(["waiting", "in_progress"])
    root = campaign(campaigns_dir, [("ann", "farm-01")], 1)
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    sup = start_detached(campaigns_dir, geelark)
    row = runs.wait_for(lambda: _publishing(ctx), timeout=60, what="a task id on disk")
    os.kill(sup, signal.SIGKILL)
    os.kill(next(hb.pid for hb in runs.live_workers(ctx)), signal.SIGKILL)
    geelark.release_task(row[C.TASK_ID], ["failed"], fail_code=20116,
                         fail_desc="Account not logged in")
    res = cli(campaigns_dir, geelark, "--run")
    assert res.returncode == 0, res.stderr + res.stdout
    done, = runs.rows_of(ctx)
    assert (done[C.STATUS], done[C.ERROR_CATEGORY]) == (C.FAILED, "account"), done
    assert "not logged in" in done[C.ERROR].lower()
    assert done[C.ERROR_TYPE] != "outcome_unknown"


def test_insufficient_balance_stops_the_run_and_says_why(campaigns_dir, geelark):
    geelark.balance_ok = False
    root = campaign(campaigns_dir, [("ann", "farm-01"), ("bob", "farm-01"), ("cat", "farm-01")],
                    3, max_attempts=3)
    res = cli(campaigns_dir, geelark, "--run", "--workers", "1")
    assert res.returncode == 1, res.stdout
    assert "balance" in res.stderr.lower() and "stopped claiming" in res.stderr
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    statuses = Counter(r[C.STATUS] for r in runs.rows_of(ctx))
    assert statuses[C.PENDING] == 2, statuses     # no job after the first was tried
    first = next(r for r in runs.rows_of(ctx) if r[C.STATUS] != C.PENDING)
    assert (first[C.STATUS], first[C.ERROR_TYPE]) == (C.RETRYING, "geelark_balance"), first
    assert not geelark.created_tasks
    assert "run_blocked" in ctx.events_file.read_text()


def test_stop_all_cancels_a_waiting_task_and_the_job_is_retried_later(campaigns_dir, geelark):
    geelark.script_task(["waiting"])                       # Geelark has not started it
    root = campaign(campaigns_dir, [("ann", "farm-01")], 1)
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    sup = start_detached(campaigns_dir, geelark)
    row = runs.wait_for(lambda: _publishing(ctx), timeout=60, what="a task id on disk")
    res = cli(campaigns_dir, geelark, "--stop-all")
    assert res.returncode == 0, res.stderr
    runs.wait_exit(sup, timeout=30)
    task, = geelark.created_tasks
    assert task.id == row[C.TASK_ID] and task.status == 7, "the waiting task is cancelled"
    done, = runs.rows_of(ctx)
    assert (done[C.STATUS], done[C.ERROR_TYPE]) == (C.RETRYING, "task_cancelled"), done


def test_stop_all_leaves_a_running_task_claimed_for_the_next_run(campaigns_dir, geelark):
    geelark.script_task(["waiting", "in_progress"])        # it may be publishing: not cancelled
    root = campaign(campaigns_dir, [("ann", "farm-01")], 1)
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    sup = start_detached(campaigns_dir, geelark)
    row = runs.wait_for(lambda: _publishing(ctx), timeout=60, what="a task id on disk")
    runs.wait_for(lambda: geelark.created_tasks[0].status == 2, timeout=30, what="in progress")
    assert cli(campaigns_dir, geelark, "--stop-all").returncode == 0
    runs.wait_exit(sup, timeout=30)
    held, = runs.rows_of(ctx)
    assert held[C.STATUS] == C.CLAIMED and held[C.TASK_ID] == row[C.TASK_ID]
    assert geelark.created_tasks[0].status == 2
    geelark.release_task(row[C.TASK_ID], ["completed"])
    res = cli(campaigns_dir, geelark, "--run")
    assert res.returncode == 0, res.stderr + res.stdout
    done, = runs.rows_of(ctx)
    assert done[C.STATUS] == C.SUCCESS and len(geelark.created_tasks) == 1
