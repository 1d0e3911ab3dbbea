"""Benchmark: the cost of one claim + complete against a progress store, by file size.

    .venv/bin/python bench/store.py            # full run (about 2 minutes)
    .venv/bin/python bench/store.py --quick    # a tiny run (seconds)

Three implementations of the same claim rules (DESIGN.md, "Claim rules": due jobs, one claim per
account, successes + claims + unknown outcomes < limit, not blocked, not cooling down, phone not
held by another worker; FIFO, pending before retrying):

  postdeck  engine.tracker.ProgressStore
  naive     every operation reads every row with csv.DictReader and rewrites every row with
            csv.DictWriter; same temp + fsync + os.replace + folder fsync, same filelock
  sqlite    SQLite in WAL mode (synchronous=FULL), per-account counters kept transactionally;
            the reference for what an indexed store costs

Each operation is one claim followed by one complete (two locked writes and a ledger append).
The day file has `rows` jobs: the first half already finished (successes and failures, as late
in a day), the second half pending; accounts have 4 jobs each, limit 4. "single" runs the
operations in one process; "8 procs" runs them in 8 spawned processes contending for the lock,
and ms/op is wall time / operations. Each process opens its store and reads it once before the
clock starts (a worker does that once, then hundreds of operations). Prints figures; it is not
a test.
"""
from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from filelock import FileLock  # noqa: E402

from engine import columns as C  # noqa: E402
from engine.durable import write_atomic  # noqa: E402
from engine.settings import Settings  # noqa: E402
from engine.tracker import ProgressStore, serialize  # noqa: E402

LIMIT = 4
JOBS_PER_ACCOUNT = 4
SETTINGS = replace(Settings(), max_posts_per_account_per_day=LIMIT)
NOW = 1_749_988_800.0


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="seconds")


