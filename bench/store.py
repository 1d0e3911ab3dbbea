"""Benchmark: the cost of one claim + complete against a progress store, by file size.

    .venv/bin/python bench/store.py                 # full run (about 10 minutes)
    .venv/bin/python bench/store.py --quick         # a tiny run (under a minute)
    .venv/bin/python bench/store.py --only shared   # only the PostgreSQL table (about 7 minutes)

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

A second table puts the CSV store beside the stores a farm of several hosts shares, at 1k, 10k
and 100k rows with 1, 8 and 32 processes, on one PostgreSQL server started for the run
(tests/pg_server.py, Debian's postgresql package; left out when there is none):

  postgres       engine.pg_store.PgStore: the same day imported into a campaign (one fresh
                 database per run, cloned from a template per row count)
  procrastinate  procrastinate (PyPI) on the same server: defer + fetch + finish, the reference
                 for what a PostgreSQL job queue costs per job

and the targets: PostgreSQL growth 10k -> 100k rows <= 1.5x; with 32 processes at least the CSV
store's throughput with 8; within 2x of procrastinate's per-job cost at the same concurrency.
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


# --- (d) PostgreSQL: engine.pg_store.PgStore, and procrastinate as the reference ----------------
# One throw-away server for the whole run (tests/pg_server.py). Importing a day into a campaign
# is a row-by-row transaction (half a minute at 100k rows), so each row count is imported once
# into a template database, and every run gets a fresh database cloned from it (CREATE DATABASE
# ... TEMPLATE, a file copy): runs change the rows, and a second campaign on the same database
# would share the accounts (their daily limit spans campaigns), so runs never share one.
PG_CAMPAIGN = "bench"
PG_SETUP = "pg.txt"       # in a run's folder: the database URL, for the spawned processes
_pg_server = None         # the PgServer of this run (main process only)
_pg_templates: dict[tuple[str, int], str] = {}
_pg_count = 0


def _pg_admin():
    import psycopg
    return psycopg.connect(_pg_server.url(), autocommit=True)


def _pg_clone(kind: str, rows: list[list[str]], build) -> str:
    """A fresh database for one run: a clone of the template of `kind` at len(rows) rows,
    built by `build(url, rows)` the first time."""
    global _pg_count
    from psycopg import sql
    if _pg_server is None:
        raise SystemExit("the PostgreSQL stores need the bench's server (see pg_start)")
    key = (kind, len(rows))
    if key not in _pg_templates:
        name = f"tmpl_{kind}_{len(rows)}"
        url = _pg_server.create_database(name)
        started = time.perf_counter()
        build(url, rows)
        import psycopg
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")    # as autovacuum would have, a minute into a day
        print(f"  {len(rows):>6} rows  {kind}: template built in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        _pg_templates[key] = name
    _pg_count += 1
    name = f"run_{kind}_{len(rows)}_{_pg_count}"
    with _pg_admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(_pg_templates[key])))
    return _pg_server.url(name)


def _pg_drop(folder: Path) -> None:
    from psycopg.conninfo import conninfo_to_dict
    url = (folder / PG_SETUP).read_text().strip()
    _pg_server.drop_database(conninfo_to_dict(url)["dbname"])


def pg_start(base: Path):
    """Start the bench's PostgreSQL server in `base`; None (with why) when there is none."""
    global _pg_server
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from pg_server import PgServer, find_bindir
    bindir = find_bindir()
    if bindir is None:
        print("no PostgreSQL server binaries (Debian's postgresql package): the PostgreSQL "
              "stores are left out", file=sys.stderr)
        return None
    _pg_server = PgServer(bindir, base)
    _pg_server.start()
    return _pg_server


def pg_stop() -> None:
    global _pg_server
    if _pg_server is not None:
        _pg_server.stop()
        _pg_server = None


