"""Crash injection: SIGKILL at random moments, then check what the product promises.

Two harnesses:
- the store: processes hammering one progress file (claim, phases, complete, fail) are killed at
  random moments (inside the lock, between the temp write and the replace, anywhere);
- runs: real `postdeck --run` on the simulated backend, with random workers or the supervisor
  killed in any phase.
After every kill: the file parses, every job is in exactly one status, no account is above its
limit or has two claims, no video succeeded twice, every acknowledged success is still there,
and in the end a new run completes the day.

Each harness runs against both stores: the CSV file, and the PostgreSQL store (POSTDECK_STORE in
every process), whose facts are checked through the store and in the database instead of in the
folder's files (pg_crash_helpers.py).

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
import pytest

from engine import columns as C
from engine.accounts import account_states
from engine.context import PostingContext
from engine.runstate import WORKER_MARKER_ENV, live_workers, process_alive, read_run_info

from conftest import REPO, fast_sim, postdeck, write_campaign
from helpers import assert_daily_limits
from pg_crash_helpers import CsvKind, PgKind

KILLS = int(os.environ.get("POSTDECK_CRASH_KILLS", "24"))
HAMMER = Path(__file__).with_name("hammer.py")
PG_HOST = "crash-host"


@pytest.fixture(params=["csv", "postgresql"])
def kind(request, monkeypatch, tmp_path):
    """The store every process of the test uses: the CSV file, or a fresh PostgreSQL database
    (POSTDECK_STORE, inherited by every process the test starts, and read by each
    PostingContext the test makes)."""
    monkeypatch.delenv("POSTDECK_STORE", raising=False)
    if request.param == "csv":
        yield CsvKind()
        return
    url = request.getfixturevalue("pg_url")
    monkeypatch.setenv("POSTDECK_STORE", url)
    monkeypatch.setenv("POSTDECK_HOST", PG_HOST)
    pg = PgKind(url, tmp_path / "pg-days")
    try:
        yield pg
    finally:
        pg.close()


def check(ctx: PostingContext, kind, acked: set[str] | None = None,
          allow_claims: bool = True) -> dict:
    store = kind.store(ctx)
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
    assert_daily_limits([kind.days_folder(ctx)], limit)
    kind.check(ctx, limit)
    return Counter(r[C.STATUS] for r in rows)


def _reset_same_day(ctx: PostingContext, campaigns_dir: Path, kind) -> int:
    """The operator's habit: another --reset-day --force-reseed on the same calendar day. It must
    not give any account a second day's worth of posts."""
    kind.before_reset(ctx)
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", ctx.name,
                   "--reset-day", "--force-reseed", "--seed-only")
    assert res.returncode == 0, res.stderr
    return kind.store(ctx).stats()["total"]


def _new_day(ctx: PostingContext, campaigns_dir: Path, kind) -> int:
    """Let a calendar day pass (a reset alone is no new day: the limit is per calendar day),
    archive the finished day and seed the next one (the ledger keeps posted videos out)."""
    kind.age_one_day(ctx)
    kind.before_reset(ctx)
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", ctx.name,
                   "--reset-day", "--force-reseed", "--seed-only")
    assert res.returncode == 0, res.stderr
    return kind.store(ctx).stats()["total"]


def leftovers(ctx: PostingContext, kind) -> list[tuple[str, str]]:
    """Jobs still pending, retrying or claimed, with their account's state."""
    rows = kind.store(ctx).read().rows
    states = {s.account: s.state for s in account_states(rows, ctx.settings, time.time())}
    return [(r[C.JOB_ID], states[r[C.ACCOUNT]]) for r in rows
            if r[C.STATUS] in (C.PENDING, C.RETRYING, C.CLAIMED)]


def day_done(ctx: PostingContext, kind) -> bool:
    """Nothing left may be posted today: every leftover's account used its daily limit (unknown
    outcomes count) or is blocked."""
    return all(state in ("LIMIT", "BLOCKED") for _, state in leftovers(ctx, kind))


def assert_day_done(ctx: PostingContext, kind) -> None:
    assert day_done(ctx, kind), leftovers(ctx, kind)


