"""The PostgreSQL store: one database that every host of a farm claims from.

The CSV file under a file lock serves one host; a campaign shared by several hosts needs a store
every host can reach, and PostgreSQL already is the engine job queues run on (procrastinate,
pgqueuer). So the rules are DESIGN.md's, kept the way those queues keep theirs:

- A claim is one transaction. The job it takes is locked with `FOR UPDATE SKIP LOCKED`, so
  claimers on every host pass each other's rows by instead of waiting; its account is held with
  a transaction-scoped advisory lock while its day is counted, so two hosts cannot both take
  its last slot. The schema says what it can on its own: one claimed job per account (a unique
  partial index), a phone held by one worker at a time (an exclusion constraint), unique job
  ids per day, one ledger entry per video.
- Every claim is held under a lease (table `leases`) that its worker renews every few seconds.
  A claim whose lease expired is recovered by any host, by the rules of today (before
  publishing back to retrying, in publishing an unknown outcome), and every later write of its
  holder is rejected (ClaimLost), even before anyone recovered it.
- Changes are announced with NOTIFY on the campaign's channel; idle workers wake on it.
- A day reset closes the day in the database and writes the familiar archive file too.

The transitions themselves stay in engine/lifecycle.py (one home for each rule): rows are read
as progress rows, changed by the same functions as the CSV store's, and written back under a
WHERE clause that refuses a row that moved meanwhile. A transaction cut by a lost connection is
retried on a new one; every write presents its claim_id, so a retry after a commit whose answer
was lost finds its own work done instead of doing it twice.

The schema (`postdeck` in the database) is versioned and migrated on first use, under an
advisory lock, by whichever process gets there first. A campaign used for the first time on a
database imports its current CSV day and its ledger, once, in the same transaction that creates
it.
"""
from __future__ import annotations

import os
import select
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator

import psycopg
import tenacity
from psycopg import errors as pgerrors
from psycopg.conninfo import conninfo_to_dict

from . import columns as C
from . import lifecycle
from .campaigns import Account, Video, video_name
from .durable import write_atomic
from .errors import OUTCOME_UNKNOWN, Classification, classify
from .lifecycle import Job, RetryPolicy
from .limits import HostDay
from .pacing import PostingWindow, gap_ends
from .power import PhonePower
from .problems import InputError, Refused, Remedy, read_input
from .progress_csv import Table, job_dict, parse_progress, serialize
from .rotation import Rotation
from .runstate import process_alive
from .rules import Day, Tally, Usage, account_blocker, counts_today, now_iso, parse_time, tally
from .settings import Settings
from .store import JobRefused, Ledger, PostedVideos
from .tracker import (OPERATOR_SKIP, ClaimLost, ProgressStore, consent_wanted,
                      earliest_chance, folder_archives, free_archive_name, history_entries,
                      host_parts, plan_seed, posted_in_archives, refusal)

SCHEMA_VERSION = 1
# pg_advisory_xact_lock keys: one for migrations, and a namespace for the per-row ones.
MIGRATION_LOCK = 0x706F_7374_6465_636B   # "postdeck"
# A connection lost mid-run is retried on a new one for this long (a server restart, a
# fail-over) before the operation gives up with a message.
RECONNECT_S = 60.0
CONNECT_TIMEOUT_S = 5
CANDIDATES = 32      # rows looked at per query while claiming
JUDGED_AT_ONCE = 8    # accounts judged per query while claiming
CONTENDED_TRIES = 20  # claims passed by rows other claimers held look again this often
COLS = C.COLUMNS
SELECT_COLS = ", ".join(f'j."{c}"' for c in COLS)
SET_COLS = ", ".join(f'"{c}" = %s' for c in COLS)

MIGRATIONS: dict[int, str] = {1: """
CREATE SCHEMA IF NOT EXISTS postdeck;
-- btree_gist (shipped with PostgreSQL, trusted: a database owner may create it) lets an
-- exclusion constraint compare text with = and <>.
CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE TABLE postdeck.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE postdeck.campaigns (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    day_no integer NOT NULL DEFAULT 1,
    imported_from text,
    imported_at timestamptz,
    imported_jobs integer NOT NULL DEFAULT 0,
    imported_posts integer NOT NULL DEFAULT 0,
    history_adopted boolean NOT NULL DEFAULT false
);
CREATE TABLE postdeck.days (
    campaign integer NOT NULL REFERENCES postdeck.campaigns,
    day_no integer NOT NULL,
    opened_at timestamptz NOT NULL DEFAULT now(),
    closed_at timestamptz,
    closed_by text,
    archive text,
    PRIMARY KEY (campaign, day_no),
    UNIQUE (campaign, archive)
);
CREATE TABLE postdeck.jobs (
    campaign integer NOT NULL,
    day_no integer NOT NULL,
    pos double precision NOT NULL,
""" + "".join(f'    "{c}" text NOT NULL DEFAULT \'\',\n' for c in COLS) + """
    host text NOT NULL DEFAULT '',
    video_name text NOT NULL,
    retry_due double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign, day_no, job_id),
    FOREIGN KEY (campaign, day_no) REFERENCES postdeck.days,
    CHECK (status IN ('pending', 'claimed', 'success', 'failed', 'retrying', 'skipped')),
    CHECK (status <> 'claimed' OR (claim_id <> '' AND phone_id <> ''))
);
-- DESIGN.md's claim rules that the database can say by itself, whatever process writes.
CREATE UNIQUE INDEX jobs_one_claim_per_account ON postdeck.jobs (account)
    WHERE status = 'claimed';
-- A phone is held by one worker at a time (that worker may hold it for several claims).
ALTER TABLE postdeck.jobs ADD CONSTRAINT jobs_one_holder_per_phone EXCLUDE USING gist
    (phone_id WITH =, (host || '/' || worker_id) WITH <>) WHERE (status = 'claimed');
CREATE INDEX jobs_pending ON postdeck.jobs (campaign, day_no, pos) WHERE status = 'pending';
CREATE INDEX jobs_retrying ON postdeck.jobs (campaign, day_no, pos) WHERE status = 'retrying';
CREATE INDEX jobs_by_account ON postdeck.jobs (account, campaign, day_no);
CREATE INDEX jobs_by_claim ON postdeck.jobs (claim_id) WHERE claim_id <> '';
CREATE TABLE postdeck.ledger (
    campaign integer NOT NULL REFERENCES postdeck.campaigns,
    video_name text NOT NULL,
    seq bigserial,
    posted_at text NOT NULL,
    account text NOT NULL,
    video_path text NOT NULL,
    job_id text NOT NULL,
    link text NOT NULL DEFAULT '',
    PRIMARY KEY (campaign, video_name)
);
CREATE TABLE postdeck.leases (
    campaign integer NOT NULL REFERENCES postdeck.campaigns,
    host text NOT NULL,
    worker_id text NOT NULL,
    pid integer NOT NULL,
    run_id text NOT NULL DEFAULT '',
    state text NOT NULL DEFAULT '',
    job_id text NOT NULL DEFAULT '',
    phone text NOT NULL DEFAULT '',
    started_at timestamptz NOT NULL DEFAULT now(),
    lease_until timestamptz NOT NULL,
    PRIMARY KEY (campaign, host, worker_id)
);
"""}


def describe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        d = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(a URL that does not parse)"
    host, port = d.get("host") or "localhost", d.get("port") or "5432"
    user = f"{d['user']}@" if d.get("user") else ""
    return f"postgresql://{user}{host}:{port}/{d.get('dbname') or ''}"


def has_password(url: str) -> bool:
    try:
        return bool(conninfo_to_dict(url).get("password"))
    except psycopg.ProgrammingError:
        return False