def make_rows(n: int) -> list[list[str]]:
    """n jobs over n/4 accounts (accounts i and i+1 share a phone every tenth pair). The first
    half is finished: mostly successes, some infrastructure failures and one account error."""
    accounts = max(1, n // JOBS_PER_ACCOUNT)
    rows = []
    for k in range(n):
        a = k % accounts
        r = [""] * C.WIDTH
        r[C.JOB_ID] = f"clip_{k:06d}.mp4_bench"
        r[C.ACCOUNT] = f"account_{a:05d}"
        r[C.PHONE_ID] = f"phone_{a - 1 if a % 20 == 1 else a:05d}"
        r[C.VIDEO_PATH] = f"/srv/campaigns/bench/videos/batch{k % 7}/clip_{k:06d}.mp4"
        r[C.CAPTION] = f"Caption {k}: a line, with \"quotes\" and an emoji 🎬 #tag{k % 13}"
        r[C.MAX_ATTEMPTS] = "3"
        r[C.PASS_NUMBER] = "1"
        if k < n // 2:
            r[C.WORKER_ID] = str(k % 8)
            r[C.CLAIMED_AT] = iso(NOW - 7200 + k)
            r[C.COMPLETED_AT] = iso(NOW - 7100 + k)
            r[C.CLAIM_ID] = uuid.UUID(int=k).hex
            r[C.ATTEMPTS] = "1"
            if k % 25 == 0:
                r[C.STATUS] = C.FAILED
                r[C.ERROR], r[C.ERROR_TYPE], r[C.ERROR_CATEGORY] = (
                    "adb: device offline", "device_offline", "infrastructure")
                r[C.ATTEMPTS] = "3"
            else:
                r[C.STATUS] = C.SUCCESS
                r[C.VIDEO_ID] = f"v{k}"
        else:
            r[C.STATUS] = C.PENDING
            r[C.ATTEMPTS] = "0"
        rows.append(r)
    return rows


# --- (a) postdeck ---------------------------------------------------------------------------------
class Postdeck:
    name = "postdeck"

    @staticmethod
    def prepare(folder: Path, rows: list[list[str]]) -> None:
        (folder / "progress.csv").write_bytes(serialize(rows))

    def __init__(self, folder: Path):
        self.store = ProgressStore(folder / "progress.csv", folder / "posted.csv", SETTINGS,
                                   clock=lambda: NOW)

    def warm(self) -> None:
        self.store.read()    # a worker reads the file once when it starts

    def claim(self, worker: str):
        job = self.store.claim(worker)
        return None if job is None else (job["job_id"], job["claim_id"])

    def complete(self, job_id: str, claim_id: str) -> None:
        self.store.complete(job_id, claim_id)


# --- (b) naive: DictReader / DictWriter on every operation --------------------------------------
def _parse_time(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text).timestamp() if text else None
    except ValueError:
        return None


class Naive:
    name = "naive"
    prepare = Postdeck.prepare

    def __init__(self, folder: Path):
        self.path = folder / "progress.csv"
        self.ledger = folder / "posted.csv"
        self.lock = FileLock(str(self.path) + ".lock", timeout=120, poll_interval=0.002)

    def warm(self) -> None:
        pass

    def _rmw(self, change):
        with self.lock:
            with open(self.path, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh))
            changed, result = change(rows)
            if changed:
                tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                with open(tmp, "w", newline="", encoding="utf-8") as fh:
                    w = csv.DictWriter(fh, fieldnames=C.COLUMNS, lineterminator="\n")
                    w.writeheader()
                    w.writerows(rows)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
                fd = os.open(self.path.parent, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            return result

    @staticmethod
    def _tallies(rows, now):
        t = {}
        for r in rows:
            a = t.setdefault(r["account"], {"used": 0, "running": 0, "blocked": False,
                                            "outcomes": []})
            st = r["status"]
            if st in ("success", "claimed") or (st == "failed"
                                                and r["error_type"] == "outcome_unknown"):
                a["used"] += 1
            if st == "claimed":
                a["running"] += 1
            if st == "failed" and r["error_category"] == "account":
                a["blocked"] = True
            if st in ("success", "failed", "retrying"):
                at = _parse_time(r["completed_at"])
                if at is not None:
                    a["outcomes"].append((at, int(r["attempts"] or 1), r["error_type"],
                                          st != "success" and bool(r["error"])))
        for a in t.values():                         # cooldown: failures in a row, rate limits
            a["cooldown"] = 0.0
            run = rl = 0
            last = 0.0
            for at, n, et, failed in sorted(a["outcomes"], reverse=True):
                if not failed:
                    break
                last, run = max(last, at), run + n
                rl += n if et == "rate_limited" else 0
            if run >= SETTINGS.cooldown_after_consecutive:
                a["cooldown"] = last + SETTINGS.cooldown_minutes * 60
            if rl:
                steps = SETTINGS.rate_limit_steps
                a["cooldown"] = max(a["cooldown"], last + steps[min(rl, len(steps)) - 1])
        return t

    def claim(self, worker: str):
        def change(rows):
            t = self._tallies(rows, NOW)
            held = {r["phone_id"] or r["account"]: r["worker_id"] for r in rows
                    if r["status"] == "claimed"}
            due = [r for r in rows if r["status"] == "pending"] + [
                r for r in rows if r["status"] == "retrying"
                and (_parse_time(r["retry_at"]) or 0) <= NOW]
            for r in due:
                a = t[r["account"]]
                if a["running"] or a["used"] >= LIMIT or a["blocked"] or a["cooldown"] > NOW:
                    continue
                phone = r["phone_id"] or r["account"]
                if held.get(phone, worker) != worker:
                    continue
                r.update(status="claimed", worker_id=worker, claimed_at=iso(NOW),
                         claim_id=uuid.uuid4().hex, phase="claimed",
                         attempts=str(int(r["attempts"] or 0) + 1), phone_id=phone)
                return True, (r["job_id"], r["claim_id"])
            return False, None
        return self._rmw(change)

    def complete(self, job_id: str, claim_id: str) -> None:
        def change(rows):
            for r in rows:
                if r["job_id"] == job_id:
                    if r["status"] != "claimed" or r["claim_id"] != claim_id:
                        raise RuntimeError("claim lost")
                    with open(self.ledger, "a", newline="", encoding="utf-8") as fh:
                        csv.writer(fh, lineterminator="\n").writerow(
                            [iso(NOW), r["account"], r["video_path"], job_id])
                        fh.flush()
                        os.fsync(fh.fileno())
                    r.update(status="success", completed_at=iso(NOW), phase="")
                    return True, None
            raise RuntimeError("no such job")
        self._rmw(change)


# --- (c) SQLite in WAL mode -----------------------------------------------------------------------
SCHEMA = """
CREATE TABLE jobs (seq INTEGER PRIMARY KEY, job_id TEXT UNIQUE NOT NULL, account TEXT NOT NULL,
  phone TEXT NOT NULL, video_path TEXT, caption TEXT, status TEXT NOT NULL, worker_id TEXT,
  claimed_at TEXT, completed_at TEXT, claim_id TEXT, phase TEXT, attempts INTEGER,
  retry_at REAL, error TEXT, error_type TEXT, error_category TEXT);
CREATE INDEX jobs_due ON jobs (status, seq);
CREATE TABLE accounts (account TEXT PRIMARY KEY, used INTEGER NOT NULL, running INTEGER NOT NULL,
  blocked INTEGER NOT NULL, cooldown_until REAL NOT NULL);
CREATE TABLE phones (phone TEXT PRIMARY KEY, worker_id TEXT NOT NULL);
CREATE TABLE ledger (posted_at TEXT, account TEXT, video_path TEXT, job_id TEXT);
"""

CLAIM_SQL = """
SELECT j.seq, j.job_id, j.account, j.phone FROM jobs j
  JOIN accounts a ON a.account = j.account
  LEFT JOIN phones p ON p.phone = j.phone
 WHERE j.status = ? {due}
   AND a.running = 0 AND a.used < ? AND a.blocked = 0 AND a.cooldown_until <= ?
   AND (p.worker_id IS NULL OR p.worker_id = ?)
 ORDER BY j.seq LIMIT 1
"""


class Sqlite:
    name = "sqlite"

    @staticmethod
    def prepare(folder: Path, rows: list[list[str]]) -> None:
        db = sqlite3.connect(folder / "progress.db")
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        db.executemany(
            "INSERT INTO jobs (job_id, account, phone, video_path, caption, status, worker_id,"
            " claimed_at, completed_at, claim_id, attempts, error, error_type, error_category)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [(r[C.JOB_ID], r[C.ACCOUNT], r[C.PHONE_ID], r[C.VIDEO_PATH], r[C.CAPTION],
              r[C.STATUS], r[C.WORKER_ID], r[C.CLAIMED_AT], r[C.COMPLETED_AT], r[C.CLAIM_ID],
              int(r[C.ATTEMPTS] or 0), r[C.ERROR], r[C.ERROR_TYPE], r[C.ERROR_CATEGORY])
             for r in rows])
        # The counters the claim rules need, derived once from the rows (cooldown: the bench's
        # failures are isolated, so no account is cooling down).
        db.execute("""INSERT INTO accounts SELECT account,
            SUM(status IN ('success','claimed') OR (status='failed' AND error_type='outcome_unknown')),
            SUM(status='claimed'), MAX(status='failed' AND error_category='account'), 0
            FROM jobs GROUP BY account""")
        db.commit()
        db.close()

    def __init__(self, folder: Path):
        self.db = sqlite3.connect(folder / "progress.db", timeout=120, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")

    def warm(self) -> None:
        self.db.execute("SELECT COUNT(*) FROM jobs").fetchone()

    def claim(self, worker: str):
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            found = None
            for status, due in (("pending", ""), ("retrying",
                                                  "AND (j.retry_at IS NULL OR j.retry_at <= ?)")):
                args = [status] + ([NOW] if due else []) + [LIMIT, NOW, worker]
                found = db.execute(CLAIM_SQL.format(due=due), args).fetchone()
                if found:
                    break
            if found is None:
                db.execute("COMMIT")
                return None
            seq, job_id, account, phone = found
            claim_id = uuid.uuid4().hex
            db.execute("UPDATE jobs SET status='claimed', worker_id=?, claimed_at=?, claim_id=?,"
                       " phase='claimed', attempts=attempts+1 WHERE seq=?",
                       (worker, iso(NOW), claim_id, seq))
            db.execute("UPDATE accounts SET running=1, used=used+1 WHERE account=?", (account,))
            db.execute("INSERT OR REPLACE INTO phones VALUES (?, ?)", (phone, worker))
            db.execute("COMMIT")
            return job_id, claim_id
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def complete(self, job_id: str, claim_id: str) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT account, phone, video_path, status, claim_id FROM jobs"
                             " WHERE job_id=?", (job_id,)).fetchone()
            if row is None or row[3] != "claimed" or row[4] != claim_id:
                raise RuntimeError("claim lost")
            account, phone, video_path = row[:3]
            db.execute("UPDATE jobs SET status='success', completed_at=?, phase='' WHERE job_id=?",
                       (iso(NOW), job_id))
            db.execute("UPDATE accounts SET running=0 WHERE account=?", (account,))
            db.execute("DELETE FROM phones WHERE phone=? AND worker_id IN "
                       "(SELECT worker_id FROM jobs WHERE job_id=?)", (phone, job_id))
            db.execute("INSERT INTO ledger VALUES (?,?,?,?)", (iso(NOW), account, video_path,
                                                              job_id))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


