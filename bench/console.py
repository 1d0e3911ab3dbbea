"""Benchmark: the console on a big campaign.

    .venv/bin/python bench/console.py            # 10,000 jobs, 1,000 accounts, 100 workers
    .venv/bin/python bench/console.py --quick    # a tenth of that (seconds)

Builds a campaign in a temp dir: 1,000 accounts, 10,000 jobs of the day in every status (100 of
them claimed, one per worker), 100 live workers' heartbeat files (they carry this process's pid
and create time, so the liveness check runs for real) and a supervisor log. Then, headless at
120x40:

  first paint   from starting the app until the first poll is drawn (panels filled)
  tick          CPU time (all threads) of one refresh after 1% of the jobs changed in the file:
                the thread worker's read + parse + diff, the main thread's update_cell calls,
                and the repaint; median and worst of several ticks
  memory        peak RSS of the process (getrusage), and the peak of Python allocations
                (tracemalloc) in a second, traced pass
  history       engine/history.py over a campaign of 30 archives of 5,000 rows (and today's
                file of 5,000): the first read, and a second one after today's file changed
                (the archives come from the reader's cache); the same size with --quick

Targets: first paint < 1.5 s, tick < 100 ms, memory < 250 MB, history < 1 s. Exits 1 if one is
missed.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from console.app import PostdeckApp  # noqa: E402
from engine import columns as C  # noqa: E402
from engine.context import PostingContext  # noqa: E402
from engine.durable import write_atomic  # noqa: E402
from engine.history import HistoryReader  # noqa: E402
from engine.runstate import create_time_of  # noqa: E402
from engine.rules import now_iso  # noqa: E402
from engine.tracker import serialize  # noqa: E402

TARGET_PAINT_S, TARGET_TICK_MS, TARGET_MB = 1.5, 100.0, 250.0
TARGET_HISTORY_S = 1.0
HISTORY_ARCHIVES, HISTORY_ROWS = 30, 5_000


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, timezone.utc).isoformat(timespec="seconds")


def build(root: Path, jobs: int, accounts: int, workers: int) -> list[list[str]]:
    root.mkdir(parents=True)
    (root / "videos").mkdir()
    (root / "captions.csv").write_text("filename,post_caption\n")
    (root / "campaign.json").write_text(json.dumps({"max_posts_per_account_per_day": 4,
                                                    "timezone": "UTC"}))
    (root / "accounts.txt").write_text("".join(f"account{a:04d},phone-{a:04d}\n"
                                               for a in range(accounts)))
    now = time.time()
    rng = random.Random(1)
    rows = []
    for i in range(jobs):
        a = i % accounts
        r = [""] * C.WIDTH
        r[C.JOB_ID] = f"video_{i:05d}.mp4_bench"
        r[C.ACCOUNT] = f"account{a:04d}"
        r[C.VIDEO_PATH] = f"/srv/videos/bench/video_{i:05d}.mp4"
        r[C.CAPTION] = f"caption {i}: a short video about something, #tag{i % 50}"
        r[C.PHONE_ID] = f"phone-{a:04d}"
        r[C.MAX_ATTEMPTS] = "3"
        r[C.PASS_NUMBER] = "1"
        r[C.ATTEMPTS] = "0"
        if i < workers:
            status = C.CLAIMED
        else:
            status = rng.choice([C.SUCCESS] * 4 + [C.PENDING] * 4 + [C.FAILED, C.RETRYING])
        r[C.STATUS] = status
        if status != C.PENDING:
            claimed = now - rng.uniform(60, 8 * 3600)
            r[C.WORKER_ID] = str(i % workers)
            r[C.CLAIMED_AT] = iso(claimed)
            r[C.ATTEMPTS] = "1"
            r[C.RUN_ID] = "bench-run"
            if status == C.CLAIMED:
                r[C.PHASE] = "preparing"
                r[C.CLAIM_ID] = f"claim{i}"
            else:
                r[C.COMPLETED_AT] = iso(claimed + rng.uniform(20, 90))
            if status in (C.FAILED, C.RETRYING):
                r[C.ERROR] = "adb: device offline (timeout after 30s)"
                r[C.ERROR_TYPE] = "adb_timeout"
                r[C.ERROR_CATEGORY] = "infrastructure"
        rows.append(r)
    (root / "progress.csv").write_bytes(serialize(rows))
    beats = root / ".postdeck" / "workers"
    beats.mkdir(parents=True)
    pid, created = os.getpid(), create_time_of(os.getpid())
    for w in range(workers):
        job = rows[w]
        (beats / f"worker-{w}.json").write_text(json.dumps({
            "worker_id": str(w), "pid": pid, "create_time": created,
            "phone": job[C.PHONE_ID], "appium_port": 4723 + 2 * w,
            "system_ports": f"{8200 + 10 * w}-{8209 + 10 * w}", "state": "posting",
            "job_id": job[C.JOB_ID], "account": job[C.ACCOUNT], "at": now, "run_id": "bench-run"}))
    logs = root / ".postdeck" / "logs"
    logs.mkdir()
    (logs / "supervisor.log").write_text("".join(
        f"2025-06-15 10:{m // 60:02d}:{m % 60:02d} INFO claimed video_{m:05d}.mp4_bench\n"
        for m in range(2000)))
    return rows


def change_one_percent(path: Path, rows: list[list[str]], round_: int) -> None:
    """1% of the jobs move on, as a busy minute of a run would do, and the file is replaced."""
    rng = random.Random(round_)
    now = time.time()
    for i in rng.sample(range(len(rows)), max(1, len(rows) // 100)):
        r = rows[i]
        if r[C.STATUS] in (C.PENDING, C.RETRYING):
            r[C.STATUS], r[C.PHASE], r[C.CLAIMED_AT] = C.CLAIMED, "preparing", iso(now - 5)
            r[C.WORKER_ID] = str(i % 100)
        elif r[C.STATUS] == C.CLAIMED:
            r[C.STATUS], r[C.PHASE], r[C.COMPLETED_AT] = C.SUCCESS, "", iso(now)
        else:
            r[C.ATTEMPTS] = str(int(r[C.ATTEMPTS] or 0) + 1)
    write_atomic(path, serialize(rows))


def build_history(root: Path, archives: int, rows_per_file: int) -> float:
    """A campaign of `archives` day archives (`progress_YYYYMMDD.csv`, one per past day) and
    today's file, `rows_per_file` rows each: mostly successes, failures of a few types, unknown
    outcomes, the rest not done. Returns the "now" the history is made at."""
    root.mkdir(parents=True)
    (root / "campaign.json").write_text(json.dumps({"timezone": "Europe/Berlin"}))
    (root / "accounts.txt").write_text("".join(f"account{a:04d},phone-{a:04d}\n"
                                               for a in range(1000)))
    now = time.time()
    rng = random.Random(2)
    kinds = [C.SUCCESS] * 7 + [C.FAILED, C.FAILED, C.PENDING]
    types = ["adb_timeout", "rate_limited", "outcome_unknown", "suspended", "appium_crash"]
    for ago in range(archives, -1, -1):
        day = now - ago * 86400
        rows = []
        for i in range(rows_per_file):
            r = [""] * C.WIDTH
            r[C.JOB_ID] = f"video_{ago:02d}_{i:05d}.mp4_history"
            r[C.ACCOUNT] = f"account{i % 1000:04d}"
            r[C.VIDEO_PATH] = f"/srv/videos/history/video_{ago:02d}_{i:05d}.mp4"
            r[C.CAPTION] = f"caption {i}: a short video about something, #tag{i % 50}"
            r[C.STATUS] = status = rng.choice(kinds)
            r[C.ATTEMPTS], r[C.MAX_ATTEMPTS], r[C.PASS_NUMBER] = "1", "3", "1"
            if status != C.PENDING:
                done = day - rng.uniform(0, 10 * 3600)
                r[C.CLAIMED_AT] = now_iso(done - 40)
                r[C.COMPLETED_AT] = now_iso(done)
            if status == C.FAILED:
                r[C.ERROR_TYPE] = rng.choice(types)
                r[C.ERROR] = f"{r[C.ERROR_TYPE]}: something went wrong"
            rows.append(r)
        stamp = datetime.fromtimestamp(day, timezone.utc).strftime("%Y%m%d")
        name = "progress.csv" if ago == 0 else f"progress_{stamp}.csv"
        (root / name).write_bytes(serialize(rows))
    return now


def measure_history(campaigns: Path) -> dict:
    """The first history of the folder, then a second after today's file changed: only that
    file is read again."""
    root = campaigns / "history"
    now = build_history(root, HISTORY_ARCHIVES, HISTORY_ROWS)
    ctx = PostingContext.for_campaign_dir(root, campaigns)
    reader = HistoryReader()
    started = time.perf_counter()
    first = reader.history(ctx, now=now)
    first_s = time.perf_counter() - started
    first_reads = reader.reads
    today = ctx.progress_file.read_bytes()
    write_atomic(ctx.progress_file, today.replace(b",pending,", b",success,", 50))
    started = time.perf_counter()
    second = reader.history(ctx, now=now)
    second_s = time.perf_counter() - started
    outcomes = sum(d["success"] + d["failed"] + d["unknown"] for d in first["days"])
    assert sum(d["success"] for d in second["days"]) > sum(d["success"] for d in first["days"])
    return {"first": first_s, "second": second_s, "first_reads": first_reads,
            "second_reads": reader.reads - first_reads, "outcomes": outcomes}


async def measure(campaigns: Path, rows: list[list[str]], ticks: int) -> dict:
    app = PostdeckApp(campaigns, "bench", poll_interval=3600, blink=False)
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        while app.frame_count < 1:
            await asyncio.sleep(0.005)
        await pilot.pause()
        first_paint = time.perf_counter() - started
        assert app.dashboard.jobs.row_count == len(rows), app.dashboard.jobs.row_count
        results = []
        gc_time = [0.0]
        started_gc: list[float] = []

        def on_gc(phase, info):
            if phase == "start":
                started_gc.append(time.perf_counter())
            elif started_gc:
                gc_time[0] += time.perf_counter() - started_gc.pop()

        gc.callbacks.append(on_gc)
        for t in range(ticks):
            change_one_percent(campaigns / "bench" / "progress.csv", rows, t)
            count = app.frame_count
            cpu0, wall0 = time.process_time(), time.perf_counter()
            app.request_refresh()
            gc_time[0] = 0.0
            while app.frame_count <= count:
                await asyncio.sleep(0.005)
            await pilot.pause()
            results.append((time.process_time() - cpu0, time.perf_counter() - wall0,
                            app.frame.fetch_cpu, app.last_apply_cpu, gc_time[0]))
        gc.callbacks.remove(on_gc)
        workers = app.dashboard.query_one("#workers").row_count
        accounts = app.dashboard.query_one("#accounts").row_count
    return {"first_paint": first_paint, "ticks": results, "workers": workers,
            "accounts": accounts}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--ticks", type=int, default=7)
    args = ap.parse_args()
    scale = 10 if args.quick else 1
    jobs, accounts, workers = 10_000 // scale, 1_000 // scale, 100 // scale
    with tempfile.TemporaryDirectory(prefix="postdeck-bench-") as tmp:
        campaigns = Path(tmp) / "campaigns"
        rows = build(campaigns / "bench", jobs, accounts, workers)
        print(f"campaign: {jobs} jobs, {accounts} accounts, {workers} live workers' heartbeats; "
              f"progress.csv {(campaigns / 'bench' / 'progress.csv').stat().st_size // 1024} KiB")
        r = asyncio.run(measure(campaigns, rows, args.ticks))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        tracemalloc.start()
        asyncio.run(measure(campaigns, rows, 1))
        traced_mb = tracemalloc.get_traced_memory()[1] / 1024 / 1024
        tracemalloc.stop()
        hist = measure_history(campaigns)
    cpu = [t[0] * 1000 for t in r["ticks"]]
    wall = [t[1] * 1000 for t in r["ticks"]]
    fetch = [t[2] * 1000 for t in r["ticks"]]
    apply = [t[3] * 1000 for t in r["ticks"]]
    gcs = [t[4] * 1000 for t in r["ticks"]]
    print(f"panels: {r['workers']} workers, {r['accounts']} accounts, {jobs} jobs shown")
    print(f"ticks ({len(cpu)}, 1% of jobs changed each): cpu ms {[round(c, 1) for c in cpu]}")
    print(f"  of which: poll thread {statistics.median(fetch):.1f} ms, main-thread apply "
          f"{statistics.median(apply):.1f} ms (medians); wall {statistics.median(wall):.1f} ms; "
          f"garbage collector {[round(g, 1) for g in gcs]} ms")
    tick_med, tick_max = statistics.median(cpu), max(cpu)
    print(f"figure: console first paint ({jobs} jobs) | {r['first_paint']:.2f} s | "
          f"< {TARGET_PAINT_S} s")
    print(f"figure: console tick cpu, 1% changed (median) | {tick_med:.1f} ms | "
          f"< {TARGET_TICK_MS:.0f} ms")
    print(f"figure: console tick cpu, 1% changed (worst) | {tick_max:.1f} ms | "
          f"< {TARGET_TICK_MS:.0f} ms")
    print(f"figure: console peak RSS | {rss_mb:.0f} MB | < {TARGET_MB:.0f} MB")
    print(f"figure: console peak Python allocations (tracemalloc) | {traced_mb:.0f} MB | "
          f"< {TARGET_MB:.0f} MB")
    print(f"history: {hist['first_reads']} files, {hist['outcomes']:,} outcomes in 30 days; the "
          f"second read re-read {hist['second_reads']} file(s)")
    print(f"figure: history, {HISTORY_ARCHIVES} archives x {HISTORY_ROWS:,} rows, first read | "
          f"{hist['first']:.2f} s | < {TARGET_HISTORY_S:.0f} s")
    print(f"figure: history, {HISTORY_ARCHIVES} archives x {HISTORY_ROWS:,} rows, cached second "
          f"read (today's file changed) | {hist['second']:.2f} s | < {TARGET_HISTORY_S:.0f} s")
    missed = [name for name, ok in (
        ("first paint", r["first_paint"] < TARGET_PAINT_S), ("tick", tick_med < TARGET_TICK_MS),
        ("memory", rss_mb < TARGET_MB),
        ("history", hist["first"] < TARGET_HISTORY_S and hist["second"] < TARGET_HISTORY_S))
        if not ok]
    if missed:
        print(f"MISSED: {', '.join(missed)}")
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