def check_url(url: str, where: str) -> None:
    """Refuse what is not a PostgreSQL URL, naming where it came from."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise InputError(None, None, f"{where} must be a postgresql:// URL (got "
                                     f"{url[:40]!r}); leave it unset for the CSV file")
    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise InputError(None, None, f"{where} is not a valid PostgreSQL URL ({_first_line(exc)})"
                                     "; write it as postgresql://user@host:port/database") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _transient(exc: BaseException) -> bool:
    """A failure another attempt on a new connection may not meet: the connection was lost (a
    server restart), or the server undid the transaction to break a deadlock or a conflict."""
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)) and not isinstance(
        exc, pgerrors.InsufficientPrivilege)


class SchemaMismatch(InputError):
    """A database whose postdeck schema this postdeck does not know."""


class PgStore:
    """A campaign's jobs, ledger and leases in PostgreSQL. Create one per process: connections
    are opened lazily, inside the process that uses them (never inherited across spawn)."""

    shared = True

    def __init__(self, url: str, name: str, progress_file: Path, ledger_file: Path,
                 settings: Settings, retry: RetryPolicy | None = None,
                 clock: Callable[[], float] = time.time, run_id: str = "",
                 host: HostDay | None = None, power: PhonePower | None = None,
                 rotation: Rotation | None = None, host_name: str = "localhost",
                 root: Path | None = None):
        check_url(url, "the store URL")
        self.url = url
        self.where = describe_url(url)
        self.name = name
        self.path = Path(progress_file)          # where the CSV day is (imported once, archives)
        self.ledger_path = Path(ledger_file)
        self.root = Path(root) if root else self.path.parent
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.run_id = run_id
        self.host_name = host_name
        self.host = host or HostDay(self.path)
        self.power = power
        self.rotation = rotation
        self.window = PostingWindow.of(settings)
        self._conn: psycopg.Connection | None = None
        self._connected_once = False
        self._cid: int | None = None
        self._lock = threading.Lock()     # one transaction at a time on the connection
        self._retrying = False
        self._skip_for: int | None = None     # the open day the skipped archive names are of

    @classmethod
    def for_context(cls, ctx, **kwargs) -> "PgStore":
        return cls(ctx.store_url, ctx.name, ctx.progress_file, ctx.ledger_file, ctx.settings,
                   host_name=ctx.host, root=ctx.root, **host_parts(ctx, kwargs))

    @property
    def channel(self) -> str:
        return f"postdeck_{self.campaign_id}"

    # --- connections and transactions ------------------------------------------------------------
    def connect(self, purpose: str = "store") -> psycopg.Connection:
        """A new autocommit connection. The first connection of a process that fails is one
        message (the URL is wrong or the server is down); later ones are retried by `_tx`."""
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                                   application_name=f"postdeck {self.host_name} {purpose}"[:63])
        except psycopg.Error as exc:
            if self._connected_once:
                raise
            raise InputError(None, None, f"the PostgreSQL store {self.where} cannot be used: "
                                         f"{_first_line(exc)}. Check the URL (POSTDECK_STORE or "
                                         "--store), that the server runs and lets this host in; "
                                         "a password goes in PGPASSWORD or ~/.pgpass") from None
        if not self._connected_once:
            self._connected_once = True
            self._migrate(conn)
        return conn

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = self.connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
        self._conn = None

    def _tx(self, work: Callable[[psycopg.Cursor], object], campaign: bool = True) -> object:
        """Run `work(cur)` in one transaction, on a new connection and again when the
        connection was lost (for up to RECONNECT_S). `work` must be safe to run again: every
        caller either changes nothing or checks, by claim_id, whether its change is there."""
        tries = 0

        def attempt():
            nonlocal tries
            tries += 1
            # Only a retry may find its own write done: the first attempt of a second write
            # with the same claim is the stale holder's, and is refused.
            self._retrying = tries > 1
            with self._lock:
                conn = self._connection()
                try:
                    if campaign:
                        self.campaign_id    # noqa: B018 (creates the campaign on first use)
                    with conn.transaction(), conn.cursor() as cur:
                        return work(cur)
                except BaseException as exc:
                    if _transient(exc):
                        self._drop_connection()
                    raise

        try:
            for try_ in tenacity.Retrying(
                    retry=tenacity.retry_if_exception(_transient),
                    stop=tenacity.stop_after_delay(RECONNECT_S),
                    wait=tenacity.wait_exponential(multiplier=0.05, max=2.0),
                    reraise=True):
                with try_:
                    return attempt()
        except psycopg.Error as exc:
            if isinstance(exc, psycopg.IntegrityError):
                raise
            raise InputError(None, None, f"the PostgreSQL store {self.where} failed: "
                                         f"{_first_line(exc)}; nothing more was written. Check "
                                         "the server, then run the command again") from None
        raise AssertionError("unreachable")

    def _migrate(self, conn: psycopg.Connection) -> None:
        """Bring the schema to SCHEMA_VERSION, under an advisory lock so two hosts starting at
        once do not both create it. A newer schema (a newer postdeck wrote it) is refused: this
        code cannot know its rules."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            found = conn.execute("SELECT to_regclass('postdeck.meta') IS NOT NULL").fetchone()[0]
            version = 0
            if found:
                got = conn.execute("SELECT value FROM postdeck.meta WHERE key = "
                                   "'schema_version'").fetchone()
                try:
                    version = int(got[0]) if got else -1
                except ValueError:
                    version = -1
                if version < 0 or version > SCHEMA_VERSION:
                    shown = got[0] if got else "none"
                    raise SchemaMismatch(None, None, f"the PostgreSQL store {self.where} has "
                                         f"postdeck schema version {shown}, which this postdeck "
                                         f"(schema {SCHEMA_VERSION}) does not know; run the same "
                                         "postdeck version on every host, or name another "
                                         "database")
            elif conn.execute("SELECT to_regnamespace('postdeck') IS NOT NULL").fetchone()[0]:
                raise SchemaMismatch(None, None, f"the PostgreSQL store {self.where} has a "
                                     "schema 'postdeck' that postdeck did not make; name another "
                                     "database")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                conn.execute(MIGRATIONS[v])
                conn.execute("INSERT INTO postdeck.meta VALUES ('schema_version', %s) ON CONFLICT "
                             "(key) DO UPDATE SET value = EXCLUDED.value", (str(v),))

    # --- the campaign, created (and its CSV day imported) on first use ----------------------------
    @property
    def campaign_id(self) -> int:
        if self._cid is None:
            conn = self._connection()
            with conn.transaction(), conn.cursor() as cur:
                self._cid = self._campaign(cur)
        return self._cid

    def _campaign(self, cur: psycopg.Cursor) -> int:
        cur.execute("SELECT id FROM postdeck.campaigns WHERE name = %s", (self.name,))
        got = cur.fetchone()
        if got:
            return got[0]
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 1))",
                    (f"campaign {self.name}",))
        cur.execute("SELECT id FROM postdeck.campaigns WHERE name = %s", (self.name,))
        got = cur.fetchone()
        if got:
            return got[0]
        return self._import(cur)

    def _import(self, cur: psycopg.Cursor) -> int:
        """The campaign's first use on this database: its current CSV day and its ledger come
        in, once (the campaign row created here records it, in the same transaction). A file
        that does not parse is refused with its line, and nothing is created."""
        if _csv_run_going(self.root):
            raise Refused(f"campaign '{self.name}' has a run going on its CSV file; stop it "
                          "before moving the campaign to PostgreSQL", remedies=(Remedy.STOP,))
        data = read_input(self.path, "the progress file")
        rows = parse_progress(self.path, data).rows if data else []
        book = ProgressStore(self.path, self.ledger_path, self.settings).read_ledger()
        cur.execute("INSERT INTO postdeck.campaigns (name, imported_from, imported_at) "
                    "VALUES (%s, %s, now()) RETURNING id", (self.name, str(self.root)))
        cid = cur.fetchone()[0]
        cur.execute("INSERT INTO postdeck.days (campaign, day_no) VALUES (%s, 1)", (cid,))
        # executemany sends them pipelined: a day of 100,000 rows is seconds, not minutes
        cur.executemany(INSERT_JOB, [_insert_params(cid, 1, float(i), row, self.host_name)
                                     for i, row in enumerate(rows)])
        posts = 0
        for entry in book.entries:
            posts += self._add_entry(cur, cid, entry["posted_at"], entry["account"],
                                     entry["video_path"], entry["job_id"],
                                     entry.get(C.LEDGER_LINK, ""))
        for bad in book.damaged:    # a damaged line's every cell keeps its video out
            for cell in bad.cells:
                if cell.strip():
                    posts += self._add_entry(cur, cid, f"imported:damaged line {bad.line}", "",
                                             cell.strip(), cell.strip())
        cur.execute("UPDATE postdeck.campaigns SET imported_jobs = %s, imported_posts = %s "
                    "WHERE id = %s", (len(rows), posts, cid))
        return cid

    @staticmethod
    def _add_entry(cur, cid: int, posted_at: str, account: str, video_path: str, job_id: str,
                   link: str = "") -> int:
        cur.execute("INSERT INTO postdeck.ledger (campaign, video_name, posted_at, account, "
                    "video_path, job_id, link) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (cid, video_name(video_path), posted_at, account, video_path, job_id, link))
        return cur.rowcount

    def imported(self) -> dict[str, object]:
        """What the first use imported: from where, when, how many jobs and ledger entries."""
        def work(cur):
            cur.execute("SELECT imported_from, imported_at, imported_jobs, imported_posts FROM "
                        "postdeck.campaigns WHERE id = %s", (self.campaign_id,))
            f, at, jobs, posts = cur.fetchone()
            return {"from": f, "at": at.isoformat() if at else "", "jobs": jobs, "posts": posts}
        return self._tx(work)  # type: ignore[return-value]

    # --- rows ------------------------------------------------------------------------------------
    @staticmethod
    def _insert(cur, cid: int, day_no: int, pos: float, row: list[str], host: str) -> None:
        cur.execute(INSERT_JOB, _insert_params(cid, day_no, pos, row, host))

    def _update(self, cur, day_no: int, row: list[str], host: str | None = None,
                notify: bool = False, entry: tuple[str, str, str, str, str] | None = None
                ) -> None:
        """Write the row back; with `notify`, announce the change, and with `entry`, add that
        ledger entry (posted_at, account, video_path, job_id, link): in one statement (data-
        modifying CTEs), so a success costs one round trip, not three."""
        update = (f"UPDATE postdeck.jobs SET {SET_COLS}, retry_due = %s"
                  + (", host = %s" if host is not None else "")
                  + " WHERE campaign = %s AND day_no = %s AND job_id = %s")
        params = [*row, _due(row), *([host] if host is not None else []), self.campaign_id,
                  day_no, row[C.JOB_ID]]
        if not notify and entry is None:
            cur.execute(update, params)
            return
        head = ""
        if entry is not None:
            head = ("ledger AS (INSERT INTO postdeck.ledger (campaign, video_name, posted_at, "
                    "account, video_path, job_id, link) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING), ")
            params = [self.campaign_id, video_name(entry[2]), *entry, *params]
        cur.execute(f"WITH {head}changed AS ({update} RETURNING 1) SELECT pg_notify(%s, '')",
                    [*params, self.channel])

    def _day(self, cur, lock: str = "FOR SHARE") -> int:
        """The campaign's open day, locked against a reset (which takes it FOR UPDATE) until
        the transaction ends."""
        cur.execute(f"SELECT day_no FROM postdeck.campaigns WHERE id = %s {lock}",
                    (self.campaign_id,))
        return cur.fetchone()[0]

    def _rows(self, cur, day_no: int, where: str = "", params: Iterable = (),
              lock: str = "") -> list[list[str]]:
        cur.execute(f"SELECT {SELECT_COLS} FROM postdeck.jobs j WHERE j.campaign = %s AND "
                    f"j.day_no = %s {where} ORDER BY j.pos {lock}",
                    [self.campaign_id, day_no, *params])
        return [list(r) for r in cur.fetchall()]

    def _notify(self, cur) -> None:
        cur.execute("SELECT pg_notify(%s, '')", (self.channel,))

    # --- reading ---------------------------------------------------------------------------------
    def read(self) -> Table:
        return Table(self._tx(lambda cur: self._rows(cur, self._day(cur, ""))))  # type: ignore

    def validate(self) -> None:
        self.campaign_id    # noqa: B018 (connects, migrates, imports: each refuses with a message)

    def stats(self) -> dict[str, int]:
        def work(cur):
            day = self._day(cur, "")
            cur.execute("SELECT status, count(*) FROM postdeck.jobs WHERE campaign = %s AND "
                        "day_no = %s GROUP BY status", (self.campaign_id, day))
            return dict(cur.fetchall())
        got = self._tx(work)
        counts = {s: int(got.get(s, 0)) for s in C.STATUSES}  # type: ignore[union-attr]
        counts["total"] = sum(counts.values())
        return counts

    def jobs(self) -> list[dict[str, str]]:
        return [job_dict(r) for r in self.read().rows]

    def job(self, job_id: str) -> dict[str, str] | None:
        rows = self._tx(lambda cur: self._rows(cur, self._day(cur, ""), "AND j.job_id = %s",
                                               [job_id]))
        return job_dict(rows[0]) if rows else None  # type: ignore[index]

    # --- limits: what each account used today outside this campaign's open day -----------------
    def _usage(self, cur, day: Day, day_no: int, accounts: list[str] | None) -> dict[str, Usage]:
        """Today's use of each account outside this campaign's open day: the host's CSV files
        (engine/limits.py) plus every other day and campaign in the database."""
        return self._db_usage(cur, day, day_no, accounts, self._host_usage(cur, day, accounts))

    def _host_usage(self, cur, day: Day, accounts: list[str] | None = None,
                    day_no: int | None = None) -> dict[str, Usage]:
        """The host's CSV files' use of each account today (engine/limits.py), without the
        folder's archives of days this store closed (the database counts those; their names
        change only when a day closes, so they are asked for again only then)."""
        if day_no is None or self._skip_for != day_no:
            cur.execute("SELECT archive FROM postdeck.days WHERE campaign = %s AND archive IS "
                        "NOT NULL", (self.campaign_id,))
            self.host.skip_names = frozenset(r[0] for r in cur.fetchall())
            self._skip_for = day_no
        return {account: Usage(u.used, u.running, u.posted)
                for account, u in self.host.usage(day).items()
                if accounts is None or account in accounts}

    def _db_usage(self, cur, day: Day, day_no: int, accounts: list[str] | None,
                  base: dict[str, Usage]) -> dict[str, Usage]:
        """`base` (copied) plus every other day and campaign of the database: a closed day's
        rows fall on the day of their times (an untimed row on its archive's date)."""
        out = {a: Usage(u.used, u.running, u.posted) for a, u in base.items()
               if accounts is None or a in accounts}
        cur.execute(
            f"SELECT {SELECT_COLS}, d.closed_at IS NULL, coalesce(d.archive, '') "
            "FROM postdeck.jobs j JOIN postdeck.days d ON d.campaign = j.campaign "
            "AND d.day_no = j.day_no WHERE NOT (j.campaign = %s AND j.day_no = %s) "
            "AND j.status IN ('success', 'claimed', 'failed') "
            "AND (d.closed_at IS NULL OR d.closed_at >= to_timestamp(%s)) "
            + ("AND j.account = ANY(%s)" if accounts is not None else ""),
            [self.campaign_id, day_no, day.start, *([accounts] if accounts is not None else [])])
        for *row, current, archive in cur.fetchall():
            if counts_today(row, day, current, current or day.label in archive):
                _count(out.setdefault(row[C.ACCOUNT], Usage()), row, current)
        return out

    def _tallies(self, cur, day: Day, day_no: int, accounts: list[str],
                 host: dict[str, Usage]) -> dict[str, Tally]:
        """The accounts' tallies for rules 2-4: their rows of the open day, and what they used
        today elsewhere (`host`: the host's CSV files, counted once per claim)."""
        # one query: the open day's rows (in queue order) and the counting rows of every other
        # day and campaign, told apart by `own`
        cur.execute(
            f"SELECT {SELECT_COLS}, j.campaign = %s AND j.day_no = %s, d.closed_at IS NULL, "
            "coalesce(d.archive, '') FROM postdeck.jobs j JOIN postdeck.days d ON "
            "d.campaign = j.campaign AND d.day_no = j.day_no WHERE j.account = ANY(%s) AND "
            "((j.campaign = %s AND j.day_no = %s) OR (j.status IN ('success', 'claimed', "
            "'failed') AND (d.closed_at IS NULL OR d.closed_at >= to_timestamp(%s)))) "
            "ORDER BY j.pos",
            [self.campaign_id, day_no, accounts, self.campaign_id, day_no, day.start])
        own: list[list[str]] = []
        elsewhere = {a: Usage(u.used, u.running, u.posted) for a, u in host.items()
                     if a in accounts}
        for *row, mine, current, archive in cur.fetchall():
            if mine:
                own.append(row)
            elif counts_today(row, day, current, current or day.label in archive):
                _count(elsewhere.setdefault(row[C.ACCOUNT], Usage()), row, current)
        return tally(own, self.settings, day, elsewhere)

    def usage_elsewhere(self, day: Day) -> dict[str, Usage]:
        return self._tx(lambda cur: self._usage(cur, day, self._day(cur, ""), None))  # type: ignore

    def gap_until(self, phone: str) -> float | None:
        if self.power is None or self.settings.min_gap_seconds <= 0:
            return None
        return gap_ends(self.power.read(phone).last_post_end, self.settings)

    def _off(self) -> tuple[list[str], list[str]]:
        if self.rotation is None:
            return [], []
        return sorted(self.rotation.accounts()), sorted(self.rotation.phones())

    # --- claims ----------------------------------------------------------------------------------
    def claim(self, worker_id: str, phone: str | None = None,
              phone_free: Callable[[str], bool] | None = None,
              accounts: frozenset[str] | None = None,
              prefer_phone: str | None = None) -> Job | None:
        """DESIGN.md's claim rules in one transaction (engine/tracker.py's claim says them in
        full). Candidates come from indexed queries in queue order (pending before retrying,
        `prefer_phone`'s first), already without accounts and phones that hold a claim. Their
        accounts are judged a few at a time without a lock (rules 2-4, every campaign and day),
        so the jobs of accounts that may not post now (at their limit, blocked, cooling down)
        cost no query or row lock each. The first job that passes is locked (SKIP LOCKED) with
        its account's advisory lock, and its account judged again under it. A conflict the
        schema catches passes to the next candidate (under a savepoint when a phone lock is
        asked for) or makes the claim look again."""
        claim_id = uuid.uuid4().hex
        off, off_phones = self._off()
        contended = [False]
        limit = self.settings.daily_limit

        def work(cur):
            cur.execute("SELECT c.day_no, (SELECT l.lease_until > now() FROM postdeck.leases l "
                        "WHERE l.campaign = c.id AND l.host = %s AND l.worker_id = %s) "
                        "FROM postdeck.campaigns c WHERE c.id = %s FOR SHARE OF c",
                        (self.host_name, worker_id, self.campaign_id))
            day_no, lease = cur.fetchone()
            if self._retrying:     # a retry after a commit whose answer was lost?
                again = self._rows(cur, day_no, "AND j.claim_id = %s AND j.status = 'claimed'",
                                   [claim_id])
                if again:
                    return Job.from_row(again[0])
            if lease is False:
                return None                # this worker's lease expired: it claims nothing
            now = self.clock()
            if self.window is not None and not self.window.is_open(now, self.settings.tz):
                return None
            day = Day.of(now, self.settings.tz)
            host = self._host_usage(cur, day, day_no=day_no)
            may: dict[str, bool] = {}      # account -> may post now, as last judged
            gaps: dict[str, float | None] = {}
            contended[0] = False
            for batch in self._candidates(cur, day_no, now, worker_id, phone, accounts,
                                          prefer_phone, off, off_phones):
                for i, (job_id, account, job_phone, posted) in enumerate(batch):
                    if not posted:
                        if account not in may:
                            # this account and the next few undecided ones, without their
                            # locks: enough to pass by those that may not post (a freed one
                            # announces itself, and the next claim sees it)
                            judge = list(dict.fromkeys(
                                c[1] for c in batch[i:] if not c[3] and c[1] not in may))
                            tallies = self._tallies(cur, day, day_no, judge[:JUDGED_AT_ONCE],
                                                    host)
                            for name in judge[:JUDGED_AT_ONCE]:
                                may[name] = not account_blocker(tallies.get(name), limit, now)
                        if not may[account]:
                            continue
                        if job_phone not in gaps:
                            gaps[job_phone] = self.gap_until(job_phone)
                        if gaps[job_phone] is not None and now < gaps[job_phone]:
                            continue
                    # the row and its account's advisory lock in one round trip (the lock may
                    # be taken for a row another claimer holds: it is then only held a moment)
                    got = self._lock_row(cur, day_no, job_id, account)
                    if got is None or not got[1]:
                        contended[0] = True     # another claimer is deciding on it
                        continue
                    row = got[0]
                    if posted:
                        lifecycle.skip(row, now, "its video is in the ledger: already posted")
                        self._update(cur, day_no, row)
                        continue
                    # judged again under its lock, with what others wrote until now
                    fresh = self._tallies(cur, day, day_no, [account],
                                          self._host_usage(cur, day, [account], day_no))
                    if account_blocker(fresh.get(account), limit, now):
                        may[account] = False
                        continue
                    job = lifecycle.claim(row, worker_id, claim_id, now, job_phone, self.run_id,
                                          self.settings.max_attempts)
                    if phone_free is None:
                        # A conflict the schema catches (a race the locks above leave no room
                        # for) undoes the whole transaction; the claim then looks again.
                        try:
                            self._update(cur, day_no, row, self.host_name)
                        except (pgerrors.UniqueViolation, pgerrors.ExclusionViolation):
                            contended[0] = True
                            raise _Conflict from None
                        return job
                    try:
                        with cur.connection.transaction():     # a savepoint
                            self._update(cur, day_no, row, self.host_name)
                            if not phone_free(job_phone):
                                raise _NotFree
                    except (_NotFree, pgerrors.UniqueViolation, pgerrors.ExclusionViolation):
                        continue
                    return job
            return None

        for _ in range(CONTENDED_TRIES):
            try:
                job = self._tx(work)
            except _Conflict:
                job = None
            if job is not None or not contended[0]:
                return job  # type: ignore[return-value]
            # Another claimer held a row or an account we passed by: what it decides may leave
            # one for us, so look again now rather than at the next wake-up.
            time.sleep(0.005)
        return None

    def _lock_row(self, cur, day_no: int, job_id: str,
                  account: str) -> tuple[list[str], bool] | None:
        """The row, locked, if it is still due and no other claimer holds it (SKIP LOCKED), and
        whether its account's advisory lock was taken (False: another claimer is deciding on
        that account now)."""
        cur.execute(f"SELECT {SELECT_COLS}, pg_try_advisory_xact_lock(hashtextextended(%s, 2)) "
                    "FROM postdeck.jobs j WHERE j.campaign = %s AND j.day_no = %s AND "
                    "j.job_id = %s AND j.status IN ('pending', 'retrying') "
                    "FOR UPDATE OF j SKIP LOCKED",
                    (f"account {account}", self.campaign_id, day_no, job_id))
        got = cur.fetchone()
        return None if got is None else (list(got[:-1]), bool(got[-1]))

    def _candidates(self, cur, day_no: int, now: float, worker_id: str, phone: str | None,
                    accounts: frozenset[str] | None, prefer_phone: str | None,
                    off: list[str], off_phones: list[str]
                    ) -> Iterator[list[tuple[str, str, str, bool]]]:
        """Batches of due jobs in claim order, read without a lock, as (job_id, account, its
        phone, whether the ledger holds its video); without accounts and phones that hold a
        claim (another worker's, for the phone)."""
        bound = phone if phone is not None else prefer_phone
        orders = []
        if phone is not None or prefer_phone is not None:
            orders += [("pending", "=", bound), ("retrying", "=", bound)]
        if phone is None:
            orders += [("pending", "<>" if prefer_phone else None, prefer_phone),
                       ("retrying", "<>" if prefer_phone else None, prefer_phone)]
        job_phone = "coalesce(nullif(j.phone_id, ''), j.account)"
        for status, op, which in orders:
            after = -float("inf")
            while True:
                where = [f"j.status = '{status}'", "j.pos > %s",
                         "NOT (j.account = ANY(%s))", f"NOT ({job_phone} = ANY(%s))",
                         "NOT EXISTS (SELECT 1 FROM postdeck.jobs c WHERE c.status = 'claimed' "
                         "AND c.account = j.account)",
                         "NOT EXISTS (SELECT 1 FROM postdeck.jobs c WHERE c.status = 'claimed' "
                         f"AND c.phone_id = {job_phone} AND NOT (c.host = %s AND "
                         "c.worker_id = %s))"]
                params: list = [after, off, off_phones, self.host_name, worker_id]
                if status == "retrying":
                    where.append("j.retry_due <= %s")
                    params.append(now)
                if op is not None:
                    where.append(f"{job_phone} {op} %s")
                    params.append(which)
                if accounts is not None:
                    where.append("j.account = ANY(%s)")
                    params.append(sorted(accounts))
                cur.execute(
                    f"SELECT j.job_id, j.account, {job_phone}, EXISTS (SELECT 1 FROM "
                    "postdeck.ledger l WHERE l.campaign = j.campaign AND l.video_name = "
                    "j.video_name), j.pos FROM postdeck.jobs j WHERE j.campaign = %s AND "
                    "j.day_no = %s AND " + " AND ".join(where)
                    + f" ORDER BY j.pos LIMIT {CANDIDATES}", [self.campaign_id, day_no, *params])
                batch = cur.fetchall()
                if batch:
                    after = batch[-1][4]
                    yield [tuple(r[:4]) for r in batch]
                if len(batch) < CANDIDATES:
                    break

    # --- writes by a claim's holder -------------------------------------------------------------
    def _own(self, cur, job_id: str, claim_id: str, done_ok: bool = False,
             takeover: bool = False) -> tuple[int, list[str]] | tuple[int, None]:
        """The job `claim_id` holds, locked. ClaimLost when it is no longer that claim's, or
        when the claim's lease expired (its holder was given up on, even if nobody recovered
        the claim yet). `done_ok`: a row this claim already finished is returned as None (a
        retried write whose first commit went through). `takeover` (a supervisor settling a
        claim whose holder is gone) skips the lease."""
        # one round trip: the open day (locked against a reset), the row and its lease
        cur.execute(f"SELECT {SELECT_COLS}, l.lease_until IS NOT NULL AND l.lease_until <= "
                    "now(), c.day_no FROM postdeck.campaigns c JOIN postdeck.jobs j ON "
                    "j.campaign = c.id AND j.day_no = c.day_no LEFT JOIN postdeck.leases l ON "
                    "l.campaign = j.campaign AND l.host = j.host AND l.worker_id = j.worker_id "
                    "WHERE c.id = %s AND j.job_id = %s FOR UPDATE OF j FOR SHARE OF c",
                    (self.campaign_id, job_id))
        got = cur.fetchone()
        if got is None:
            raise ClaimLost(f"job {job_id} is not in today's jobs of {self.where}")
        *row, expired, day_no = got
        if done_ok and self._retrying and row[C.CLAIM_ID] == claim_id and claim_id and row[C.STATUS] != C.CLAIMED:
            return day_no, None
        if row[C.STATUS] != C.CLAIMED or row[C.CLAIM_ID] != claim_id or not claim_id:
            raise ClaimLost(f"job {job_id} is no longer claimed with claim {claim_id[:8]} "
                            f"(status {row[C.STATUS]}); the write was rejected")
        if expired and not takeover:
            raise ClaimLost(f"the lease of worker {row[C.WORKER_ID]} on job {job_id} expired; "
                            "the write was rejected")
        return day_no, row

    def set_phase(self, job_id: str, claim_id: str, phase: str) -> None:
        if phase not in C.PHASES:
            raise ValueError(f"unknown phase {phase!r}")

        def work(cur):
            day_no, row = self._own(cur, job_id, claim_id)
            lifecycle.set_phase(row, phase)
            self._update(cur, day_no, row)
        self._tx(work)

    def set_task(self, job_id: str, claim_id: str, task_id: str) -> None:
        def work(cur):
            day_no, row = self._own(cur, job_id, claim_id)
            lifecycle.set_task(row, task_id)
            self._update(cur, day_no, row)
        self._tx(work)

    def watch(self, job_id: str, claim_id: str, watcher: str) -> None:
        """A supervisor takes the claim over (lifecycle.watch), from whichever host made it: the
        claim moves to this host under the supervisor's lease."""
        def work(cur):
            day_no, row = self._own(cur, job_id, claim_id, takeover=True)
            lifecycle.watch(row, watcher, self.run_id)
            self._update(cur, day_no, row, self.host_name)
        self._tx(work)

    def complete(self, job_id: str, claim_id: str, video_id: str = "") -> None:
        """Success: the ledger entry and the row in one transaction."""
        def work(cur):
            day_no, row = self._own(cur, job_id, claim_id, done_ok=True)
            if row is None:
                return
            now = self.clock()
            link = video_id if video_id.startswith(("http://", "https://")) else ""
            entry = (now_iso(now), row[C.ACCOUNT], row[C.VIDEO_PATH], job_id, link)
            lifecycle.complete(row, now, video_id)
            self._update(cur, day_no, row, notify=True, entry=entry)
        self._tx(work)

    def fail(self, job_id: str, claim_id: str, error: str | BaseException,
             classification: Classification | None = None) -> dict[str, str]:
        cls = classification or classify(error)
        message = str(error).strip().replace("\r", " ")[:500] or cls.error_type

        def work(cur):
            day_no, row = self._own(cur, job_id, claim_id, done_ok=True)
            if row is None:
                return job_dict(self._rows(cur, day_no, "AND j.job_id = %s", [job_id])[0])
            lifecycle.fail(row, self.clock(), message, cls, self.retry,
                           self.settings.max_attempts)
            self._update(cur, day_no, row, notify=True)
            return job_dict(row)
        return self._tx(work)  # type: ignore[return-value]

    def release(self, job_id: str, claim_id: str) -> None:
        def work(cur):
            day_no, row = self._own(cur, job_id, claim_id, done_ok=True)
            if row is None:
                return
            lifecycle.release(row, self.clock(), self.retry, self.settings.max_attempts)
            self._update(cur, day_no, row, notify=True)
        self._tx(work)

    # --- leases and recovery ----------------------------------------------------------------------
    def lease(self, worker_id: str, pid: int, ttl_s: float, run_id: str = "") -> "PgLease":
        return PgLease(self, worker_id, pid, ttl_s, run_id)

    def hold_run(self, pid: int, ttl_s: float, run_id: str) -> "PgLease":
        """The supervisor's lease (its watched claims are held under it), which is also the
        run lock of this campaign on this host in the database: a session advisory lock on the
        lease's connection, freed by the server when the supervisor's process or connection
        dies. A second supervisor with the same host name (two hosts sharing a POSTDECK_HOST,
        one folder mounted on two hosts) is refused before it recovers anything."""
        from .workers import WATCHER
        return PgLease(self, WATCHER, pid, ttl_s, run_id, run_lock=True)

    def leases(self) -> list[dict[str, object]]:
        def work(cur):
            cur.execute("SELECT host, worker_id, pid, state, job_id, phone, run_id, "
                        "extract(epoch FROM lease_until - now()) FROM postdeck.leases "
                        "WHERE campaign = %s ORDER BY host, worker_id", (self.campaign_id,))
            return [{"host": h, "worker_id": w, "pid": p, "state": s, "job_id": j, "phone": ph,
                     "run_id": r, "expires_in": float(e)}
                    for h, w, p, s, j, ph, r, e in cur.fetchall()]
        return self._tx(work)  # type: ignore[return-value]

    def _claims(self, cur, day_no: int, lock: str = "") -> list[tuple[list[str], str, bool]]:
        cur.execute(f"SELECT {SELECT_COLS}, j.host, l.lease_until IS NOT NULL AND "
                    "l.lease_until <= now() FROM postdeck.jobs j LEFT JOIN postdeck.leases l ON "
                    "l.campaign = j.campaign AND l.host = j.host AND l.worker_id = j.worker_id "
                    "WHERE j.campaign = %s AND j.day_no = %s AND j.status = 'claimed' "
                    f"ORDER BY j.pos {lock}", (self.campaign_id, day_no))
        return [(list(r[:-2]), r[-2], r[-1]) for r in cur.fetchall()]

    def _stale(self, host: str, expired: bool, row: list[str], live: set[str],
               run_id: str | None) -> bool:
        """Any host's claim whose lease expired; this host's claims as the CSV store judges
        them (a worker that is not alive, or of another run). Another host's claim under a
        live lease is that host's to judge."""
        if expired:
            return True
        if host != self.host_name:
            return False
        return not (row[C.WORKER_ID] in live and (run_id is None or row[C.RUN_ID] == run_id))

    def stale_claims(self, live_workers: Iterable[str],
                     run_id: str | None = None) -> list[dict[str, str]]:
        live = set(live_workers)
        claims = self._tx(lambda cur: self._claims(cur, self._day(cur, "")))
        return [job_dict(row) for row, host, expired in claims  # type: ignore[union-attr]
                if self._stale(host, expired, row, live, run_id)]

    def recover_stale(self, live_workers: Iterable[str], run_id: str | None = None,
                      counted: bool = True) -> list[dict]:
        live = set(live_workers)

        def work(cur):
            day_no = self._day(cur)
            recovered = []
            for row, host, expired in self._claims(cur, day_no, "FOR UPDATE OF j"):
                if not self._stale(host, expired, row, live, run_id):
                    continue
                now = self.clock()
                if counted:
                    why = (f"the lease of worker {row[C.WORKER_ID]} on host {host} expired"
                           if expired else f"worker {row[C.WORKER_ID]} was lost")
                    lifecycle.recover(row, now, why, self.retry, self.settings.max_attempts)
                else:
                    lifecycle.release(row, now, self.retry, self.settings.max_attempts)
                self._update(cur, day_no, row)
                recovered.append(job_dict(row))
            if recovered:
                self._notify(cur)
            return recovered
        return self._tx(work)  # type: ignore[return-value]

    # --- the operator's actions -------------------------------------------------------------------
    def retry_all_failed(self, include_non_retryable: bool = False) -> int:
        posted = self.posted()

        def work(cur):
            day_no = self._day(cur)
            count = 0
            for row in self._rows(cur, day_no, "AND j.status = 'failed'", lock="FOR UPDATE"):
                if posted.holds(video_name(row[C.VIDEO_PATH]), row[C.JOB_ID]):
                    continue
                if lifecycle.needs_consent(row) and not include_non_retryable:
                    continue
                lifecycle.retry(row)
                self._update(cur, day_no, row)
                count += 1
            if count:
                self._notify(cur)
            return count
        return self._tx(work)  # type: ignore[return-value]

    def retry_job(self, job_id: str, include_non_retryable: bool = False) -> dict[str, str]:
        posted = self.posted()

        def act(cur, day_no: int, row: list[str]) -> None:
            if row[C.STATUS] == C.FAILED:
                if posted.holds(video_name(row[C.VIDEO_PATH]), job_id):
                    raise JobRefused(job_id, JobRefused.POSTED, f"job {job_id}: its video is in "
                                     f"the ledger of {self.where}: it was posted, so it is "
                                     "never retried")
                if lifecycle.needs_consent(row) and not include_non_retryable:
                    raise JobRefused(job_id, JobRefused.NEEDS_CONSENT, consent_wanted(row))
            lifecycle.retry(row)
        return self._act_on_job(job_id, "retry", act)

    def skip_job(self, job_id: str, reason: str) -> dict[str, str]:
        reason = " ".join(str(reason).split())[:500] or OPERATOR_SKIP
        return self._act_on_job(job_id, "withdraw",
                                lambda cur, day_no, row: lifecycle.withdraw(row, self.clock(),
                                                                            reason))

    def move_to_front(self, job_id: str) -> dict[str, str]:
        def act(cur, day_no: int, row: list[str]) -> None:
            lifecycle.to_front(row)
            cur.execute("UPDATE postdeck.jobs SET pos = (SELECT min(pos) - 1 FROM postdeck.jobs "
                        "WHERE campaign = %s AND day_no = %s) WHERE campaign = %s AND "
                        "day_no = %s AND job_id = %s",
                        (self.campaign_id, day_no, self.campaign_id, day_no, job_id))
        return self._act_on_job(job_id, "to_front", act)

    def _act_on_job(self, job_id: str, action: str, act) -> dict[str, str]:
        def work(cur):
            day_no = self._day(cur)
            rows = self._rows(cur, day_no, "AND j.job_id = %s", [job_id], lock="FOR UPDATE")
            if not rows:
                raise JobRefused(job_id, JobRefused.UNKNOWN_JOB,
                                 f"no job {job_id!r} in today's jobs of campaign "
                                 f"'{self.name}' ({self.where}); a job id is "
                                 "`<video file name>_<campaign>` (its job_id column)")
            row = rows[0]
            if row[C.STATUS] == C.CLAIMED:
                raise JobRefused(job_id, JobRefused.CLAIMED,
                                 f"job {job_id} is claimed by worker {row[C.WORKER_ID] or '?'}: "
                                 "a worker holds it; stop the run or wait")
            try:
                act(cur, day_no, row)
            except lifecycle.IllegalTransition as exc:
                raise refusal(job_id, action, row, exc) from None
            self._update(cur, day_no, row)
            self._notify(cur)
            return job_dict(row)
        return self._tx(work)  # type: ignore[return-value]

    # --- seeding and the day ----------------------------------------------------------------------
    def next_chance(self, phone: str | None = None,
                    accounts: frozenset[str] | None = None) -> tuple[bool, float | None]:
        def work(cur):
            day_no = self._day(cur, "")
            now = self.clock()
            day = Day.of(now, self.settings.tz)
            rows = self._rows(cur, day_no)
            tallies = tally(rows, self.settings, day, self._usage(cur, day, day_no, None))
            off, off_phones = self._off()
            return earliest_chance(rows, tallies, now, day, self.settings, self.window,
                                   self.gap_until, frozenset(off), frozenset(off_phones),
                                   phone, accounts)
        return self._tx(work)  # type: ignore[return-value]

    def seed(self, videos: list[Video], accounts: list[Account], campaign: str) -> list[dict]:
        posted = self.posted()

        def work(cur):
            # one seeder at a time per campaign: two hosts seeding at once would each fill the
            # same free slots
            cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 3))",
                        (f"seed {self.campaign_id}",))
            day_no = self._day(cur)
            now = self.clock()
            day = Day.of(now, self.settings.tz)
            rows = self._rows(cur, day_no)
            tallies = tally(rows, self.settings, day, self._usage(cur, day, day_no, None))
            new = plan_seed(rows, tallies, videos, accounts, campaign, posted, self.settings)
            cur.execute("SELECT coalesce(max(pos), 0) FROM postdeck.jobs WHERE campaign = %s "
                        "AND day_no = %s", (self.campaign_id, day_no))
            top = cur.fetchone()[0]
            for i, row in enumerate(new, 1):
                self._insert(cur, self.campaign_id, day_no, top + i, row, "")
            if new:
                self._notify(cur)
            return [job_dict(r) for r in new]
        return self._tx(work)  # type: ignore[return-value]

    def days(self) -> list[str]:
        prefix = f"{self.path.stem}_"

        def work(cur):
            cur.execute("SELECT archive FROM postdeck.days WHERE campaign = %s AND closed_at IS "
                        "NOT NULL ORDER BY day_no", (self.campaign_id,))
            return [r[0] for r in cur.fetchall()]
        return [a[len(prefix):-4] for a in self._tx(work)]  # type: ignore[union-attr]

    def export_day(self, day: str | None = None) -> bytes:
        """A day as a progress file, from the database: today's or a closed one."""
        def work(cur):
            if day is None:
                return self._rows(cur, self._day(cur, ""))
            cur.execute("SELECT day_no FROM postdeck.days WHERE campaign = %s AND archive = %s",
                        (self.campaign_id, f"{self.path.stem}_{day}.csv"))
            got = cur.fetchone()
            return None if got is None else self._rows(cur, got[0])
        rows = self._tx(work)
        if rows is None:
            raise InputError(None, None, f"campaign '{self.name}' has no closed day {day!r} in "
                             f"{self.where}; its closed days are "
                             f"{', '.join(self.days()) or 'none yet'}")
        return serialize(rows)  # type: ignore[arg-type]

    def reset_day(self, date: str, guard: Callable[[], None] | None = None) -> Path | None:
        """Close the day in the database (refused while any host's worker holds a live lease or
        a claim), open the next, and write the closed day's archive in the campaign folder,
        named as the CSV store names it and never over a file."""
        def work(cur):
            if guard is not None:
                guard()
            day_no = self._day(cur, "FOR UPDATE")
            # This host's leases whose process is gone (a crash) are over now: their claims
            # were recovered before the reset, and waiting for them to run out helps nobody.
            # Another host's are that host's to judge: they must run out.
            cur.execute("SELECT worker_id, pid FROM postdeck.leases WHERE campaign = %s AND "
                        "host = %s AND lease_until > now()", (self.campaign_id, self.host_name))
            gone = [w for w, pid in cur.fetchall() if not process_alive(pid)]
            if gone:
                cur.execute("UPDATE postdeck.leases SET lease_until = now() WHERE campaign = %s "
                            "AND host = %s AND worker_id = ANY(%s)",
                            (self.campaign_id, self.host_name, gone))
            cur.execute("SELECT host, array_agg(pid ORDER BY worker_id) FROM postdeck.leases "
                        "WHERE campaign = %s AND lease_until > now() GROUP BY host ORDER BY "
                        "host", (self.campaign_id,))
            live = cur.fetchall()
            if live:
                who = "; ".join(f"host {h} (pids {', '.join(map(str, p))})" for h, p in live)
                raise Refused(f"resetting the day refused: workers of campaign '{self.name}' "
                              f"still hold live leases: {who}",
                              pids=[p for _, ps in live for p in ps], remedies=(Remedy.STOP_ALL,))
            claims = self._claims(cur, day_no)
            if claims:
                hosts = sorted({h for _, h, _ in claims})
                raise Refused(f"resetting the day refused: {len(claims)} job(s) are still "
                              f"claimed (hosts {', '.join(hosts)}); their workers' leases must "
                              "expire first", remedies=(Remedy.STATUS,))
            cur.execute("SELECT archive FROM postdeck.days WHERE campaign = %s AND archive IS "
                        "NOT NULL", (self.campaign_id,))
            taken = {r[0] for r in cur.fetchall()}
            archive = free_archive_name(self.path, date,
                                        lambda p: p.exists() or p.name in taken)
            # closed at the store's clock, the one its rows' times were written by
            cur.execute("UPDATE postdeck.days SET closed_at = to_timestamp(%s), closed_by = %s, "
                        "archive = %s WHERE campaign = %s AND day_no = %s",
                        (self.clock(), self.host_name, archive.name, self.campaign_id, day_no))
            cur.execute("INSERT INTO postdeck.days (campaign, day_no) VALUES (%s, %s)",
                        (self.campaign_id, day_no + 1))
            cur.execute("UPDATE postdeck.campaigns SET day_no = %s WHERE id = %s",
                        (day_no + 1, self.campaign_id))
            self._notify(cur)
            return archive, self._rows(cur, day_no)
        archive, rows = self._tx(work)  # type: ignore[misc]
        try:
            archive.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(archive, serialize(rows))
        except OSError as exc:
            raise InputError(archive, None, f"the day is closed in {self.where}, but its archive "
                             f"could not be written ({exc.strerror or exc}); write it again "
                             f"with --export-day and --day {archive.stem[len(self.path.stem) + 1:]}"
                             ) from None
        return archive

    # --- the ledger ------------------------------------------------------------------------------
    def read_ledger(self) -> Ledger:
        def work(cur):
            cur.execute("SELECT posted_at, account, video_path, job_id, link FROM postdeck.ledger "
                        "WHERE campaign = %s ORDER BY seq", (self.campaign_id,))
            out = []
            for posted_at, account, video, job_id, link in cur.fetchall():
                entry = dict(zip(C.LEDGER_COLUMNS, (posted_at, account, video, job_id)))
                if link:
                    entry[C.LEDGER_LINK] = link
                out.append(entry)
            return out
        return Ledger(self._tx(work), [])  # type: ignore[arg-type]

    def ledger(self) -> list[dict[str, str]]:
        return self.read_ledger().entries

    def import_posts(self, entries: list[tuple[str, str, str, str]]) -> tuple[int, int]:
        known = self.posted().names

        def work(cur):
            new = 0
            for posted_at, account, video, job_id in entries:
                if video_name(video) in known:
                    continue
                new += self._add_entry(cur, self.campaign_id, posted_at, account, video, job_id)
            if new:
                self._notify(cur)
            return new
        new = self._tx(work)
        return new, len(entries) - new  # type: ignore[operator]

    def adopt_history(self) -> int:
        """Once per campaign on this database: the successes of the campaign folder's progress
        files (today's and every archive) become ledger entries, as the CSV store does for a
        campaign without a ledger."""
        entries = history_entries([*folder_archives(self.path), self.path])

        def work(cur):
            cur.execute("SELECT history_adopted FROM postdeck.campaigns WHERE id = %s FOR UPDATE",
                        (self.campaign_id,))
            if cur.fetchone()[0]:
                return 0
            cur.execute("UPDATE postdeck.campaigns SET history_adopted = true WHERE id = %s",
                        (self.campaign_id,))
            return sum(self._add_entry(cur, self.campaign_id, *e) for e in entries)
        return self._tx(work)  # type: ignore[return-value]

    def posted(self) -> PostedVideos:
        """The ledger, every closed day's successes, unknown outcomes and publishing claims, and
        the campaign folder's archives (the earlier system's too)."""
        def work(cur):
            day_no = self._day(cur, "")
            cur.execute("SELECT video_path, job_id FROM postdeck.ledger WHERE campaign = %s",
                        (self.campaign_id,))
            got = cur.fetchall()
            cur.execute("SELECT video_path, job_id FROM postdeck.jobs WHERE campaign = %s AND "
                        "day_no <> %s AND (status = 'success' OR error_type = %s OR "
                        "(status = 'claimed' AND phase = 'publishing'))",
                        (self.campaign_id, day_no, OUTCOME_UNKNOWN))
            return got + cur.fetchall()
        posted = PostedVideos()
        for video, job_id in self._tx(work):  # type: ignore[union-attr]
            posted.add(video, job_id)
        return posted_in_archives(posted, folder_archives(self.path))

    def close(self) -> None:
        with self._lock:
            self._drop_connection()