IMPLS = {"postdeck": Postdeck, "naive": Naive, "sqlite": Sqlite}


# --- running ----------------------------------------------------------------------------------------
def opened(impl_name: str, folder: str):
    impl = IMPLS[impl_name](Path(folder))
    impl.warm()
    return impl


def do_ops(impl, worker: str, ops: int) -> int:
    done = 0
    for _ in range(ops):
        job = impl.claim(worker)
        if job is None:
            break
        impl.complete(*job)
        done += 1
    return done


def _proc(impl_name, folder, worker, ops, ready, go, out):
    impl = opened(impl_name, folder)     # started and warm, like a worker of a run
    ready.release()
    go.wait()
    out.put(do_ops(impl, worker, ops))


def run(impl_name: str, rows: list[list[str]], ops: int, procs: int) -> float:
    """ms per claim+complete."""
    with tempfile.TemporaryDirectory(prefix=f"postdeck-bench-{impl_name}-") as tmp:
        IMPLS[impl_name].prepare(Path(tmp), rows)
        if procs == 1:
            impl = opened(impl_name, tmp)
            start = time.perf_counter()
            done = do_ops(impl, "w0", ops)
            elapsed = time.perf_counter() - start
        else:
            ctx = multiprocessing.get_context("spawn")
            ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
            per = -(-ops // procs)
            ps = [ctx.Process(target=_proc, args=(impl_name, tmp, f"w{i}", per, ready, go, out))
                  for i in range(procs)]
            for p in ps:
                p.start()
            for _ in ps:
                ready.acquire()
            start = time.perf_counter()
            go.set()
            done = sum(out.get() for _ in ps)
            elapsed = time.perf_counter() - start
            for p in ps:
                p.join()
        if done < ops * 0.9:
            raise SystemExit(f"{impl_name}: only {done} of {ops} operations found a job")
        return elapsed / done * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (a few seconds)")
    parser.add_argument("--impl", action="append", choices=list(IMPLS),
                        help="only these implementations (repeatable)")
    parser.add_argument("--procs", type=int, default=8, help="contending processes (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure, the median is "
                        "shown (default 3; naive always runs once)")
    args = parser.parse_args()
    if args.quick:
        plan = {1000: 20, 5000: 10, 10000: 8}
        args.repeat = 1
    else:
        plan = {1000: 240, 5000: 120, 10000: 64}
    impls = args.impl or list(IMPLS)
    modes = [1, args.procs]
    results: dict[tuple[int, int, str], float] = {}
    for n, ops in plan.items():
        rows = make_rows(n)
        for procs in modes:
            for impl in impls:
                # the median of 3 runs (1 for naive, the slow reference) against disk noise
                runs = sorted(run(impl, rows, ops, procs)
                              for _ in range(1 if impl == "naive" else args.repeat))
                results[(n, procs, impl)] = runs[len(runs) // 2]
                print(f"  {n:>6} rows  {procs} proc  {impl:<9} {results[(n, procs, impl)]:8.2f}"
                      " ms/op", file=sys.stderr, flush=True)
    print()
    print(f"{'rows':>6}  {'mode':<8} {'impl':<9} {'ms/op':>8} {'vs naive':>9} {'1k->10k':>8}")
    first, last = min(plan), max(plan)
    for n in plan:
        for procs in modes:
            for impl in impls:
                ms = results[(n, procs, impl)]
                naive = results.get((n, procs, "naive"))
                ratio = f"{naive / ms:8.1f}x" if naive else "        -"
                growth = (f"{ms / results[(first, procs, impl)]:7.1f}x" if n == last
                          else "       ")
                mode = "single" if procs == 1 else f"{procs} procs"
                print(f"{n:>6}  {mode:<8} {impl:<9} {ms:8.2f} {ratio} {growth}")
    print()
    print("ms/op = one claim + one complete; 'vs naive' = how many times faster than naive;")
    print("1k->10k = ms/op at 10,000 rows / ms/op at 1,000 rows (linear growth would be 10x).")
    if "postdeck" in impls and "naive" in impls and 5000 in plan:
        for procs in modes:
            mode = "single" if procs == 1 else f"{procs} procs"
            ratio = results[(5000, procs, "naive")] / results[(5000, procs, "postdeck")]
            growth = results[(last, procs, "postdeck")] / results[(first, procs, "postdeck")]
            print(f"figure: store at 5,000 rows, {mode}, times faster than naive | {ratio:.1f}x"
                  " | >= 5x")
            print(f"figure: store growth 1k->10k rows, {mode} | {growth:.1f}x | <= 10x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
