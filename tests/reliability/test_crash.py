"""Crash injection: SIGKILL at random moments, then check what the product promises.

Two harnesses:
- the store: processes hammering one progress file (claim, phases, complete, fail) are killed at
  random moments (inside the lock, between the temp write and the replace, anywhere);
- runs: real `postdeck --run` on the simulated backend, with random workers or the supervisor
  killed in any phase.
After every kill: the file parses, every job is in exactly one status, no account is above its
limit or has two claims, no video succeeded twice, every acknowledged success is still there,
and in the end a new run completes the day.

The default run does a few dozen kills; `POSTDECK_CRASH_KILLS=200` (or more) runs the full count.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil

from engine import columns as C
from engine.accounts import account_states
from engine.context import PostingContext
from engine.runstate import live_workers, read_run_info
from engine.store import open_store

from conftest import REPO, fast_sim, postdeck, write_campaign
from helpers import age_one_day, assert_daily_limits

KILLS = int(os.environ.get("POSTDECK_CRASH_KILLS", "24"))
HAMMER = Path(__file__).with_name("hammer.py")


def check(ctx: PostingContext, acked: set[str] | None = None, allow_claims: bool = True) -> dict:
    store = open_store(ctx)
    rows = store.read().rows                      # parses, or raises: never a torn file
    ids = [r[C.JOB_ID] for r in rows]
    assert len(ids) == len(set(ids)), "a job in two rows"
    assert all(r[C.STATUS] in C.STATUSES for r in rows)
    limit = ctx.daily_limit
    used, claims = Counter(), Counter()
    for r in rows:
        if r[C.STATUS] in (C.SUCCESS, C.CLAIMED) or (r[C.STATUS] == C.FAILED
                                                     and r[C.ERROR_TYPE] == "outcome_unknown"):
            used[r[C.ACCOUNT]] += 1
        if r[C.STATUS] == C.CLAIMED:
            claims[r[C.ACCOUNT]] += 1
    assert all(n <= limit for n in used.values()), f"account past its limit: {used}"
    assert all(n <= 1 for n in claims.values()), f"two claims on one account: {claims}"
    if not allow_claims:
        assert not claims, f"claims left behind: {claims}"
    success = Counter(r[C.VIDEO_PATH] for r in rows if r[C.STATUS] == C.SUCCESS)
    assert all(n == 1 for n in success.values()), "a video succeeded twice"
    ledger = [e["video_path"] for e in store.ledger()]
    assert len(ledger) == len(set(ledger)), "a video is twice in the ledger"
    status = {r[C.JOB_ID]: r[C.STATUS] for r in rows}
    for job_id in acked or ():
        assert status.get(job_id) == C.SUCCESS, f"acknowledged success of {job_id} was lost"
    # and over every day the harness has run: archives included, per calendar day
    assert_daily_limits([ctx.root], limit)
    return Counter(r[C.STATUS] for r in rows)


def _reset_same_day(ctx: PostingContext, campaigns_dir: Path) -> int:
    """The operator's habit: another --reset-day --force-reseed on the same calendar day. It must
    not give any account a second day's worth of posts."""
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", ctx.name,
                   "--reset-day", "--force-reseed", "--seed-only")
    assert res.returncode == 0, res.stderr
    return open_store(ctx).stats()["total"]


def _new_day(ctx: PostingContext, campaigns_dir: Path) -> int:
    """Let a calendar day pass (a reset alone is no new day: the limit is per calendar day),
    archive the finished day and seed the next one (the ledger keeps posted videos out)."""
    age_one_day(ctx.root)
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", ctx.name,
                   "--reset-day", "--force-reseed", "--seed-only")
    assert res.returncode == 0, res.stderr
    return open_store(ctx).stats()["total"]


def leftovers(ctx: PostingContext) -> list[tuple[str, str]]:
    """Jobs still pending, retrying or claimed, with their account's state."""
    rows = open_store(ctx).read().rows
    states = {s.account: s.state for s in account_states(rows, ctx.settings, time.time())}
    return [(r[C.JOB_ID], states[r[C.ACCOUNT]]) for r in rows
            if r[C.STATUS] in (C.PENDING, C.RETRYING, C.CLAIMED)]


def day_done(ctx: PostingContext) -> bool:
    """Nothing left may be posted today: every leftover's account used its daily limit (unknown
    outcomes count) or is blocked."""
    return all(state in ("LIMIT", "BLOCKED") for _, state in leftovers(ctx))


def assert_day_done(ctx: PostingContext) -> None:
    assert day_done(ctx), leftovers(ctx)


