"""A simulated farm day: how much of the phones' time goes to posting, and what the engine costs.

20 phones, 5 accounts each, a daily limit of 4: 400 jobs, posted by 20 workers, each bound to
its phone as a farm runs them (`--phones`), through the real CLI (`postdeck --no-ui --run`). Every job costs the simulated backend exactly `post_seconds` (plus
one boot per phone), so everything else in a job's span, from claim to completion, is the engine.

    python bench/farm.py [--post-seconds 2.0] [--phones 20] [--quick]

Figures:
- utilisation: backend busy time / (workers x wall time), over the whole run (process start-up
  included) and over the steady state (first claim to last completion);
- against what the limits allow: the ideal wall time is the busiest phone's work, since one
  phone posts one job at a time;
- engine overhead per job: span (claim to completion) minus the simulated work, as ms and as a
  share of the job time;
- phone-minutes per successful post (what Geelark bills), on a paced farm (min_gap_seconds
  between posts on a phone): phones stopped after each job against phones kept on, side by side
  in one run, beside the lower bound (one boot plus one post per post).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build(root: Path, phones: int, accounts_per_phone: int, limit: int, post_s: float,
          boot_s: float, extra: dict | None = None) -> None:
    (root / "videos").mkdir(parents=True)
    accounts = [(f"acc{p:02d}_{a}", f"phone{p:02d}") for p in range(phones)
                for a in range(accounts_per_phone)]
    (root / "accounts.txt").write_text("".join(f"{a},{p}\n" for a, p in accounts))
    jobs = len(accounts) * limit
    with open(root / "captions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "post_caption"])
        for i in range(jobs):
            (root / "videos" / f"v{i:04d}.mp4").write_bytes(b"\0" * 32)
            w.writerow([f"v{i:04d}.mp4", f"caption {i}"])
    (root / "campaign.json").write_text(json.dumps({
        "max_posts_per_account_per_day": limit,
        "simulation": {"boot_seconds": boot_s, "post_seconds": post_s, "failure_rate": 0.0},
        **(extra or {})}))


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--phones", type=int, default=20)
    ap.add_argument("--accounts-per-phone", type=int, default=5)
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--post-seconds", type=float, default=2.0)
    ap.add_argument("--boot-seconds", type=float, default=0.5)
    ap.add_argument("--quick", action="store_true", help="4 phones, 0.3 s posts")
    args = ap.parse_args()
    if args.quick:
        args.phones, args.post_seconds, args.boot_seconds = 4, 0.3, 0.1

    with tempfile.TemporaryDirectory() as tmp:
        campaigns = Path(tmp) / "campaigns"
        root = campaigns / "farm"
        build(root, args.phones, args.accounts_per_phone, args.limit, args.post_seconds,
              args.boot_seconds)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        started = time.time()
        res = subprocess.run([sys.executable, "-m", "console", "--no-ui", "--campaigns-dir",
                              str(campaigns), "--campaign", "farm", "--run", "--workers",
                              str(args.phones), "--phones",
                              ",".join(f"phone{p:02d}" for p in range(args.phones))],
                             env=env, capture_output=True, text=True)
        wall = time.time() - started
        if res.returncode != 0:
            sys.exit(f"run failed: {res.stderr}")
        with open(root / "progress.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))

    jobs = len(rows)
    statuses = Counter(r["status"] for r in rows)
    booted: set[str] = set()
    spans, overheads = [], []
    busy = 0.0
    for r in sorted(rows, key=lambda r: ts(r["claimed_at"])):
        work = args.post_seconds
        key = (r["worker_id"], r["phone_id"])
        if key not in booted:  # each worker's backend boots a phone once
            booted.add(key)
            work += args.boot_seconds
        span = ts(r["completed_at"]) - ts(r["claimed_at"])
        spans.append(span)
        overheads.append(span - work)
        busy += work
    first = min(ts(r["claimed_at"]) for r in rows)
    last = max(ts(r["completed_at"]) for r in rows)
    steady = last - first
    per_phone = Counter(r["phone_id"] for r in rows)
    ideal = max(per_phone.values()) * args.post_seconds + args.boot_seconds
    workers = args.phones
    print(f"farm day: {args.phones} phones, {jobs} jobs ({dict(statuses)}), {workers} workers, "
          f"post {args.post_seconds}s, boot {args.boot_seconds}s")
    print(f"{'wall time, whole run':<44}{wall:8.2f} s")
    print(f"{'wall time, first claim to last completion':<44}{steady:8.2f} s")
    print(f"{'ideal wall time (busiest phone)':<44}{ideal:8.2f} s")
    print(f"{'utilisation, whole run':<44}{busy / (workers * wall):8.1%}")
    print(f"{'utilisation, steady state':<44}{busy / (workers * steady):8.1%}")
    print(f"{'share of what the limits allow (ideal/steady)':<44}{ideal / steady:8.1%}")
    print(f"{'engine overhead per job, median':<44}{statistics.median(overheads) * 1000:8.1f} ms"
          f"  ({statistics.median(overheads) / args.post_seconds:.2%} of job time)")
    print(f"{'engine overhead per job, mean':<44}{statistics.mean(overheads) * 1000:8.1f} ms"
          f"  ({statistics.mean(overheads) / args.post_seconds:.2%} of job time)")
    print(f"{'engine overhead per job, p95':<44}"
          f"{statistics.quantiles(overheads, n=20)[-1] * 1000:8.1f} ms")
    print(f"figure: phone utilisation vs what the limits allow | {ideal / steady:.1%} | >= 95%")
    print(f"figure: engine overhead per job (median, share of job time) | "
          f"{statistics.median(overheads) / args.post_seconds:.2%} | < 1%")
    phone_minutes(args)


def paced_day(keep_on_s: float, phones: int, post_s: float, boot_s: float,
              gap_s: float) -> tuple[float, int]:
    """One paced farm day; (phone-seconds on, successful posts), from --status --json."""
    with tempfile.TemporaryDirectory() as tmp:
        campaigns = Path(tmp) / "campaigns"
        root = campaigns / "paced"
        build(root, phones, 3, 1, post_s, boot_s,
              {"min_gap_seconds": gap_s, "keep_phone_on_seconds": keep_on_s})
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        base = [sys.executable, "-m", "console", "--no-ui", "--campaigns-dir", str(campaigns),
                "--campaign", "paced"]
        res = subprocess.run(base + ["--run", "--workers", str(phones), "--phones",
                                     ",".join(f"phone{p:02d}" for p in range(phones))],
                             env=env, capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"paced run failed: {res.stderr}")
        st = json.loads(subprocess.run(base + ["--status", "--json"], env=env,
                                       capture_output=True, text=True, check=True).stdout)
    if any(p["state"] != "off" for p in st["phones"]):
        sys.exit(f"a phone was left on: {st['phones']}")
    return sum(p["on_seconds_today"] for p in st["phones"]), st["counts"]["success"]


def phone_minutes(args) -> None:
    phones, post_s, boot_s, gap_s = 4, 1.0, 0.5, 3.0
    stop_s, stop_posts = paced_day(0, phones, post_s, boot_s, gap_s)
    keep_s, keep_posts = paced_day(24 * 3600, phones, post_s, boot_s, gap_s)
    bound = boot_s + post_s
    stop_per, keep_per = stop_s / stop_posts, keep_s / keep_posts
    print(f"paced day: {phones} phones, 3 posts each, post {post_s}s, boot {boot_s}s, "
          f"{gap_s}s between posts on a phone")
    print(f"{'phone-seconds per post, stop after each job':<44}{stop_per:8.2f} s")
    print(f"{'phone-seconds per post, phones kept on':<44}{keep_per:8.2f} s")
    print(f"{'lower bound (one boot + one post)':<44}{bound:8.2f} s")
    print(f"figure: phone-minutes per post, stop after job / lower bound | "
          f"{stop_per / bound:.2f}x | <= 1.2x")
    print(f"figure: phone-minutes per post, kept on / stop after job | "
          f"{keep_per / stop_per:.2f}x | > 1 (what stopping saves)")


if __name__ == "__main__":
    main()
