"""What the panels draw, gathered off the main thread.

`Feed.poll(campaign)` runs in a thread worker: it reads the progress store, heartbeats, run lock,
the phones' power records (one small file per phone) and the log the log pane shows (the
supervisor's or a worker's, its timestamps moved to the campaign's time zone) without taking the
store's lock (a replaced file is always whole), and returns
a `Frame` with every panel's rows already formatted. The main thread only hands the rows to the
tables, which apply just what changed. It mirrors engine/status.py's `campaign_status` (the dict
`--status --json` prints) from the same engine functions, with the clock and the liveness check
injectable so tests can freeze time.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

from engine import columns as C
from engine.accounts import AccountStates
from engine.campaigns import list_campaign_dirs
from engine.context import PostingContext
from engine.pacing import window_status
from engine import rotation
from engine.pause import paused
from engine.power import PhonePower, PowerRecord
from engine.problems import InputError
from engine.progress_csv import Table, parse_progress, reparse
from engine.rules import Day
from engine.runstate import process_alive, read_heartbeats, running_supervisor, supervisor_pid
from engine.status import phones_held_elsewhere, shown_workers, status_counts
from engine.store import JobStore, open_store

from .accounts import AccountRows, gaps_of
from .campaigns import CampaignInfo, campaign_row
from .fmt import log_line_in_zone, opens_text, zone_name
from .jobs import JobRows
from .live_table import Row
from .workers import lease_rows, phones_panel_rows

SPARK_HOURS = 12
LOG_KEEP = 300
LOG_TAIL_BYTES = 64 * 1024


@dataclass
class Header:
    campaign: str | None = None
    running: bool = False
    supervisor_pid: int | None = None
    enabled: bool = True
    counts: dict[str, int] = field(default_factory=lambda: status_counts([]))
    posts_last_hour: int = 0
    spark: list[int] = field(default_factory=lambda: [0] * SPARK_HOURS)
    error: str | None = None
    loading: bool = False                # before the first poll arrived
    window_opens: str = ""               # the posting window is closed: when it opens ("22:00")
    paused_since: str = ""               # the run is paused: since when ("14:05"), by whom
    clock: str = ""                      # now on the campaign's clock ("14:00")
    zone: str = ""                       # the campaign's time zone ("Europe/Berlin")
    zone_short: str = ""                 # and its abbreviation now ("CEST")


@dataclass
class Frame:
    campaign: str | None
    header: Header
    campaigns: dict[str, Row]
    workers: dict[str, Row] | None = None     # None: leave the panel as it is
    accounts: dict[str, Row] | None = None
    jobs: dict[str, Row] | None = None
    log_reset: bool = False
    log_lines: list[str] = field(default_factory=list)
    fetch_cpu: float = 0.0


class LogTail:
    """Follows a log file: the last lines at first, then what was appended. A rotated or
    truncated file starts over."""

    def __init__(self, path: Path):
        self.path = path
        self.inode: int | None = None
        self.offset = 0
        self.partial = b""

    def read(self) -> tuple[bool, list[str]]:
        try:
            st = os.stat(self.path)
        except OSError:
            if self.inode is None:
                return False, []
            self.inode, self.offset, self.partial = None, 0, b""
            return True, []
        reset = False
        if st.st_ino != self.inode or st.st_size < self.offset \
                or st.st_size - self.offset > 4 * LOG_TAIL_BYTES:
            reset = True
            self.inode = st.st_ino
            self.offset = max(0, st.st_size - LOG_TAIL_BYTES)
            self.partial = b""
        if st.st_size == self.offset:
            return reset, []
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read(st.st_size - self.offset)
        except OSError:
            return reset, []
        skip_first = reset and self.offset > 0
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        if skip_first and lines:
            lines = lines[1:]     # we started in the middle of a line
        return reset, [ln.decode("utf-8", "replace").rstrip("\r") for ln in lines[-LOG_KEEP:]]


class ProgressReader:
    """Reads a progress file for display, without the lock (it is always replaced whole).

    The parsing is the engine's (engine/progress_csv.py), as the store does it: after the first
    read only the records that changed are parsed again (`reparse`), and anything it cannot
    vouch for is parsed whole by `parse_progress`, which raises the operator's message naming
    the file and line. A missing or empty file shows
    as an empty day."""

    def __init__(self, path: Path):
        self.path = path
        self._data: bytes | None = None
        self._table: Table | None = None

    def read(self) -> list[list[str]]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        if data != self._data:
            # Nothing is kept when the parse raises: the next read tries again.
            self._table = self._parse(data) if data else None
            self._data = data
        return self._table.rows if self._table is not None else []

    def _parse(self, data: bytes) -> Table:
        old = self._table
        table = reparse(old, data) if old is not None else None
        if table is not None:
            return table      # reparse hands back the old row object of every unchanged row
        table = parse_progress(self.path, data)         # raises CorruptProgressFile
        if old is not None:
            _reuse_unchanged(old, table)
        return table


def _reuse_unchanged(old: Table, new: Table) -> None:
    """After a whole parse (a file reparse could not vouch for, such as CRLF), hand back the
    previous read's row object for every row that did not change: the panels skip a row by
    identity (JobRows, AccountStates)."""
    rows, old_rows, where = new.rows, old.rows, old.index
    for i, row in enumerate(rows):
        j = where.get(row[C.JOB_ID])
        if j is not None:
            was = old_rows[j]
            if was is not row and was == row:
                rows[i] = was


class AliveCheck:
    """Whether a worker's process lives, asked at most every `every` seconds per process: a
    hundred workers polled every second would otherwise cost a hundred /proc reads a poll. A dead
    process stays dead (its create time cannot come back)."""

    def __init__(self, check: Callable[[int, float | None], bool], every: float = 3.0):
        self.check = check
        self.every = every
        self._seen: dict[tuple[int, float], tuple[bool, float]] = {}

    def __call__(self, pid: int, create_time: float, now: float) -> bool:
        key = (pid, create_time)
        hit = self._seen.get(key)
        if hit is not None and (not hit[0] or now - hit[1] < self.every):
            return hit[0]
        alive = self.check(pid, create_time)
        self._seen[key] = (alive, now)
        if len(self._seen) > 4096:
            self._seen.clear()
        return alive


class AccountsFile:
    """accounts.txt parsed again only when it changed."""

    def __init__(self) -> None:
        self._seen: dict[Path, tuple[tuple[int, int], list]] = {}

    def load(self, ctx: PostingContext) -> list:
        try:
            st = ctx.accounts_file.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (0, -1)
        hit = self._seen.get(ctx.accounts_file)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        accounts = ctx.load_accounts()          # raises InputError, never cached
        self._seen[ctx.accounts_file] = (stamp, accounts)
        return accounts


class Feed:
    def __init__(self, campaigns_dir: Path, extra_roots: list[Path] | None = None,
                 clock: Callable[[], float] = time.time,
                 pid_alive: Callable[[int, float | None], bool] = process_alive):
        self.campaigns_dir = Path(campaigns_dir)
        self.extra_roots = [Path(p).resolve() for p in extra_roots or []]
        self.clock = clock
        self.pid_alive = pid_alive
        self._alive = AliveCheck(pid_alive)
        self._accounts_file = AccountsFile()
        self._readers: dict[Path, ProgressReader] = {}
        self._stores: dict[Path, JobStore] = {}     # kept: the daily-limit count is cached in it
        self._jobs = JobRows()
        self._accounts = AccountRows()
        self._states = AccountStates()
        self._jobs_campaign: str | None = None
        self._job_phones: tuple[list | None, list[str]] = (None, [])
        self._power: dict[Path, PhonePower] = {}    # kept: it re-reads only changed records
        self._tail: LogTail | None = None
        self._tail_campaign: str | None = None
        self._tail_dir: Path | None = None
        self.log_source = "supervisor.log"      # the log the pane asked for (set by the pane)
        self.log_shown = "supervisor.log"       # the log the last poll read

    # --- campaigns ---------------------------------------------------------------------------------
    def roots(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        try:
            dirs = list_campaign_dirs(self.campaigns_dir)
        except InputError:
            dirs = []
        for root in [*dirs, *self.extra_roots]:
            found.setdefault(root.name, root.resolve())
        return found

    def first_campaign(self) -> str | None:
        """The campaign to open when none was named: a running one, else an enabled one."""
        roots = self.roots()
        rank = []
        for name, root in roots.items():
            try:
                ctx = PostingContext.for_campaign_dir(root, self.campaigns_dir)
                rank.append((running_supervisor(ctx) is None, not ctx.settings.enabled, name))
            except InputError:
                rank.append((True, True, name))
        return min(rank)[2] if rank else None

    def context(self, name: str) -> PostingContext:
        root = self.roots().get(name)
        if root is None:
            raise InputError(None, None, f"no campaign '{name}' in {self.campaigns_dir}")
        return PostingContext.for_campaign_dir(root, self.campaigns_dir)

    def _rows(self, ctx: PostingContext) -> list[list[str]]:
        reader = self._readers.get(ctx.progress_file)
        if reader is None:
            reader = self._readers[ctx.progress_file] = ProgressReader(ctx.progress_file)
        return reader.read()

    def log_sources(self) -> list[str]:
        """The logs the pane can show for the campaign last polled: the supervisor's, then each
        worker's that exists (worker-0.log, worker-1.log, ...)."""
        found = []
        if self._tail_dir is not None:
            try:
                names = os.listdir(self._tail_dir)
            except OSError:
                names = []
            for name in names:
                number = name[len("worker-"):-len(".log")]
                if name.startswith("worker-") and name.endswith(".log") and number.isdigit():
                    found.append((int(number), name))
        return ["supervisor.log", *(name for _, name in sorted(found))]

    # --- one poll ----------------------------------------------------------------------------------
    def poll(self, campaign: str | None) -> Frame:
        started = time.thread_time()
        now = self.clock()
        infos, contexts = [], {}
        for name, root in self.roots().items():
            try:
                ctx = contexts[name] = PostingContext.for_campaign_dir(root, self.campaigns_dir)
                accounts = len(self._accounts_file.load(ctx))
                rows = self._rows(ctx)
                supervisor = running_supervisor(ctx)
                infos.append(CampaignInfo(
                    name=name, enabled=ctx.settings.enabled, accounts=accounts,
                    success=status_counts(rows)[C.SUCCESS], total=len(rows),
                    daily_limit=ctx.daily_limit, running=supervisor is not None,
                    supervisor_pid=supervisor_pid(supervisor)))
            except InputError as exc:
                infos.append(CampaignInfo(name=name, error=str(exc)))
        frame = Frame(campaign=campaign, header=Header(campaign=campaign),
                      campaigns=dict(campaign_row(i, i.name == campaign) for i in infos))
        ctx = contexts.get(campaign) if campaign else None
        if campaign and ctx is None:
            frame.header.error = next((i.error for i in infos if i.name == campaign and i.error),
                                      None) or f"campaign '{campaign}' is gone"
        if ctx is not None:
            self._campaign(ctx, now, frame)
        frame.fetch_cpu = time.thread_time() - started
        return frame

    def _campaign(self, ctx: PostingContext, now: float, frame: Frame) -> None:
        h = frame.header
        h.enabled = ctx.settings.enabled
        window = window_status(ctx.settings, now)
        h.window_opens = opens_text(window["opens_at"], now, ctx.settings.tz)
        supervisor = running_supervisor(ctx)
        h.running = supervisor is not None
        pause = paused(ctx) if h.running else None
        h.paused_since = (f"{datetime.fromtimestamp(pause.since, ctx.settings.tz):%H:%M} by "
                          f"{pause.by}" if pause else "")
        h.supervisor_pid = supervisor_pid(supervisor)
        h.clock = f"{datetime.fromtimestamp(now, ctx.settings.tz):%H:%M}"
        h.zone, h.zone_short = zone_name(ctx.settings.tz, now), zone_name(ctx.settings.tz, now, True)
        beats = read_heartbeats(ctx.heartbeats_dir)
        alive = {hb.worker_id for hb in beats if self._alive(hb.pid, hb.create_time, now)}
        shown = shown_workers(beats, alive, h.running)
        if self._tail_campaign != ctx.name:
            self.log_source = "supervisor.log"      # another campaign: its supervisor's log
        source = self.log_source
        if self._tail_campaign != ctx.name or self.log_shown != source:
            self._tail, self._tail_campaign = LogTail(ctx.logs_dir / source), ctx.name
            self._tail_dir, self.log_shown = ctx.logs_dir, source
            frame.log_reset = True
        reset, lines = self._tail.read()
        frame.log_reset = frame.log_reset or reset
        frame.log_lines = [log_line_in_zone(line, ctx.settings.tz) for line in lines]
        try:
            accounts = self._accounts_file.load(ctx)
        except InputError:
            accounts = []
        try:
            rows = self._rows(ctx)
        except InputError as exc:       # a corrupt file: say so, keep showing the last rows
            h.error = str(exc)
            # the phones still show, those of accounts.txt: a phone on still bills
            self._phones(ctx, now, frame, shown, alive, [a.phone for a in accounts])
            return
        if self._jobs_campaign != ctx.name:
            self._jobs, self._accounts, self._states = JobRows(), AccountRows(), AccountStates()
            self._jobs_campaign = ctx.name
        frame.jobs, posted = self._jobs.build(rows, now, ctx.settings.tz)
        h.counts = status_counts(rows)
        spark = [0] * SPARK_HOURS
        for at in posted:
            age = now - at
            if 0 <= age < SPARK_HOURS * 3600:
                spark[SPARK_HOURS - 1 - int(age // 3600)] += 1
        h.spark, h.posts_last_hour = spark, spark[-1]
        busy = phones_held_elsewhere(ctx)
        store = self._stores.get(ctx.progress_file)
        if store is None:
            store = self._stores[ctx.progress_file] = open_store(ctx)
        elsewhere = store.usage_elsewhere(Day.of(now, ctx.settings.tz))
        try:
            off = rotation.effective(ctx, accounts)
        except InputError:          # the status and --run name the damaged file
            off = {}
        states = self._states.compute(rows, ctx.settings, now, accounts, busy, elsewhere, off)
        records = self._phones(ctx, now, frame, shown, alive, self._campaign_phones(states, rows))
        if store.shared:
            frame.workers = lease_rows(store.leases(), ctx.host, frame.workers)
        frame.accounts = self._accounts.build(states, now,
                                              gaps_of(states, records, ctx.settings, now))

    def _campaign_phones(self, states, rows: list[list[str]]) -> list[str]:
        """The campaign's phones as `--status --json` lists them (engine/status.py's
        `_phones_of`): its accounts' phones, then any a job ran on. The jobs' phones are gathered
        again only when the rows changed: the reader hands back the same list for an unchanged
        file, and a poll should not walk 10,000 rows for nothing."""
        seen, phones = self._job_phones
        if rows is not seen:
            phones = list(dict.fromkeys(r[C.PHONE_ID] for r in rows if r[C.PHONE_ID]))
            self._job_phones = (rows, phones)
        return list(dict.fromkeys([s.phone for s in states] + phones))

    def _phones(self, ctx: PostingContext, now: float, frame: Frame, shown: list, alive: set[str],
                phones: list[str]) -> dict[str, PowerRecord]:
        """The phones panel: the campaign's phones and those its workers drive, each with its
        power record (one small JSON file each, host-wide: a phone bills whichever campaign drives
        it). Returns the records, by phone, for the accounts' gaps."""
        phones = list(dict.fromkeys(phones + [hb.phone for hb in shown if hb.phone]))
        power = self._power.get(ctx.power_dir)
        if power is None or power.tz != ctx.settings.tz:
            power = self._power[ctx.power_dir] = PhonePower(ctx.power_dir, ctx.settings.tz)
        records = {r.phone: r for r in power.records(phones)}
        frame.workers = phones_panel_rows(shown, alive, records, now,
                                          Day.of(now, ctx.settings.tz))
        return records