class _NotFree(Exception):
    """The chosen job's phone is held by another process on this host."""


class _Conflict(Exception):
    """A claim's write met a claim the schema forbids next to it (another claimer got there
    first): its transaction is undone and the claim looks again."""


INSERT_JOB = ("INSERT INTO postdeck.jobs (campaign, day_no, pos, host, video_name, retry_due, "
              + ", ".join(f'"{c}"' for c in COLS) + ") VALUES (%s, %s, %s, %s, %s, %s, "
              + ", ".join(["%s"] * len(COLS)) + ")")


def _insert_params(cid: int, day_no: int, pos: float, row: list[str], host: str) -> list:
    return [cid, day_no, pos, host, video_name(row[C.VIDEO_PATH]), _due(row), *row]


def _count(u: Usage, row: list[str], current: bool) -> None:
    """One row that uses a slot of its account's day, outside the open day's rows."""
    u.used += 1
    if row[C.STATUS] == C.CLAIMED:
        u.running += current
    elif row[C.STATUS] == C.SUCCESS:
        u.posted += 1


def _due(row: list[str]) -> float:
    """When a retrying row is due, as a number the claim query can compare (0: at once)."""
    return parse_time(row[C.RETRY_AT]) or 0.0 if row[C.STATUS] == C.RETRYING else 0.0