def test_sigkill_store_writers_at_random_moments(campaigns_dir, tmp_path, kind):
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
    errs = {w: tmp_path / f"hammer-{w}.err" for w in acks}
    kills = days = same_day_resets = 0

    def spawn(w: str) -> None:
        with open(errs[w], "ab") as err:
            procs[w] = subprocess.Popen([sys.executable, str(HAMMER), str(root),
                                         str(campaigns_dir), w, str(acks[w]),
                                         str(rng.randrange(1 << 30))], env=env, stderr=err)

    def ended_well(w: str) -> None:
        """A hammer that ended by itself ran out of jobs (exit 0): one that died of an error
        met a store that failed under the crashes."""
        code = procs[w].wait()
        assert code in (0, -signal.SIGKILL), (
            f"hammer {w} ended with {code}: {errs[w].read_text()[-3000:]}")

    def read_acks() -> None:
        for path in acks.values():
            if path.exists():
                for line in path.read_text().splitlines():
                    what, _, job = line.partition(" ")
                    if what == "success":
                        acked.add(job)

    def started(w: str) -> bool:
        """Whether hammer `w` is past Python's start-up and its imports (its ack log says so),
        or over: a kill before that would land where no store is written."""
        path = acks[w]
        return (procs[w].poll() is not None
                or path.exists() and f"start {procs[w].pid}\n" in path.read_text())

    def check_ledger() -> None:
        posted = {e["job_id"] for e in kind.store(ctx).ledger()}
        assert acked <= posted, f"acknowledged successes missing from the ledger: {acked - posted}"

    for w in acks:
        spawn(w)
    store = kind.store(ctx)
    deadline = time.time() + 60
    give_up = time.time() + 120 + 10 * KILLS
    while kills < KILLS:
        assert time.time() < give_up, f"the hammers stopped making progress ({kills} kills)"
        time.sleep(rng.uniform(0.002, 0.06))
        ready = [x for x in procs if started(x)]
        if not ready:
            assert time.time() < deadline, "no hammer started in a minute"
            continue
        deadline = time.time() + 60
        w = rng.choice(ready)
        proc = procs[w]
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        ended_well(w)
        read_acks()
        # recover the dead writer's claim as the supervisor would, then check everything
        live = {x for x, p in procs.items() if p.poll() is None}
        store.recover_stale(live)
        today = {r[C.JOB_ID] for r in store.read().rows}
        check(ctx, kind, acked & today)
        check_ledger()
        if day_done(ctx, kind):
            for x in procs:  # all idle: start the next day
                ended_well(x)
            days += 1
            if rng.random() < 0.3:
                _reset_same_day(ctx, campaigns_dir, kind)
                same_day_resets += 1
            else:
                assert _new_day(ctx, campaigns_dir, kind) > 0, "ran out of videos"
            for x in procs:
                spawn(x)
            continue
        spawn(w)
    for proc in procs.values():
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    read_acks()
    store.recover_stale(())
    check(ctx, kind, acked & {r[C.JOB_ID] for r in store.read().rows}, allow_claims=False)
    check_ledger()
    # a new run on the simulated backend completes whatever is left of the day
    (root / "campaign.json").write_text(
        '{"max_posts_per_account_per_day": 4, "cooldown_minutes": 0, "simulation": '
        '{"boot_seconds": 0, "post_seconds": 0.01, "failure_rate": 0}}')
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", "--run",
                   "--workers", "3", "--retry-delay", "0")
    assert res.returncode == 0, res.stderr
    counts = check(ctx, kind, allow_claims=False)
    assert_day_done(ctx, kind)
    check_ledger()
    print(f"store harness ({kind.name}): {kills} SIGKILLs over {days + 1} days "
          f"({same_day_resets} extra resets on the same day), {len(acked)} acknowledged "
          f"successes, final day {dict(counts)}")
    assert kills == KILLS


def _victim(ctx: PostingContext, rng: random.Random, kind):
    """A live worker (in whatever phase it is) or, one time in six, the supervisor."""
    info = read_run_info(ctx)
    workers = live_workers(ctx)
    if info and psutil.pid_exists(info.pid) and (not workers or rng.random() < 1 / 6):
        return info.pid, "supervisor"
    if workers:
        hb = rng.choice(workers)
        phase = {r[C.WORKER_ID]: r[C.PHASE] for r in kind.store(ctx).read().rows
                 if r[C.STATUS] == C.CLAIMED}.get(hb.worker_id, "idle")
        return hb.pid, f"worker {phase}"
    return None


def campaign_workers(ctx: PostingContext) -> list[psutil.Process]:
    """The campaign's live worker processes, heartbeat or not yet (a killed supervisor's last
    workers may still be starting), by the marker each carries in its environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (proc.environ().get(WORKER_MARKER_ENV) == str(ctx.root)
                    and proc.status() != psutil.STATUS_ZOMBIE):
                found.append(proc)
        except (psutil.Error, OSError):
            continue
    return found


def workers_alive(ctx: PostingContext) -> bool:
    return bool(live_workers(ctx) or campaign_workers(ctx))


@pytest.fixture
def no_leftovers(campaigns_dir):
    """Whatever the test's end, no run of it outlives it: a detached supervisor (or its orphans)
    of a failed test would go on running, against a database dropped meanwhile."""
    yield
    ctx = PostingContext.for_campaign_dir(campaigns_dir / "c", campaigns_dir)
    info = read_run_info(ctx)
    procs = campaign_workers(ctx)
    if info is not None and process_alive(info.pid, info.create_time):
        procs.insert(0, psutil.Process(info.pid))
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=10)


def test_sigkill_runs_at_random_moments(campaigns_dir, kind, no_leftovers):
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
            victim = _victim(ctx, rng, kind)
            if victim is None:
                continue
            pid, what = victim
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
            kills += 1
            victims[what] += 1
            check(ctx, kind)
            if what == "supervisor":
                break
        try:
            psutil.Process(sup).wait(60)
        except psutil.NoSuchProcess:
            pass
        deadline = time.time() + 30
        while workers_alive(ctx) and time.time() < deadline:
            time.sleep(0.1)
        check(ctx, kind)
        if day_done(ctx, kind):
            days += 1
            if rng.random() < 0.3:
                _reset_same_day(ctx, campaigns_dir, kind)
                same_day_resets += 1
            else:
                assert _new_day(ctx, campaigns_dir, kind) > 0, "ran out of videos"
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", "--run",
                   "--workers", "2", "--retry-delay", "0")
    assert res.returncode == 0, res.stderr
    counts = check(ctx, kind, allow_claims=False)
    assert_day_done(ctx, kind)
    print(f"run harness ({kind.name}): {kills} SIGKILLs over {runs} runs and {days + 1} days, "
          f"{same_day_resets} extra resets on the same day ({dict(victims)}), final day "
          f"{dict(counts)}")