def test_sigkill_store_writers_at_random_moments(campaigns_dir, tmp_path):
    accounts = [(f"a{i}", f"p{i % 6}") for i in range(24)]
    # enough videos for every day the kills need; no cooldowns, which would rest accounts for
    # 45 minutes after the hammer's failures
    root = write_campaign(campaigns_dir / "c", accounts, 24 * 4 * (2 + KILLS // 12),
                          {"max_posts_per_account_per_day": 4, "cooldown_minutes": 0})
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    assert postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c",
                    "--seed-only").returncode == 0
    rng = random.Random(20261123)
    env = {**os.environ, "POSTDECK_REPO": str(REPO)}
    acked: set[str] = set()
    procs: dict[str, subprocess.Popen] = {}
    acks = {w: tmp_path / f"ack-{w}.log" for w in "0123"}
    kills = days = same_day_resets = 0

    def spawn(w: str) -> None:
        procs[w] = subprocess.Popen([sys.executable, str(HAMMER), str(root), str(campaigns_dir),
                                     w, str(acks[w]), str(rng.randrange(1 << 30))], env=env)

    def read_acks() -> None:
        for path in acks.values():
            if path.exists():
                for line in path.read_text().splitlines():
                    kind, _, job = line.partition(" ")
                    if kind == "success":
                        acked.add(job)

    def check_ledger() -> None:
        posted = {e["job_id"] for e in open_store(ctx).ledger()}
        assert acked <= posted, f"acknowledged successes missing from the ledger: {acked - posted}"

    for w in acks:
        spawn(w)
    store = open_store(ctx)
    while kills < KILLS:
        time.sleep(rng.uniform(0.002, 0.06))
        w = rng.choice(list(procs))
        proc = procs[w]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        read_acks()
        # recover the dead writer's claim as the supervisor would, then check everything
        live = {x for x, p in procs.items() if p.poll() is None}
        store.recover_stale(live)
        today = {r[C.JOB_ID] for r in store.read().rows}
        check(ctx, acked & today)
        check_ledger()
        if day_done(ctx):
            for p in procs.values():  # all idle: start the next day
                p.wait()
            days += 1
            if rng.random() < 0.3:
                _reset_same_day(ctx, campaigns_dir)
                same_day_resets += 1
            else:
                assert _new_day(ctx, campaigns_dir) > 0, "ran out of videos"
            for x in procs:
                spawn(x)
            continue
        spawn(w)
    for proc in procs.values():
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    read_acks()
    store.recover_stale(())
    check(ctx, acked & {r[C.JOB_ID] for r in store.read().rows}, allow_claims=False)
    check_ledger()
    # a new run on the simulated backend completes whatever is left of the day
    (root / "campaign.json").write_text(
        '{"max_posts_per_account_per_day": 4, "cooldown_minutes": 0, "simulation": '
        '{"boot_seconds": 0, "post_seconds": 0.01, "failure_rate": 0}}')
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", "--run",
                   "--workers", "3", "--retry-delay", "0")
    assert res.returncode == 0, res.stderr
    counts = check(ctx, allow_claims=False)
    assert_day_done(ctx)
    check_ledger()
    print(f"store harness: {kills} SIGKILLs over {days + 1} days ({same_day_resets} extra "
          f"resets on the same day), {len(acked)} acknowledged successes, final day "
          f"{dict(counts)}")
    assert kills == KILLS


def _victim(ctx: PostingContext, rng: random.Random):
    """A live worker (in whatever phase it is) or, one time in six, the supervisor."""
    info = read_run_info(ctx)
    workers = live_workers(ctx)
    if info and psutil.pid_exists(info.pid) and (not workers or rng.random() < 1 / 6):
        return info.pid, "supervisor"
    if workers:
        hb = rng.choice(workers)
        phase = {r[C.WORKER_ID]: r[C.PHASE] for r in open_store(ctx).read().rows
                 if r[C.STATUS] == C.CLAIMED}.get(hb.worker_id, "idle")
        return hb.pid, f"worker {phase}"
    return None


def test_sigkill_runs_at_random_moments(campaigns_dir):
    target = max(8, KILLS // 2)
    root = write_campaign(campaigns_dir / "c", [(f"a{i}", f"p{i % 5}") for i in range(10)],
                          30 * (2 + target // 3),
                          {"max_posts_per_account_per_day": 3, "cooldown_minutes": 0,
                           "simulation": fast_sim(boot_seconds=0.05, post_seconds=0.25,
                                                  failure_rate=0.1)})
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    rng = random.Random(7)
    kills, runs, days, same_day_resets, victims = 0, 0, 0, 0, Counter()
    while kills < target:
        res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c",
                       "--run", "--detach", "--workers", "3", "--retry-delay", "0")
        if res.returncode != 0:
            # orphans of a killed supervisor finish their job first, as DESIGN.md says
            assert "still alive" in res.stderr or "already going" in res.stderr, res.stderr
            time.sleep(0.3)
            continue
        runs += 1
        sup = int(res.stdout.split("supervisor pid ")[1].split(")")[0])
        while psutil.pid_exists(sup) and kills < target:
            time.sleep(rng.uniform(0.1, 0.9))
            victim = _victim(ctx, rng)
            if victim is None:
                continue
            pid, what = victim
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            kills += 1
            victims[what] += 1
            check(ctx)
            if what == "supervisor":
                break
        try:
            psutil.Process(sup).wait(60)
        except psutil.NoSuchProcess:
            pass
        deadline = time.time() + 30
        while live_workers(ctx) and time.time() < deadline:
            time.sleep(0.1)
        check(ctx)
        if day_done(ctx):
            days += 1
            if rng.random() < 0.3:
                _reset_same_day(ctx, campaigns_dir)
                same_day_resets += 1
            else:
                assert _new_day(ctx, campaigns_dir) > 0, "ran out of videos"
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", "--run",
                   "--workers", "2", "--retry-delay", "0")
    assert res.returncode == 0, res.stderr
    counts = check(ctx, allow_claims=False)
    assert_day_done(ctx)
    print(f"run harness: {kills} SIGKILLs over {runs} runs and {days + 1} days, "
          f"{same_day_resets} extra resets on the same day ({dict(victims)}), final day "
          f"{dict(counts)}")
