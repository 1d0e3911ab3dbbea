"""Builders and fixtures for the console tests: a deterministic campaigns folder (fixed rows,
heartbeats and logs around a frozen clock), a held run lock that makes a campaign look running,
and helpers to wait for the console's polls.

Test modules import the fixtures they use from here: a conftest.py in this folder would shadow
tests/conftest.py for the modules that do `from conftest import ...`."""
from __future__ import annotations

import asyncio
import csv
import functools
import json
import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

import pytest
from filelock import FileLock

from engine import columns as C
from engine.context import PostingContext
from engine.power import PhonePower, Power
from engine.rules import parse_time
from engine.runstate import create_time_of
from engine.tracker import serialize

# 2025-06-15 12:00:00 UTC, a Sunday: the frozen "now" of every snapshot
T0 = 1_749_988_800.0
FAKE_SUPERVISOR_PID = 4242


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds")


def frozen_clock() -> float:
    return T0


def write_campaign(root: Path, accounts: list[tuple[str, str]], videos: int,
                   settings: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "videos").mkdir(exist_ok=True)
    (root / "accounts.txt").write_text("".join(f"{a},{p}\n" for a, p in accounts))
    with open(root / "captions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "post_caption"])
        for i in range(videos):
            name = f"clip_{i:03d}.mp4"
            (root / "videos" / name).write_bytes(b"\0" * 16 + bytes([i % 256]))
            w.writerow([name, f"Clip {i}: golden hour over the harbour, take {i} 🎬 #reels"])
    (root / "campaign.json").write_text(json.dumps(settings or {}))
    return root


def job(root: Path, i: int, account: str, phone: str, status: str, **fields: str) -> list[str]:
    r = [""] * C.WIDTH
    name = f"clip_{i:03d}.mp4"
    r[C.JOB_ID] = f"{name}_{root.name}"
    r[C.ACCOUNT] = account
    r[C.VIDEO_PATH] = f"videos/{name}"   # relative: snapshots must not show the temp dir
    r[C.CAPTION] = f"Clip {i}: golden hour over the harbour, take {i} 🎬 #reels"
    r[C.STATUS] = status
    r[C.ATTEMPTS] = "0"
    r[C.MAX_ATTEMPTS] = "3"
    r[C.PASS_NUMBER] = "1"
    r[C.PHONE_ID] = phone
    for key, value in fields.items():
        r[C.COLUMNS.index(key)] = str(value)
    return r


ACCOUNTS = [("luna.clips", "phone-01"), ("max_reels", "phone-02"), ("studio.nord", "phone-03"),
            ("daily.drip", "phone-04"), ("kira_moves", "phone-05"), ("the.snack.lab", "phone-06"),
            ("urban.paws", "phone-07"), ("retro.rides", "phone-07")]


def frozen_rows(root: Path) -> list[list[str]]:
    """A day in progress at T0: successes spread over the last hours, two jobs running, a
    suspended account, an infrastructure failure waiting to be retried, pending work."""
    t = T0
    done = lambda i, acc, ph, ago, took, w: job(  # noqa: E731
        root, i, acc, ph, C.SUCCESS, worker_id=w, attempts="1", claimed_at=iso(t - ago - took),
        completed_at=iso(t - ago), video_id=f"vid{i}", run_id="run-a")
    return [
        done(0, "luna.clips", "phone-01", 5 * 3600, 41, "0"),
        done(1, "max_reels", "phone-02", 3 * 3600 + 60, 37, "1"),
        done(2, "studio.nord", "phone-03", 2 * 3600 + 300, 52, "2"),
        done(3, "daily.drip", "phone-04", 1800, 44, "0"),
        done(4, "luna.clips", "phone-01", 600, 39, "1"),
        job(root, 5, "kira_moves", "phone-05", C.FAILED, worker_id="2", attempts="1",
            claimed_at=iso(t - 1500), completed_at=iso(t - 1480), error="account suspended",
            error_type="suspended", error_category="account", run_id="run-a"),
        job(root, 6, "the.snack.lab", "phone-06", C.RETRYING, worker_id="0", attempts="1",
            claimed_at=iso(t - 400), completed_at=iso(t - 380),
            error="adb: device phone-06 offline (timeout after 30s)", error_type="adb_timeout",
            error_category="infrastructure", retry_at=iso(t + 200), pass_number="2",
            run_id="run-a"),
        job(root, 7, "urban.paws", "phone-07", C.CLAIMED, worker_id="1", attempts="1",
            claimed_at=iso(t - 75), phase="publishing", claim_id="c7", run_id="run-a"),
        job(root, 8, "max_reels", "phone-02", C.CLAIMED, worker_id="0", attempts="2",
            claimed_at=iso(t - 12), phase="preparing", claim_id="c8", run_id="run-a"),
        job(root, 9, "retro.rides", "phone-07", C.PENDING),
        job(root, 10, "studio.nord", "phone-03", C.PENDING),
        job(root, 11, "daily.drip", "phone-04", C.PENDING),
    ]


def heartbeat(ctx: PostingContext, worker_id: int, pid: int, phone: str | None, state: str,
              job_id: str, account: str, age: float) -> None:
    ctx.heartbeats_dir.mkdir(parents=True, exist_ok=True)
    (ctx.heartbeats_dir / f"worker-{worker_id}.json").write_text(json.dumps({
        "worker_id": str(worker_id), "pid": pid, "create_time": 1.0, "phone": phone,
        "appium_port": 4723 + 2 * worker_id,
        "system_ports": f"{8200 + 10 * worker_id}-{8209 + 10 * worker_id}", "state": state,
        "job_id": job_id, "account": account, "at": T0 - age, "run_id": "run-a"}))


def power(ctx: PostingContext, phone: str, events: list[tuple[float, str, str]]) -> None:
    """Write a phone's real power record by replaying `events`, (at, state, worker_id) in time
    order, through PhonePower with its clock set to each one; state "post_ended" marks the end
    of a post (min_gap_seconds counts from there)."""
    clock = [0.0]
    phones = PhonePower(ctx.power_dir, ctx.settings.tz, clock=lambda: clock[0])
    for at, state, worker in events:
        clock[0] = at
        if state == "post_ended":
            phones.post_ended(phone)
        else:
            phones.set_state(phone, Power(state), worker_id=worker,
                             campaign_root=str(ctx.root))


def power_from_rows(ctx: PostingContext, rows: list[list[str]], left_on: set[str]) -> None:
    """Power records that agree with the day's rows: each job's phone starts 20 s before the
    claim and is on from it; a finished job ends its post and turns the phone off, a running one
    keeps it on. The phones in `left_on` stayed on after their last job (a crash, or a backend
    that could not stop them): they still bill."""
    events: dict[str, list[tuple[float, str, str]]] = {}
    for r in rows:
        claimed = parse_time(r[C.CLAIMED_AT]) if r[C.CLAIMED_AT] else None
        if claimed is None:
            continue
        mine = events.setdefault(r[C.PHONE_ID], [])
        mine += [(claimed - 20, "starting", r[C.WORKER_ID]), (claimed, "on", r[C.WORKER_ID])]
        if r[C.STATUS] != C.CLAIMED:
            ended = parse_time(r[C.COMPLETED_AT])
            mine.append((ended, "post_ended", ""))
            if r[C.PHONE_ID] not in left_on:
                mine.append((ended, "off", ""))
    for phone, mine in events.items():
        power(ctx, phone, sorted(mine, key=lambda e: e[0]))


def build_frozen(campaigns_dir: Path) -> Path:
    """Two campaigns: `spring` mid-day with workers, phones and logs, `autumn` disabled and idle.

    spring's phones: the two workers' phones are on, phone-05 was left on after its failure
    (no worker drives it), the others are off with their on-time today. Its phones rest 35 min
    between posts, so daily.drip (last post 30 min ago, a job waiting) waits 5 more minutes."""
    spring = write_campaign(campaigns_dir / "spring", ACCOUNTS, 16,
                            {"max_posts_per_account_per_day": 2, "timezone": "UTC",
                             "min_gap_seconds": 2100})
    rows = frozen_rows(spring)
    (spring / "progress.csv").write_bytes(serialize(rows))
    ctx = PostingContext.for_campaign_dir(spring, campaigns_dir)
    power_from_rows(ctx, rows, left_on={"phone-05"})
    heartbeat(ctx, 0, 5100, "phone-02", "posting", "clip_008.mp4_spring", "max_reels", 1.2)
    heartbeat(ctx, 1, 5101, "phone-07", "posting", "clip_007.mp4_spring", "urban.paws", 0.4)
    heartbeat(ctx, 2, 5102, None, "idle", "", "", 9.0)
    ctx.logs_dir.mkdir(parents=True, exist_ok=True)
    day = "2025-06-15"
    (ctx.logs_dir / "supervisor.log").write_text("".join(f"{day} {line}\n" for line in [
        "06:59:40 INFO run run-a started: 3 worker(s), backend simulated",
        "06:59:41 INFO worker 0 started as pid 5100",
        "06:59:41 INFO worker 1 started as pid 5101",
        "06:59:41 INFO worker 2 started as pid 5102",
        "11:35:20 WARNING failed clip_005.mp4_spring: account suspended [account/suspended]",
        "11:53:40 WARNING failed clip_006.mp4_spring: adb: device phone-06 offline -> retrying",
        "11:58:45 INFO claimed clip_007.mp4_spring (account urban.paws, phone phone-07)",
        "11:59:48 INFO claimed clip_008.mp4_spring (account max_reels, phone phone-02)",
    ]))
    (ctx.logs_dir / "worker-0.log").write_text("".join(f"{day} {line}\n" for line in [
        "11:53:20 INFO claimed clip_006.mp4_spring (account the.snack.lab, phone phone-06, attempt 1)",
        "11:53:40 WARNING failed clip_006.mp4_spring: adb: device phone-06 offline (timeout after 30s) [infrastructure/adb_timeout] -> retrying",
        "11:59:48 INFO claimed clip_008.mp4_spring (account max_reels, phone phone-02, attempt 2)",
    ]))
    autumn = write_campaign(campaigns_dir / "autumn", [("old.account", "phone-09")], 2,
                            {"enabled": False})
    (autumn / "progress.csv").write_bytes(serialize([
        job(autumn, 0, "old.account", "phone-09", C.SUCCESS, attempts="1",
            claimed_at=iso(T0 - 90000), completed_at=iso(T0 - 89950)),
        job(autumn, 1, "old.account", "phone-09", C.PENDING),
    ]))
    return spring


def fake_alive(pid: int, create_time: float | None = None) -> bool:
    """The frozen fixture's workers are 'alive' by pid; nothing else is."""
    return 5100 <= pid <= 5199


@contextmanager
def hold_run(ctx: PostingContext, pid: int = FAKE_SUPERVISOR_PID) -> Iterator[None]:
    """Make the campaign look running: hold its run lock in this process and name a supervisor."""
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(ctx.run_lock_file), timeout=0)
    lock.acquire()
    (ctx.state_dir / "run.json").write_text(json.dumps({
        "pid": pid, "create_time": create_time_of(os.getpid()), "run_id": "run-a",
        "started_at": T0 - 5 * 3600, "workers": 3}))
    try:
        yield
    finally:
        lock.release()
        (ctx.state_dir / "run.json").unlink(missing_ok=True)