class Postgres:
    """engine.pg_store.PgStore: the CSV day imported into a campaign, one PgStore (one
    connection) per process, created in that process."""
    name = "postgres"

    @staticmethod
    def _build(url: str, rows: list[list[str]]) -> None:
        from engine.pg_store import PgStore
        with tempfile.TemporaryDirectory(prefix="postdeck-bench-import-") as tmp:
            folder = Path(tmp)
            (folder / "progress.csv").write_bytes(serialize(rows))
            store = PgStore(url, PG_CAMPAIGN, folder / "progress.csv", folder / "posted.csv",
                            SETTINGS, clock=lambda: NOW)
            store.read()        # the first use imports the CSV day, in one transaction
            store.close()

    @staticmethod
    def prepare(folder: Path, rows: list[list[str]]) -> None:
        (folder / "progress.csv").write_bytes(serialize(rows))   # the day, as it was imported
        (folder / PG_SETUP).write_text(_pg_clone("postgres", rows, Postgres._build))

    cleanup = staticmethod(_pg_drop)

    def __init__(self, folder: Path):
        from engine.pg_store import PgStore
        self.store = PgStore((folder / PG_SETUP).read_text().strip(), PG_CAMPAIGN,
                             folder / "progress.csv", folder / "posted.csv", SETTINGS,
                             clock=lambda: NOW)

    def warm(self) -> None:
        self.store.validate()   # connects, checks the schema, finds the campaign
        self.store.stats()

    def claim(self, worker: str):
        job = self.store.claim(worker)
        return None if job is None else (job.job_id, job.claim_id)

    def complete(self, job_id: str, claim_id: str) -> None:
        self.store.complete(job_id, claim_id)

    def close(self) -> None:
        self.store.close()