def _csv_run_going(root: Path) -> bool:
    """Whether another process's run holds the folder's run lock (it works on the CSV file:
    this store's own run imports before it spawns anything, so its pid is ours or our
    parent's)."""
    from .context import PostingContext
    from .runstate import running_supervisor
    try:
        info = running_supervisor(PostingContext.for_campaign_dir(root))
    except Exception:
        return False
    return info is not None and info.pid not in (os.getpid(), os.getppid())


class PgLease:
    """A lease row in `leases`, renewed on a connection of its own, which also LISTENs on the
    campaign's channel: the thread that renews the lease is the one that waits for changes, so
    the two never share a connection with the store's transactions."""

    def __init__(self, store: PgStore, worker_id: str, pid: int, ttl_s: float, run_id: str,
                 run_lock: bool = False):
        self.store = store
        self.worker_id = worker_id
        self.pid = pid
        self.ttl_s = ttl_s
        self.run_id = run_id
        self.run_lock = run_lock
        self.conn: psycopg.Connection | None = None
        cid = store.campaign_id
        self.cid = cid
        self._open()
        assert self.conn is not None
        if run_lock and not self._lock_run():
            self.conn.close()
            raise Refused(f"starting a run refused: a run of campaign '{store.name}' on host "
                          f"{store.host_name} holds its lock in {store.where} (another "
                          "supervisor with this host name: give each host its own "
                          "POSTDECK_HOST)", remedies=(Remedy.STATUS,))
        self._wake_r, self._wake_w = os.pipe()     # interrupt(): ends a wait from another thread
        self.conn.execute(
            "INSERT INTO postdeck.leases (campaign, host, worker_id, pid, run_id, lease_until) "
            "VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s)) "
            "ON CONFLICT (campaign, host, worker_id) DO UPDATE SET pid = EXCLUDED.pid, "
            "run_id = EXCLUDED.run_id, started_at = now(), lease_until = EXCLUDED.lease_until, "
            "state = '', job_id = '', phone = ''",
            (cid, store.host_name, worker_id, pid, run_id, ttl_s))

    def _open(self) -> None:
        self.conn = self.store.connect("lease")
        self.conn.execute(f"LISTEN {self.store.channel}")
        if self.run_lock and getattr(self, "_wake_r", None) is not None and not self._lock_run():
            # reconnected after a lost connection and another supervisor took the lock meanwhile
            raise psycopg.OperationalError("the run lock was taken by another supervisor")

    def _lock_run(self) -> bool:
        assert self.conn is not None
        return self.conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 4))",
                                 (f"run {self.cid} {self.store.host_name}",)).fetchone()[0]

    @contextmanager
    def _reconnecting(self) -> Iterator[None]:
        try:
            yield
        except (psycopg.OperationalError, psycopg.InterfaceError):
            try:
                if self.conn is not None:
                    self.conn.close()
            finally:
                self.conn = None

    def renew(self, state: str = "", job_id: str = "", phone: str = "") -> bool:
        """False only when the database says the lease expired: a database that cannot be
        reached now says nothing (the lease runs out there by itself if it stays away)."""
        with self._reconnecting():
            if self.conn is None:
                self._open()
            cur = self.conn.execute(
                "UPDATE postdeck.leases SET lease_until = now() + make_interval(secs => %s), "
                "state = %s, job_id = %s, phone = %s WHERE campaign = %s AND host = %s AND "
                "worker_id = %s AND pid = %s AND lease_until > now()",
                (self.ttl_s, state, job_id, phone, self.cid, self.store.host_name,
                 self.worker_id, self.pid))
            return cur.rowcount == 1
        return True

    def wait_changes(self, timeout: float) -> bool:
        deadline = time.monotonic() + max(0.0, timeout)
        with self._reconnecting():
            if self.conn is None:
                self._open()
            ready, _, _ = select.select([self.conn.fileno(), self._wake_r], [], [],
                                        max(0.0, timeout))
            if self._wake_r in ready:
                return False
            if not ready:
                return False
            # readable: take what arrived (notifies() with no wait consumes it)
            return any(True for _ in self.conn.notifies(timeout=0, stop_after=1))
        left = deadline - time.monotonic()
        if left > 0:
            select.select([self._wake_r], [], [], left)
        return False

    def interrupt(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    def close(self) -> None:
        with self._reconnecting():
            if self.conn is not None:
                # A lease that still holds a claim (a worker that left mid-job) stays and runs
                # out, so any host recovers the claim, not only this one.
                self.conn.execute(
                    "DELETE FROM postdeck.leases l WHERE campaign = %s AND host = %s AND "
                    "worker_id = %s AND pid = %s AND NOT EXISTS (SELECT 1 FROM postdeck.jobs j "
                    "WHERE j.campaign = l.campaign AND j.host = l.host AND j.worker_id = "
                    "l.worker_id AND j.status = 'claimed')",
                    (self.cid, self.store.host_name, self.worker_id, self.pid))
                self.conn.close()
        self.conn = None
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
