"""The crash harness (tests/reliability/test_crash.py) against either store. The facts it checks
are the same; where they live is not. The CSV store keeps them in the campaign folder's files
(progress.csv, its archives, posted.csv). The PostgreSQL store keeps them in the database, which
is read back here through the store (export_day, days, ledger) and with plain SQL
(tests/pg_helpers.py).

A kind gives the harness:
- `store(ctx)`: the store the harness reads in-process;
- `days_folder(ctx)`: a folder whose progress files hold every day the store kept (today's and
  every closed day), for helpers.assert_daily_limits;
- `check(ctx, limit)`: whatever the kind can check beyond the store API;
- `age_one_day(ctx)`: a calendar day passes for everything the campaign keeps;
- `before_reset(ctx)`: make a day reset possible (PostgreSQL refuses one while a worker's lease
  has not run out, even a killed worker's).
"""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import psutil
import psycopg

from engine import columns as C
from engine.rules import now_iso, parse_time
from engine.store import open_store

from helpers import age_one_day
from pg_helpers import assert_db_safe

TIME_COLUMNS = tuple(C.COLUMNS[i] for i in (C.CLAIMED_AT, C.COMPLETED_AT, C.RETRY_AT))


class CsvKind:
    """The CSV file in the campaign folder: every fact is in the folder's files."""

    name = "csv"

    def store(self, ctx):
        return open_store(ctx)

    def days_folder(self, ctx) -> Path:
        return ctx.root

    def check(self, ctx, limit: int) -> None:
        pass

    def age_one_day(self, ctx) -> None:
        age_one_day(ctx.root)

    def before_reset(self, ctx) -> None:
        pass

    def close(self) -> None:
        pass


class PgKind:
    """The PostgreSQL store the URL names (POSTDECK_STORE in every process)."""

    name = "postgresql"

    def __init__(self, url: str, scratch: Path):
        self.url = url
        self.scratch = Path(scratch)
        self._stores: dict = {}

    def store(self, ctx):
        """One store per campaign for the whole test (one connection, closed at the end)."""
        assert ctx.store_url == self.url, "a context made before POSTDECK_STORE was set"
        if ctx.root not in self._stores:
            self._stores[ctx.root] = open_store(ctx)
        return self._stores[ctx.root]

    def days_folder(self, ctx) -> Path:
        """Today's jobs and every closed day, exported from the database as progress files."""
        store = self.store(ctx)
        if self.scratch.exists():
            shutil.rmtree(self.scratch)
        self.scratch.mkdir(parents=True)
        (self.scratch / "progress.csv").write_bytes(store.export_day())
        for day in store.days():
            (self.scratch / f"progress_{day}.csv").write_bytes(store.export_day(day))
        return self.scratch

    def check(self, ctx, limit: int) -> None:
        # every day of the database, read with plain SQL rather than through the store: no
        # account above its limit on a calendar day, none with two claims, no video posted
        # twice, no success without its ledger entry
        assert_db_safe(self.url, limit, ctx.settings.timezone)
        # the database holds the day and the ledger: the folder's files are not written
        for name in ("progress.csv", "posted.csv"):
            assert not (ctx.root / name).exists(), f"{name} written in the campaign folder"
        # each closed day's archive in the folder is that day as the database keeps it
        store = self.store(ctx)
        days = store.days()
        archives = sorted(p.name for p in ctx.root.glob("progress_*.csv"))
        assert archives == sorted(f"progress_{d}.csv" for d in days), (archives, days)
        for day in days:
            assert (_body(store.export_day(day))
                    == _body((ctx.root / f"progress_{day}.csv").read_bytes())), \
                f"the archive of {day} is not the database's closed day"

    def age_one_day(self, ctx) -> None:
        """The folder's archives (as for the CSV store) and every time the database keeps for
        the campaign's days: the jobs' claim, completion and retry times and when each day was
        opened and closed. The ledger's times stay, as posted.csv's do."""
        age_one_day(ctx.root)
        age_db(self.url)

    def before_reset(self, ctx) -> None:
        """Only killed processes may hold a lease now (the harness resets when every run is
        over): a running one holding it is a bug. The killed ones' leases are left as they are:
        the reset itself must see that their processes are gone (this host's)."""
        live = live_leases(self.url)
        alive = [lease for lease in live if _running(lease[2], lease[3])]
        assert not alive, f"leases of processes still running after the run: {alive}"

    def close(self) -> None:
        for store in self._stores.values():
            store.close()
        self._stores.clear()


def _running(pid: int, since: float) -> bool:
    """Whether the process that took a lease at `since` is still running (not another process
    that was given its pid later)."""
    try:
        proc = psutil.Process(pid)
        return proc.create_time() <= since + 1 and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _body(data: bytes) -> list[list[str]]:
    """A progress file's rows, without its header."""
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))[1:]


def live_leases(url: str) -> list[tuple[str, str, int, float]]:
    """(host, worker_id, pid, when it was taken) of every lease that has not run out."""
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('postdeck.leases') IS NOT NULL").fetchone()[0]:
            return []
        return [(h, w, p, float(t)) for h, w, p, t in conn.execute(
            "SELECT host, worker_id, pid, extract(epoch FROM started_at) FROM postdeck.leases "
            "WHERE lease_until > now() ORDER BY host, worker_id").fetchall()]


def age_db(url: str, days: float = 1.0) -> None:
    """helpers.age_one_day for the database: every job time moves back `days` days (written as
    the store writes them), and so do the days' opening and closing times."""
    shift = 86400.0 * days
    cols = ", ".join(f'"{c}"' for c in TIME_COLUMNS)
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
        if not conn.execute("SELECT to_regclass('postdeck.jobs') IS NOT NULL").fetchone()[0]:
            return
        conn.execute("LOCK TABLE postdeck.jobs, postdeck.days IN EXCLUSIVE MODE")
        changed = []
        for cid, day_no, job_id, *times in conn.execute(
                f"SELECT campaign, day_no, job_id, {cols} FROM postdeck.jobs").fetchall():
            moved = [_earlier(t, shift) for t in times]
            if moved != times:
                changed.append((*moved, shift, cid, day_no, job_id))
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE postdeck.jobs SET " + ", ".join(f'"{c}" = %s' for c in TIME_COLUMNS)
                + ", retry_due = CASE WHEN retry_due > 0 THEN retry_due - %s ELSE 0 END "
                "WHERE campaign = %s AND day_no = %s AND job_id = %s", changed)
        conn.execute("UPDATE postdeck.days SET opened_at = opened_at - make_interval(secs => %s), "
                     "closed_at = closed_at - make_interval(secs => %s)", (shift, shift))


def _earlier(text: str, shift: float) -> str:
    at = parse_time(text) if text else None
    return now_iso(at - shift) if at is not None else text