class Procrastinate:
    """procrastinate (PyPI) on the same server: the reference for what a PostgreSQL job queue
    costs. The queue holds the same number of jobs as the day (the first half succeeded, the
    second half waiting); an operation defers one job (Task.defer), fetches one and finishes it
    as succeeded. The sync connector, one pooled connection per process (like PgStore); fetch
    and finish run procrastinate's own statements (sql.queries "fetch_job", "finish_job"), the
    ones JobManager.fetch_job / finish_job send, whose API is async only."""
    name = "procrastinate"
    TASK = "post_clip"

    @staticmethod
    def _app(url: str, size: int = 1):
        import logging
        import procrastinate
        # Its warning that the App is defined in __main__ is for workers that import tasks by
        # path; this bench's processes do not.
        logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
        return procrastinate.App(connector=procrastinate.SyncPsycopgConnector(
            conninfo=url, min_size=size, max_size=size))

    @staticmethod
    def _build(url: str, rows: list[list[str]]) -> None:
        from procrastinate import jobs
        app = Procrastinate._app(url).open()
        try:
            app.schema_manager.apply_schema()
            todo = [jobs.Job(id=None, queue="default", lock=None, queueing_lock=None,
                             task_name=Procrastinate.TASK,
                             task_kwargs={"job_id": r[C.JOB_ID], "account": r[C.ACCOUNT]})
                    for r in rows]
            for i in range(0, len(todo), 10_000):
                app.job_manager.batch_defer_jobs(todo[i:i + 10_000])
            app.connector.execute_query(     # the first half is done, as late in a day
                query="UPDATE procrastinate_jobs SET status = 'succeeded', attempts = 1 "
                      "WHERE id <= %(half)s", half=len(rows) // 2)
        finally:
            app.close()

    @staticmethod
    def prepare(folder: Path, rows: list[list[str]]) -> None:
        (folder / PG_SETUP).write_text(_pg_clone("procrastinate", rows, Procrastinate._build))

    cleanup = staticmethod(_pg_drop)

    def __init__(self, folder: Path):
        from procrastinate import sql
        self.sql = sql.queries
        self.app = self._app((folder / PG_SETUP).read_text().strip())
        self.task = self.app.task(name=self.TASK)(lambda **kwargs: None)
        self.worker_id = None
        self.n = 0

    def warm(self) -> None:
        self.app.open()
        self.worker_id = self.app.connector.execute_query_one(
            query=self.sql["register_worker"])["worker_id"]

    def claim(self, worker: str):
        from procrastinate import jobs
        self.n += 1
        self.task.defer(job_id=f"{worker}_{self.n}", account=f"account_{self.n:05d}")
        row = self.app.connector.execute_query_one(query=self.sql["fetch_job"], queues=None,
                                                   worker_id=self.worker_id)
        if row["id"] is None:
            return None
        return jobs.Job.from_row(row).id, None

    def complete(self, job_id, claim_id) -> None:
        self.app.connector.execute_query(query=self.sql["finish_job"], job_id=job_id,
                                         status="succeeded", delete_job=False)

    def close(self) -> None:
        self.app.close()


IMPLS = {"postdeck": Postdeck, "naive": Naive, "sqlite": Sqlite, "postgres": Postgres,
         "procrastinate": Procrastinate}
LOCAL = ["postdeck", "naive", "sqlite"]       # the first table: stores of one host
SHARED = ["postdeck", "postgres", "procrastinate"]    # the second: the CSV store beside PG


# --- running ----------------------------------------------------------------------------------------
def opened(impl_name: str, folder: str):
    impl = IMPLS[impl_name](Path(folder))
    impl.warm()
    return impl


def do_ops(impl, worker: str, ops: int, retry_empty: int = 0) -> tuple[int, int]:
    """(operations done, empty claims). A claim that finds no job ends the loop, or, with
    `retry_empty`, is tried again at once up to that many times in a row (the day still has due
    jobs: a store that says "nothing" then is wrong, and its empty claims are counted, their
    time included)."""
    done = empty = in_a_row = 0
    while done < ops:
        job = impl.claim(worker)
        if job is None:
            empty += 1
            in_a_row += 1
            if in_a_row > retry_empty:
                break
            continue
        in_a_row = 0
        impl.complete(*job)
        done += 1
    return done, empty


def _proc(impl_name, folder, worker, ops, retry_empty, ready, go, out):
    impl = opened(impl_name, folder)     # started and warm, like a worker of a run
    ready.release()
    go.wait()
    out.put(do_ops(impl, worker, ops, retry_empty))


def run(impl_name: str, rows: list[list[str]], ops: int, procs: int) -> float:
    """ms per claim+complete."""
    return run_counted(impl_name, rows, ops, procs)[0]


def run_counted(impl_name: str, rows: list[list[str]], ops: int, procs: int,
                retry_empty: int = 0) -> tuple[float, int]:
    """(ms per claim+complete, empty claims)."""
    cls = IMPLS[impl_name]
    with tempfile.TemporaryDirectory(prefix=f"postdeck-bench-{impl_name}-") as tmp:
        cls.prepare(Path(tmp), rows)
        try:
            if procs == 1:
                impl = opened(impl_name, tmp)
                start = time.perf_counter()
                done, empty = do_ops(impl, "w0", ops, retry_empty)
                elapsed = time.perf_counter() - start
                getattr(impl, "close", lambda: None)()
            else:
                ctx = multiprocessing.get_context("spawn")
                ready, go, out = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
                per = -(-ops // procs)
                ps = [ctx.Process(target=_proc, args=(impl_name, tmp, f"w{i}", per, retry_empty,
                                                      ready, go, out))
                      for i in range(procs)]
                for p in ps:
                    p.start()
                for _ in ps:
                    ready.acquire()
                start = time.perf_counter()
                go.set()
                counts = [out.get() for _ in ps]
                done, empty = sum(c[0] for c in counts), sum(c[1] for c in counts)
                elapsed = time.perf_counter() - start
                for p in ps:
                    p.join()
        finally:
            if hasattr(cls, "cleanup"):
                cls.cleanup(Path(tmp))
        if done < ops * 0.9:
            raise SystemExit(f"{impl_name}: only {done} of {ops} operations found a job"
                             + (f" ({empty} empty claims)" if empty else ""))
        return elapsed / done * 1000, empty


def local_section(args) -> None:
    """The stores of one host: postdeck's CSV store, naive CSV, SQLite (1k, 5k, 10k rows)."""
    if args.quick:
        plan = {1000: 20, 5000: 10, 10000: 8}
        repeat = 1
    else:
        plan = {1000: 240, 5000: 120, 10000: 64}
        repeat = args.repeat
    impls = [i for i in (args.impl or LOCAL) if i in LOCAL]
    if not impls:
        return
    modes = [1, args.procs]
    results: dict[tuple[int, int, str], float] = {}
    for n, ops in plan.items():
        rows = make_rows(n)
        for procs in modes:
            for impl in impls:
                # the median of 3 runs (1 for naive, the slow reference) against disk noise
                runs = sorted(run(impl, rows, ops, procs)
                              for _ in range(1 if impl == "naive" else repeat))
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


# Operations per figure of the shared section, by (rows, procs). The CSV store rewrites its whole
# file twice per operation (about 0.3 s at 100k rows, more under contention), so it gets fewer;
# the PostgreSQL stores get enough for 20 operations per process at 32 (at 1k rows the day has
# 500 pending jobs, so 320).
SHARED_OPS = {
    "postdeck": {(1000, 1): 120, (1000, 8): 120, (1000, 32): 128,
                 (10000, 1): 32, (10000, 8): 64, (10000, 32): 64,
                 (100000, 1): 8, (100000, 8): 16, (100000, 32): 32},
    "postgres": {(1000, p): 320 for p in (1, 8, 32)} | {(n, p): 640 for n in (10000, 100000)
                                                      for p in (1, 8, 32)},
}
SHARED_OPS["procrastinate"] = SHARED_OPS["postgres"]
# A claim that finds nothing is tried again at once up to this many times in a row.
RETRY_EMPTY = 50
SHARED_QUICK = {(1000, 1): 40, (1000, 8): 64}
LABEL = {"postdeck": "csv", "postgres": "postgres", "procrastinate": "procrastinate"}


def _code_stamp() -> str:
    """Which engine/pg_store.py ran (its sha256, shortened): the figures belong to one version."""
    import hashlib
    path = Path(__file__).resolve().parent.parent / "engine" / "pg_store.py"
    try:
        return "sha256 " + hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "(missing)"


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def shared_section(args) -> None:
    """postdeck's CSV store beside the PostgreSQL store and procrastinate: 1k, 10k and 100k rows
    with 1, 8 and 32 processes, on one PostgreSQL server started for the run."""
    impls = [i for i in (args.impl or SHARED) if i in SHARED]
    wants_pg = any(i != "postdeck" for i in impls)
    if not impls:
        return
    plan = sorted({n for n, _ in SHARED_QUICK}) if args.quick else [1000, 10000, 100000]
    modes = sorted({p for _, p in SHARED_QUICK}) if args.quick else [1, 8, 32]
    results: dict[tuple[str, int, int], float] = {}
    empties: dict[tuple[str, int, int], tuple[int, int]] = {}
    stamp = _code_stamp()
    with tempfile.TemporaryDirectory(prefix="postdeck-bench-pg-") as base:
        try:
            if wants_pg and pg_start(Path(base) / "server") is None:
                impls = [i for i in impls if i == "postdeck"]
            for n in plan:
                rows = make_rows(n)
                for procs in modes:
                    for impl in impls:
                        ops = (SHARED_QUICK if args.quick else SHARED_OPS[impl])[(n, procs)]
                        ms, empty = run_counted(impl, rows, ops, procs, RETRY_EMPTY)
                        results[(impl, n, procs)] = ms
                        if empty:
                            empties[(impl, n, procs)] = (empty, ops)
                        print(f"  {n:>6} rows  {procs:>2} procs  {LABEL[impl]:<13} {ms:8.2f} "
                              f"ms/op  ({ops} ops, {empty} empty claims)", file=sys.stderr,
                              flush=True)
        finally:
            pg_stop()

    print()
    print(f"engine/pg_store.py {stamp}" + ("" if _code_stamp() == stamp else
          f" CHANGED during the run (now {_code_stamp()}): the figures mix versions"))
    print("Shared stores: ms/op = one claim + one complete (procrastinate: one defer + one fetch"
          " + one finish),")
    print("wall time / operations, all processes together; ops/s = 1000 / ms/op.")
    print()
    print(f"{'store':<13} {'rows':>7} " + " ".join(f"{f'{p} proc' + ('s' if p > 1 else ''):>18}"
                                                  for p in modes))
    print(f"{'':<13} {'':>7} " + " ".join(f"{'ms/op':>8} {'ops/s':>9}" for _ in modes))
    for impl in impls:
        for n in plan:
            cells = []
            for p in modes:
                ms = results[(impl, n, p)]
                cells.append(f"{ms:8.2f} {1000 / ms:9.1f}")
            print(f"{LABEL[impl]:<13} {n:>7} " + " ".join(cells))
    print()
    if empties:
        print("Empty claims (a claim that found no job while the day still had due jobs; retried "
              "at once, their time counted):")
        for (impl, n, p), (empty, ops) in empties.items():
            print(f"  {LABEL[impl]} {n} rows {p} procs: {empty} empty claims for {ops} operations")
        print()

    def get(impl, n, p):
        return results.get((impl, n, p))

    lines = []
    # (a) growth 10k -> 100k rows
    for p in (1, 8, 32):
        small, big = get("postgres", 10000, p), get("postgres", 100000, p)
        if small and big:
            g = big / small
            lines.append((f"postgres store growth 10k->100k rows, {p} proc{'s' if p > 1 else ''}",
                          f"{g:.2f}x", "<= 1.5x", g <= 1.5, p in (1, 8)))
    # (b) 32 procs on PostgreSQL vs 8 on the CSV store, 10k rows
    pg32, csv8 = get("postgres", 10000, 32), get("postdeck", 10000, 8)
    if pg32 and csv8:
        r = (1000 / pg32) / (1000 / csv8)
        lines.append(("postgres ops/s with 32 procs / csv ops/s with 8 procs, 10k rows",
                      f"{r:.2f}x ({1000 / pg32:.0f} vs {1000 / csv8:.0f} ops/s)", ">= 1x",
                      r >= 1, True))
    # (c) per-job cost against procrastinate, same concurrency (and rows)
    for p in modes:
        ratios = {n: get("postgres", n, p) / get("procrastinate", n, p) for n in plan
                  if get("postgres", n, p) and get("procrastinate", n, p)}
        for n, r in ratios.items():
            lines.append((f"postgres ms/op / procrastinate ms/op, {n // 1000}k rows, {p} "
                          f"proc{'s' if p > 1 else ''}", f"{r:.2f}x", "<= 2x", r <= 2, False))
        if ratios:
            worst = max(ratios.values())
            lines.append((f"postgres vs procrastinate per-job cost, {p} "
                          f"proc{'s' if p > 1 else ''}, worst of "
                          + "/".join(f"{n // 1000}k" for n in ratios) + " rows",
                          f"{worst:.2f}x", "<= 2x", worst <= 2, True))
    if lines:
        print("Targets (from this run):")
        width = max(len(name) for name, *_ in lines)
        vwidth = max(len(value) for _, value, *_ in lines)
        for name, value, target, ok, _ in lines:
            print(f"  {name:<{width}}  {value:>{vwidth}}  {target:>7}  {verdict(ok)}")
        print()
        for name, value, target, ok, figure in lines:
            if figure:
                print(f"figure: {name} | {value} {verdict(ok)} | {target}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run (well under a minute)")
    parser.add_argument("--impl", action="append", choices=list(IMPLS),
                        help="only these implementations (repeatable)")
    parser.add_argument("--procs", type=int, default=8, help="contending processes of the "
                        "one-host table (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure of the one-host "
                        "table, the median is shown (default 3; naive always runs once)")
    parser.add_argument("--only", choices=["local", "shared"],
                        help="only the one-host table (local) or the PostgreSQL one (shared)")
    args = parser.parse_args()
    if args.only != "shared":
        local_section(args)
    if args.only != "local":
        shared_section(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