def screen_text(app) -> str:
    """The screen as plain text, for assertions and for eyeballing layouts."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


async def wait_until(pilot, predicate, timeout: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await pilot.pause(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def notifications(app, severity: str | None = None) -> list[str]:
    """The notifications on screen now (Textual's toasts), each as its text: title, then message."""
    return [str(toast.render()) for toast in app.screen.query("Toast")
            if severity is None or toast.has_class(f"-{severity}")]


async def until_notified(pilot, needle: str, severity: str | None = None,
                         timeout: float = 10.0) -> str:
    """Wait until a notification with `needle` in it is on screen; returns its text."""
    def found():
        return next((text for text in notifications(pilot.app, severity) if needle in text), None)
    return await wait_until(pilot, found, timeout, f"a notification with {needle!r}")


async def next_frame(pilot, timeout: float = 10.0) -> None:
    """Wait for a poll that started after this call to be drawn."""
    app = pilot.app
    target = app.frame_count + (2 if app._polling else 1)
    app.request_refresh()
    await wait_until(pilot, lambda: app.frame_count >= target, timeout, "a poll")
    await pilot.pause()


def async_test(fn):
    """Run an `async def` test with asyncio (no async pytest plugin is a dependency)."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))
    return run


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture
def frozen_dir(tmp_path: Path) -> Path:
    """A campaigns folder with `spring` (mid-day, three workers) and `autumn` (disabled)."""
    d = tmp_path / "campaigns"
    d.mkdir()
    build_frozen(d)
    return d


@pytest.fixture
def spring_ctx(frozen_dir: Path) -> PostingContext:
    return PostingContext.for_campaign(frozen_dir, "spring")


@pytest.fixture
def running(spring_ctx: PostingContext):
    """`spring` looks running: its run lock is held here, run.json names pid 4242."""
    with hold_run(spring_ctx):
        yield spring_ctx


@pytest.fixture
def frozen_app(frozen_dir: Path):
    """Makes an app on the frozen folder: clock stopped, no poll after the first unless asked,
    cursor blink off."""
    from console.app import PostdeckApp

    def make(campaign: str | None = "spring") -> PostdeckApp:
        return PostdeckApp(frozen_dir, campaign, clock=frozen_clock, pid_alive=fake_alive,
                           poll_interval=3600, blink=False)
    return make
