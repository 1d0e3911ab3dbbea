"""The progress store: one CSV file per campaign day, changed only under a file lock.

Every change is a read-modify-write under an exclusive `filelock.FileLock` on `<file>.lock`, written
atomically (engine/durable.py). Readers that only look (the console, --status) read without the
lock. The file is never deleted or truncated; a file that does not parse is refused with the
file and line, byte-for-byte untouched.

A claim is a lease: it writes a fresh `claim_id`, and every later write for that job must present
it, so a worker whose claim was recovered cannot overwrite the job's newer state.

The operator acts on one job (retry, skip, move to the front) through the same lock and the same
lifecycle table, so these may run while a run goes: a claimed job is refused, never forced.
"""
from __future__ import annotations

import csv
import io
import os
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterable, Iterator

from filelock import FileLock, Timeout

from . import columns as C
from . import lifecycle
from .campaigns import Account, Video, video_name
from .durable import append_durable, write_atomic
from .errors import OUTCOME_UNKNOWN, Classification, classify
from .problems import InputError, Remedy, decode_utf8, read_input
from .progress_csv import (HEADER_BYTES, HEADER_ONLY, CorruptProgressFile, Table, job_dict,
                           parse_progress, reparse, serialize, serialize_table)
from .lifecycle import Job, RetryPolicy
from .limits import HostDay, account_lock, lenient_rows
from .pacing import PostingWindow, gap_ends
from .power import PhonePower
from .rotation import Rotation, rotation_path
from .rules import Day, Tally, Usage, account_blocker, due, now_iso, parse_time, tally
from .settings import Settings
from .store import DamagedLine, JobRefused, Ledger, LocalLease, PostedVideos

LOCK_TIMEOUT_S = 120.0
IMPORTED = "imported:"   # posted_at of a ledger entry postdeck did not write itself
# filelock's default 50 ms poll throttles contended claims to ~20 a second per waiter.
LOCK_POLL_S = 0.002
OPERATOR_SKIP = "skipped by the operator"   # a skip's reason when the operator gave none
# How each operator action on one job is named in a refusal.
ACTION_WORDS = {"retry": "retry", "withdraw": "skip", "to_front": "move to the front"}


class ClaimLost(Exception):
    """A write presented a claim_id that is no longer the job's claim."""


__all__ = ["ClaimLost", "CorruptProgressFile", "HEADER_BYTES", "HEADER_ONLY", "Job",
           "ProgressStore", "RetryPolicy", "Table", "job_dict", "job_id_for", "parse_progress",
           "reparse", "serialize", "serialize_table"]


class ProgressStore:
    """The campaign's progress file and its ledger. Create one per process: the lock object is
    made lazily, inside the process that uses it (never inherited across spawn)."""

    shared = False     # one host: a claim's liveness is its worker's heartbeat and pid

    def __init__(self, path: Path, ledger_path: Path, settings: Settings,
                 retry: RetryPolicy | None = None, clock: Callable[[], float] = time.time,
                 run_id: str = "", host: HostDay | None = None,
                 power: PhonePower | None = None, rotation: Rotation | None = None):
        self.path = Path(path)
        self.ledger_path = Path(ledger_path)
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.run_id = run_id
        # Without a host state folder the store still counts its own folder's archives.
        self.host = host or HostDay(self.path)
        self._lock: FileLock | None = None
        self._account_locks: dict[str, FileLock] = {}
        self._ledger_cache: tuple[int, int, set[str]] | None = None   # inode, bytes read, names
        self._cache: tuple[bytes, Table] | None = None
        self.window = PostingWindow.of(settings)
        self.power = power
        self.rotation = rotation     # accounts out of rotation (engine/rotation.py)

    @classmethod
    def for_context(cls, ctx, **kwargs) -> "ProgressStore":
        return cls(ctx.progress_file, ctx.ledger_file, ctx.settings, **host_parts(ctx, kwargs))

    # --- reading ---------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> Table:
        """A consistent snapshot without the lock (the file is always replaced whole). A missing
        file is an empty day."""
        data = self._read_bytes()
        return Table([]) if data is None else self._parse(data)

    def _read_bytes(self) -> bytes | None:
        """The file's bytes; None when there is none yet. Something that cannot be read in its
        place is refused with one message, never a traceback."""
        return read_input(self.path, "the progress file")

    def jobs(self) -> list[dict[str, str]]:
        return [job_dict(r) for r in self.read().rows]

    def job(self, job_id: str) -> dict[str, str] | None:
        row = self.read().get(job_id)
        return None if row is None else job_dict(row)

    def stats(self) -> dict[str, int]:
        counts = dict.fromkeys(C.STATUSES, 0)
        rows = self.read().rows
        for row in rows:
            counts[row[C.STATUS]] += 1
        counts["total"] = len(rows)
        return counts

    def validate(self) -> None:
        """Raise CorruptProgressFile if the file does not parse; a missing file is fine."""
        self.read()

    def _parse(self, data: bytes) -> Table:
        cached = self._cache
        if cached is not None and cached[0] == data:
            return cached[1]
        table = reparse(cached[1], data) if cached is not None else None
        if table is None:
            table = parse_progress(self.path, data)
        self._cache = (data, table)
        return table

    # --- the locked read-modify-write ------------------------------------------------------------
    @property
    def lock(self) -> FileLock:
        if self._lock is None:
            self._lock = FileLock(str(self.path) + ".lock", timeout=LOCK_TIMEOUT_S,
                                  poll_interval=LOCK_POLL_S)
        return self._lock

    def _locked(self, change: Callable[[Table, float], tuple[bool, object]]) -> object:
        """Run `change(table, now)` under the lock; it returns (changed, result). A change that
        raises leaves the file untouched."""
        try:
            with self.lock:
                data = self._read_bytes()
                if data is None:
                    table = Table([])
                else:
                    table = self._parse(data)
                    # The change mutates the cached table; forget it until the write is done.
                    self._cache = None
                changed, result = change(table, self.clock())
                if changed:
                    new = serialize_table(table)
                    try:
                        write_atomic(self.path, new)
                    except OSError as exc:
                        raise InputError(self.path, None, "could not be written ("
                                         f"{exc.strerror or exc}); it is left as it was. Free "
                                         "some space or fix the folder") from None
                    self._cache = (new, table)
                elif data is not None:
                    self._cache = (data, table)
                return result
        except Timeout:
            raise InputError(self.path, None, f"the lock {self.path}.lock has been held for over "
                                              f"{LOCK_TIMEOUT_S:.0f}s; is a process stuck?",
                             remedies=(Remedy.STATUS,)) from None

    # --- claims ----------------------------------------------------------------------------------
    def claim(self, worker_id: str, phone: str | None = None,
              phone_free: Callable[[str], bool] | None = None,
              accounts: frozenset[str] | None = None,
              prefer_phone: str | None = None) -> Job | None:
        """Claim the oldest eligible job (pending before retrying, file order within each) for
        `worker_id`, or None. `phone` binds the worker to one phone; `phone_free(p)` is asked
        last, for the chosen job only, whether no other worker on the host holds phone p;
        `accounts` limits the run to those accounts; `prefer_phone` puts that phone's jobs
        first (the worker kept it on for them).

        Pacing: nothing is claimed while the posting window is closed, nor on a phone whose
        last post ended less than min_gap_seconds ago. An account out of rotation
        (engine/rotation.py) is passed over: its jobs stay as they are.

        The daily limit counts what the account used today anywhere on the host
        (engine/limits.py); the host-wide account lock is held from that count until the claim
        is written, so two campaigns cannot both take an account's last slot."""
        taken: list[FileLock] = []

        def change(table: Table, now: float):
            if self.window is not None and not self.window.is_open(now, self.settings.tz):
                return False, None
            limit = self.settings.daily_limit
            day = Day.of(now, self.settings.tz)
            elsewhere = self.host.usage(day)
            gaps: dict[str, float | None] = {}
            # An account's tally depends on its own rows only, so it is made for the accounts
            # of the candidates looked at, not for every account of the file.
            by_account: defaultdict[str, list[list[str]]] = defaultdict(list)
            for r in table.rows:
                by_account[r[C.ACCOUNT]].append(r)
            held = {r[C.PHONE_ID] or r[C.ACCOUNT]: r[C.WORKER_ID] for r in table.rows
                    if r[C.STATUS] == C.CLAIMED}

            def account_tally(account: str, usage) -> Tally | None:
                extra = {account: usage} if usage is not None else None
                return tally(by_account[account], self.settings, day, extra).get(account)

            tallies: dict[str, Tally | None] = {}
            in_ledger = self._ledger_names()
            off = self._out_of_rotation()
            off_phones = self.rotation.phones() if self.rotation is not None else frozenset()
            skipped = False
            for row in self._candidates(table, now, prefer_phone):
                account = row[C.ACCOUNT]
                if accounts is not None and account not in accounts:
                    continue
                if account in off:
                    continue
                if in_ledger and video_name(row[C.VIDEO_PATH]) in in_ledger:
                    # posted already (a ledger imported or edited after this job was seeded)
                    lifecycle.skip(row, now, "its video is in the ledger: already posted")
                    skipped = True
                    continue
                if account not in tallies:
                    tallies[account] = account_tally(account, elsewhere.get(account))
                if account_blocker(tallies[account], limit, now):
                    continue
                job_phone = row[C.PHONE_ID] or account
                if phone is not None and job_phone != phone:
                    continue
                if job_phone in off_phones:
                    continue    # the phone is out of rotation
                holder = held.get(job_phone)
                if holder is not None and holder != worker_id:
                    continue
                if job_phone not in gaps:
                    gaps[job_phone] = self.gap_until(job_phone)
                if gaps[job_phone] is not None and now < gaps[job_phone]:
                    continue
                lock = self._account_lock(account)
                if lock is not None:
                    lock.acquire()
                    fresh = self.host.usage(day).get(account)
                    if fresh != elsewhere.get(account):
                        tallies[account] = account_tally(account, fresh)
                        if account_blocker(tallies[account], limit, now):
                            lock.release()
                            continue
                if phone_free is not None and not phone_free(job_phone):
                    if lock is not None:
                        lock.release()
                    continue
                if lock is not None:
                    taken.append(lock)
                return True, lifecycle.claim(row, worker_id, uuid.uuid4().hex, now, job_phone,
                                             self.run_id, self.settings.max_attempts)
            return skipped, None

        try:
            return self._locked(change)  # type: ignore[return-value]
        finally:
            # Released only now: the claim is on disk, where other campaigns count it.
            for lock in taken:
                lock.release()

    def _ledger_names(self) -> set[str]:
        """The ledger's video names: a claim must never take a job whose video the ledger holds.
        The ledger only grows, so after the first read only the lines appended since are read
        (a file that shrank or was replaced is read whole again). A ledger that cannot be read
        is left to the commands that report it; the claim then goes by what it read last."""
        cache = self._ledger_cache
        try:
            st = self.ledger_path.stat()
        except OSError:
            return set() if cache is None else cache[2]
        if cache is not None and cache[0] == st.st_ino and st.st_size >= cache[1]:
            if st.st_size == cache[1]:
                return cache[2]
            try:
                with open(self.ledger_path, "rb") as fh:
                    fh.seek(cache[1])
                    tail = fh.read()
                done = tail.rfind(b"\n") + 1        # a line still being written waits
                lines = list(csv.reader(io.StringIO(tail[:done].decode("utf-8"), newline="")))
            except (OSError, UnicodeDecodeError, csv.Error):
                lines = None
            if lines is not None:
                posted = PostedVideos()
                posted.names = cache[2]
                for cells in lines:
                    if len(cells) in (len(C.LEDGER_COLUMNS), len(C.LEDGER_COLUMNS) + 1):
                        posted.add(cells[2], cells[3])
                    else:
                        for cell in cells:
                            posted.add(cell, cell)
                self._ledger_cache = (st.st_ino, cache[1] + done, posted.names)
                return posted.names
        try:
            raw = self.ledger_path.read_bytes()
            book = self.read_ledger()
        except (OSError, InputError):
            return set() if cache is None else cache[2]
        names = book.posted().names
        self._ledger_cache = (st.st_ino, raw.rfind(b"\n") + 1, names)
        return names

    def _out_of_rotation(self) -> frozenset[str]:
        """The accounts the operator took out of rotation (a stat per call; read on change)."""
        return self.rotation.accounts() if self.rotation is not None else frozenset()

    def _account_lock(self, account: str) -> FileLock | None:
        if not self.host.shared:
            return None
        lock = self._account_locks.get(account)
        if lock is None:
            lock = self._account_locks[account] = account_lock(self.host.host_state_dir, account)
        return lock

    def gap_until(self, phone: str) -> float | None:
        """When `phone` may take its next claim (min_gap_seconds after its last post)."""
        if self.power is None or self.settings.min_gap_seconds <= 0:
            return None
        return gap_ends(self.power.read(phone).last_post_end, self.settings)

    @staticmethod
    def _candidates(table: Table, now: float,
                    prefer_phone: str | None = None) -> Iterator[list[str]]:
        if prefer_phone is not None:
            rows = list(ProgressStore._candidates(table, now))
            mine = [r for r in rows if (r[C.PHONE_ID] or r[C.ACCOUNT]) == prefer_phone]
            yield from mine
            yield from (r for r in rows if (r[C.PHONE_ID] or r[C.ACCOUNT]) != prefer_phone)
            return
        retrying = []
        for row in table.rows:
            status = row[C.STATUS]
            if status == C.PENDING:
                yield row
            elif status == C.RETRYING and due(row, now):
                retrying.append(row)
        yield from retrying

    def _own(self, table: Table, job_id: str, claim_id: str) -> list[str]:
        row = table.get(job_id)
        if row is None:
            raise ClaimLost(f"job {job_id} is not in {self.path}")
        if row[C.STATUS] != C.CLAIMED or row[C.CLAIM_ID] != claim_id or not claim_id:
            raise ClaimLost(f"job {job_id} is no longer claimed with claim {claim_id[:8]} "
                            f"(status {row[C.STATUS]}); the write was rejected")
        return row

    def set_phase(self, job_id: str, claim_id: str, phase: str) -> None:
        if phase not in C.PHASES:
            raise ValueError(f"unknown phase {phase!r}")

        def change(table: Table, now: float):
            lifecycle.set_phase(self._own(table, job_id, claim_id), phase)
            return True, None

        self._locked(change)

    def set_task(self, job_id: str, claim_id: str, task_id: str) -> None:
        """Record the remote task publishing this claim, so recovery can ask what became of it."""
        def change(table: Table, now: float):
            lifecycle.set_task(self._own(table, job_id, claim_id), task_id)
            return True, None

        self._locked(change)

    def watch(self, job_id: str, claim_id: str, watcher: str) -> None:
        """The supervisor takes over a publishing claim whose task still runs (lifecycle.watch)."""
        def change(table: Table, now: float):
            lifecycle.watch(self._own(table, job_id, claim_id), watcher, self.run_id)
            return True, None

        self._locked(change)

    def complete(self, job_id: str, claim_id: str, video_id: str = "") -> None:
        """Success. The ledger line is written first: if we die between the two writes the job
        ends as an unknown outcome in the progress file but the video is never posted again."""

        def change(table: Table, now: float):
            row = self._own(table, job_id, claim_id)
            link = video_id if video_id.startswith(("http://", "https://")) else ""
            entry = (now_iso(now), row[C.ACCOUNT], row[C.VIDEO_PATH], job_id)
            self._append_ledger([entry + (link,) if link else entry])
            lifecycle.complete(row, now, video_id)
            return True, None

        self._locked(change)

    def fail(self, job_id: str, claim_id: str, error: str | BaseException,
             classification: Classification | None = None) -> dict[str, str]:
        """Record a failed attempt. Retryable ones go to `retrying` with `retry_at` and the next
        pass number while attempts and passes remain; the rest end `failed`."""
        cls = classification or classify(error)
        message = str(error).strip().replace("\r", " ")[:500] or cls.error_type

        def change(table: Table, now: float):
            row = self._own(table, job_id, claim_id)
            lifecycle.fail(row, now, message, cls, self.retry, self.settings.max_attempts)
            return True, job_dict(row)

        return self._locked(change)  # type: ignore[return-value]

    def release(self, job_id: str, claim_id: str) -> None:
        """Give a claim back unfinished (stop-all). Before publishing the attempt did not happen,
        so it is not counted; in publishing the outcome is unknown."""

        def change(table: Table, now: float):
            row = self._own(table, job_id, claim_id)
            lifecycle.release(row, now, self.retry, self.settings.max_attempts)
            return True, None

        self._locked(change)

    # --- recovery --------------------------------------------------------------------------------
    def recover_stale(self, live_workers: Iterable[str], run_id: str | None = None,
                      counted: bool = True) -> list[dict]:
        """Recover the claims of workers that are not alive (and, with `run_id`, those of any
        other run). Before `publishing` the job is claimable again at once, the attempt counted;
        in `publishing` it fails as `outcome_unknown`: never retried automatically, and it uses a
        slot of the account's daily limit. `counted=False` (stop-all) gives the attempt back."""
        live = set(live_workers)

        def change(table: Table, now: float):
            recovered = []
            for row in table.rows:
                if not _stale(row, live, run_id):
                    continue
                if counted:
                    lifecycle.recover(row, now, f"worker {row[C.WORKER_ID]} was lost", self.retry,
                                      self.settings.max_attempts)
                else:
                    lifecycle.release(row, now, self.retry, self.settings.max_attempts)
                recovered.append(job_dict(row))
            return bool(recovered), recovered

        return self._locked(change)  # type: ignore[return-value]

    def stale_claims(self, live_workers: Iterable[str],
                     run_id: str | None = None) -> list[dict[str, str]]:
        live = set(live_workers)
        return [job_dict(r) for r in self.read().rows if _stale(r, live, run_id)]

    def lease(self, worker_id: str, pid: int, ttl_s: float, run_id: str = "") -> LocalLease:
        return LocalLease()

    def hold_run(self, pid: int, ttl_s: float, run_id: str) -> LocalLease:
        return LocalLease()      # the run lock is the folder's (engine/runstate.py)

    def leases(self) -> list[dict[str, object]]:
        return []

    def days(self) -> list[str]:
        prefix = f"{self.path.stem}_"
        return [p.stem[len(prefix):] for p in self.archives() if p.stem.startswith(prefix)]

    def export_day(self, day: str | None = None) -> bytes:
        """Today's file as it stands (checked first), or an archive's bytes as they are."""
        if day is None:
            table = self.read()
            return self._read_bytes() or serialize_table(table)
        if day not in self.days():
            raise InputError(self.path.with_name(f"{self.path.stem}_{day}.csv"), None,
                             f"there is no closed day {day!r}; the closed days are "
                             f"{', '.join(self.days()) or 'none yet'}")
        return read_input(self.path.with_name(f"{self.path.stem}_{day}.csv"),
                          "an archived day") or b""

    def retry_all_failed(self, include_non_retryable: bool = False) -> int:
        """Put failed jobs back as `retrying`, due at once, with fresh attempts. Account and
        content errors and unknown outcomes only with `include_non_retryable` (the operator has
        checked them). A video already in the ledger is never retried."""
        posted = self.posted()

        def change(table: Table, now: float):
            count = 0
            for row in table.rows:
                if row[C.STATUS] != C.FAILED:
                    continue
                if posted.holds(video_name(row[C.VIDEO_PATH]), row[C.JOB_ID]):
                    continue
                if lifecycle.needs_consent(row) and not include_non_retryable:
                    continue
                lifecycle.retry(row)
                count += 1
            return bool(count), count

        return self._locked(change)  # type: ignore[return-value]

    # --- the operator's actions on one job ------------------------------------------------------
    def retry_job(self, job_id: str, include_non_retryable: bool = False) -> dict[str, str]:
        """One failed job back in the queue as `retrying`, due now, with fresh attempts (what
        retry_all_failed does for each). Account and content errors and unknown outcomes only
        with `include_non_retryable`: an unknown outcome may already be public, so a retry may
        post it twice. A video already in the ledger is never retried. JobRefused otherwise."""
        posted = self.posted()

        def act(table: Table, row: list[str], now: float) -> bool:
            if row[C.STATUS] == C.FAILED:
                if posted.holds(video_name(row[C.VIDEO_PATH]), job_id):
                    raise JobRefused(job_id, JobRefused.POSTED,
                                     f"job {job_id}: its video is in the ledger "
                                     f"{self.ledger_path}: it was posted, so it is never retried")
                if lifecycle.needs_consent(row) and not include_non_retryable:
                    raise JobRefused(job_id, JobRefused.NEEDS_CONSENT, consent_wanted(row))
            lifecycle.retry(row)
            return True

        return self._act_on_job(job_id, "retry", act)

    def skip_job(self, job_id: str, reason: str) -> dict[str, str]:
        """Take one job out of the queue for good (`skipped`, the reason in `error`): a pending or
        retrying one, or a failed one that holds nothing back (lifecycle `withdraw`). A claimed
        job is refused, never forced: a worker holds it. JobRefused otherwise."""
        reason = " ".join(str(reason).split())[:500] or OPERATOR_SKIP

        def act(table: Table, row: list[str], now: float) -> bool:
            lifecycle.withdraw(row, now, reason)
            return True

        return self._act_on_job(job_id, "withdraw", act)

    def move_to_front(self, job_id: str) -> dict[str, str]:
        """A pending job first in the claim order: its row moves first in the file (the file's
        order is the FIFO order), every other row as it was. JobRefused unless pending."""
        def act(table: Table, row: list[str], now: float) -> bool:
            lifecycle.to_front(row)
            return _move_first(table, table.index[job_id])

        return self._act_on_job(job_id, "to_front", act)

    def _act_on_job(self, job_id: str, action: str,
                    act: Callable[[Table, list[str], float], bool]) -> dict[str, str]:
        """Run `act(table, row, now)` on job `job_id` under the lock (it returns whether it
        changed the file) and return the job as written. An unknown id, a claimed job and a
        transition the lifecycle table refuses are JobRefused, the file left as it was."""
        if self.job(job_id) is None:
            # Checked first without the lock, so a typo creates nothing (not even the lock file);
            # checked again under it.
            raise self._unknown_job(job_id)

        def change(table: Table, now: float):
            row = table.get(job_id)
            if row is None:
                raise self._unknown_job(job_id)
            if row[C.STATUS] == C.CLAIMED:
                raise JobRefused(job_id, JobRefused.CLAIMED,
                                 f"job {job_id} is claimed by worker {row[C.WORKER_ID] or '?'}: "
                                 "a worker holds it; stop the run or wait")
            try:
                changed = act(table, row, now)
            except lifecycle.IllegalTransition as exc:
                raise refusal(job_id, action, row, exc) from None
            return changed, job_dict(row)

        return self._locked(change)  # type: ignore[return-value]

    def _unknown_job(self, job_id: str) -> JobRefused:
        return JobRefused(job_id, JobRefused.UNKNOWN_JOB,
                          f"no job {job_id!r} in today's progress file {self.path}; a job id is "
                          "`<video file name>_<campaign>` (its job_id column)")

    # --- what an idle worker waits for ----------------------------------------------------------
    def next_chance(self, phone: str | None = None,
                    accounts: frozenset[str] | None = None) -> tuple[bool, float | None]:
        """For a worker that found nothing to claim: (others_running, earliest). `others_running`
        is whether any job is claimed (its end may free an account or a phone); `earliest` is the
        first moment the clock alone makes a job claimable (a retry_at, a cooldown end), or now
        when a job is due but its phone is held elsewhere. (False, None): nothing more can happen
        today for this worker. A job due only after today's midnight (a retry days out, a long
        cooldown) does not keep the run alive: the next day starts with --reset-day."""
        table = self.read()
        now = self.clock()
        day = Day.of(now, self.settings.tz)
        tallies = tally(table.rows, self.settings, day, self.host.usage(day))
        return earliest_chance(table.rows, tallies, now, day, self.settings, self.window,
                               self.gap_until, self._out_of_rotation(),
                               self.rotation.phones() if self.rotation is not None else frozenset(),
                               phone, accounts)

    # --- seeding ---------------------------------------------------------------------------------
    def seed(self, videos: list[Video], accounts: list[Account], campaign: str) -> list[dict]:
        """Add jobs for videos that have a caption and are in neither the file nor the ledger,
        one video per account per free slot, round-robin over accounts. Accounts with a pending,
        claimed or successful job today, or at their limit, get nothing; counts are kept in
        memory so one seeding pass cannot overfill an account."""
        posted = self.posted()

        def change(table: Table, now: float):
            day = Day.of(now, self.settings.tz)
            tallies = tally(table.rows, self.settings, day, self.host.usage(day))
            rows = plan_seed(table.rows, tallies, videos, accounts, campaign, posted,
                             self.settings)
            for row in rows:
                table.append(row)
            return bool(rows), [job_dict(r) for r in rows]

        return self._locked(change)  # type: ignore[return-value]

    def usage_elsewhere(self, day: Day) -> dict[str, Usage]:
        """What accounts used on `day` outside today's file: archives and other campaigns."""
        return self.host.usage(day)

    # --- the ledger ------------------------------------------------------------------------------
    def _append_ledger(self, entries: list[tuple[str, str, str, str]]) -> None:
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\n")
        end = _torn_or_empty(self.ledger_path)
        if end == "empty":
            writer.writerow(C.LEDGER_COLUMNS)
        elif end == "torn":
            # A write that was cut off left no line end: without one this entry would run into
            # the fragment and both would be one unreadable line.
            buf.write("\n")
        writer.writerows(entries)
        append_durable(self.ledger_path, buf.getvalue().encode("utf-8"))

    def read_ledger(self) -> Ledger:
        """The ledger, entries and damaged lines apart. A missing file is an empty ledger; a file
        that is not a ledger at all (a folder, not UTF-8, another header) is refused."""
        path = self.ledger_path
        raw = read_input(path, "the ledger (posted.csv)")
        if raw is None:
            return Ledger([], [])
        text = decode_utf8(path, raw, "restore it from a backup or save it as UTF-8 (postdeck "
                                      "will not guess which videos it names)")
        reader = csv.reader(io.StringIO(text, newline=""))
        entries, damaged = [], []
        try:
            header = next(reader, None)
            if header is not None and tuple(header) != C.LEDGER_COLUMNS:
                raise InputError(path, 1, "is not a postdeck ledger (expected the header "
                                          f"{','.join(C.LEDGER_COLUMNS)}); inspect it")
            line = reader.line_num + 1
            for row in reader:
                start, line = line, reader.line_num + 1
                if len(row) == len(C.LEDGER_COLUMNS):
                    entries.append(dict(zip(C.LEDGER_COLUMNS, row)))
                elif len(row) == len(C.LEDGER_COLUMNS) + 1:     # with the post's link
                    entries.append(dict(zip(C.LEDGER_COLUMNS + (C.LEDGER_LINK,), row)))
                elif any(cell.strip() for cell in row):
                    damaged.append(DamagedLine(start, row))
        except csv.Error:
            damaged.append(DamagedLine(line, text.splitlines()[line - 1:line] or [""]))
        return Ledger(entries, damaged)

    def ledger(self) -> list[dict[str, str]]:
        return self.read_ledger().entries

    def import_posts(self, entries: list[tuple[str, str, str, str]]) -> tuple[int, int]:
        """Add (posted_at, account, video_path, job_id) entries for videos the campaign's posts
        do not hold yet (matched by file name, as seeding matches), under the store's lock so no
        worker's success interleaves. (new, already known): a second import adds nothing."""
        return self._append_new(entries, lambda: self.posted().names)

    def _append_new(self, entries: list[tuple[str, str, str, str]],
                    known_names: Callable[[], set[str]]) -> tuple[int, int]:
        try:
            with self.lock:
                known = known_names()
                new = []
                for entry in entries:
                    name = video_name(entry[2])
                    if name not in known:
                        known.add(name)
                        new.append(entry)
                if new:
                    self._append_ledger(new)
                return len(new), len(entries) - len(new)
        except Timeout:
            raise InputError(self.path, None, "the progress file is locked by another process; "
                                              "try again when it is idle") from None

    def adopt_history(self) -> int:
        """The first time a campaign without a ledger is used: every success in its progress
        files (today's and every archive, the earlier system's included) becomes a ledger entry
        marked as imported, so the ledger alone guards them from then on. Once: a campaign with
        a ledger is left as it is."""
        if self.ledger_path.exists():
            return 0
        entries = history_entries([*self.archives(), self.path])
        if not entries:
            return 0
        # against the ledger alone: the archives are where these entries come from
        return self._append_new(entries, lambda: {video_name(e["video_path"])
                                                  for e in self.read_ledger().entries})[0]

    def posted(self) -> PostedVideos:
        """Every video this campaign ever posted or may have posted: the ledger (its damaged
        lines too), and the successes and unknown outcomes of every archived progress file.
        Matched by the video's file name (and by job id), never by folder or absolute path, so
        a renamed campaign folder or the earlier system's Windows paths still match."""
        return posted_in_archives(self.read_ledger().posted(), self.archives())

    def archives(self) -> list[Path]:
        """The campaign folder's other progress files: dated archives and whatever else the
        earlier system left (progress_backup_*.csv, progress_pre*.csv, ...)."""
        return folder_archives(self.path)

    # --- the day reset ---------------------------------------------------------------------------
    def reset_day(self, date: str, guard: Callable[[], None] | None = None) -> Path | None:
        """Archive the day as `<stem>_<date>.csv` (`_1`, `_2`, ... when taken) and start a fresh
        header-only file. `guard` runs under the lock and raises to refuse (workers alive).
        Works on a corrupt file too: it is archived byte-for-byte, never parsed or rewritten.
        A reset that fails (a full disk) leaves the folder exactly as it was."""
        try:
            with self.lock:
                if guard is not None:
                    guard()
                self._read_bytes()          # refuses a folder in the progress file's place
                archive, linked = None, False
                if self.path.exists():
                    archive = self._free_archive_name(date)
                    # A hard link keeps the old bytes under the archive name while the fresh file
                    # replaces the path, so there is no moment without a progress file.
                    try:
                        os.link(self.path, archive)
                        linked = True
                    except OSError:
                        os.rename(self.path, archive)
                try:
                    write_atomic(self.path, HEADER_ONLY)
                except OSError:
                    self._undo_archive(archive, linked)
                    raise
                self._cache = None
                return archive
        except Timeout:
            raise InputError(self.path, None, "the progress file is locked by another process; "
                                              "try again when it is idle") from None
        except OSError as exc:
            raise InputError(self.path, None, f"could not start a new day ({exc.strerror or exc});"
                                              " nothing was changed. Free some space or fix the "
                                              "folder, then reset the day again") from None

    def _undo_archive(self, archive: Path | None, linked: bool) -> None:
        """Take back the archive name of a reset that could not write the fresh file: our own
        second link to the day's bytes, or the renamed file itself, put back in its place."""
        if archive is None:
            return
        if linked:
            if os.path.samefile(archive, self.path):
                archive.unlink()
        else:
            os.rename(archive, self.path)

    def _free_archive_name(self, date: str) -> Path:
        return free_archive_name(self.path, date)

def plan_seed(rows: list[list[str]], tallies: dict[str, Tally], videos: list[Video],
              accounts: list[Account], campaign: str, posted: PostedVideos,
              settings: Settings) -> list[list[str]]:
    """JobStore.seed's new rows, for every store: videos in neither the day's rows nor the
    posted ones, one per account per free slot, round-robin over accounts. Accounts with a
    pending, claimed or successful job today, or at their limit, get nothing; counts are kept
    in memory so one pass cannot overfill an account."""
    limit = settings.daily_limit
    free: dict[str, int] = {}
    for acc in accounts:
        t = tallies.get(acc.name)
        if t is not None and (t.open_jobs or t.used >= limit):
            continue
        free[acc.name] = limit - (t.used if t else 0)
    in_file = {video_name(r[C.VIDEO_PATH]) for r in rows}
    ids = {r[C.JOB_ID] for r in rows}
    queue = [v for v in videos
             if v.filename not in in_file
             and job_id_of(v, campaign) not in ids
             and not posted.holds(v.filename, job_id_of(v, campaign))]
    added: list[list[str]] = []
    q = iter(queue)
    for round_ in range(limit):
        for acc in accounts:
            if free.get(acc.name, 0) <= round_:
                continue
            video = next(q, None)
            if video is None:
                return added
            row = [""] * C.WIDTH
            row[C.JOB_ID] = job_id_of(video, campaign)
            row[C.ACCOUNT] = acc.name
            row[C.VIDEO_PATH] = str(video.path)
            row[C.CAPTION] = video.caption
            row[C.STATUS] = C.PENDING
            row[C.ATTEMPTS] = "0"
            row[C.MAX_ATTEMPTS] = str(settings.max_attempts)
            row[C.PASS_NUMBER] = "1"
            row[C.PHONE_ID] = acc.phone
            added.append(row)
    return added


def folder_archives(path: Path) -> list[Path]:
    """The other progress files beside `path`: dated archives and whatever else the earlier
    system left (progress_backup_*.csv, progress_pre*.csv, ...)."""
    return sorted(p for p in path.parent.glob(f"{path.stem}*.csv") if p.name != path.name)


def free_archive_name(path: Path, date: str, taken: Callable[[Path], bool] = Path.exists) -> Path:
    """`<stem>_<date>.csv`, or `_1`, `_2`, ... when that is taken: an archive never replaces a
    file."""
    candidate = path.with_name(f"{path.stem}_{date}.csv")
    n = 0
    while taken(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}_{date}_{n}.csv")
    return candidate


def posted_in_archives(posted: PostedVideos, archives: Iterable[Path]) -> PostedVideos:
    """Add every video the archives show as posted or maybe posted: successes, unknown outcomes
    and claims that were publishing when the day was closed."""
    for archive in archives:
        for row in archive_rows(archive):
            if (row[C.STATUS] == C.SUCCESS or row[C.ERROR_TYPE] == OUTCOME_UNKNOWN
                    or (row[C.STATUS] == C.CLAIMED and row[C.PHASE] == "publishing")):
                posted.add(row[C.VIDEO_PATH], row[C.JOB_ID])
    return posted


def history_entries(paths: Iterable[Path]) -> list[tuple[str, str, str, str]]:
    """Ledger entries (marked as imported) for the successes of these progress files."""
    entries = []
    for path in paths:
        for row in archive_rows(path):
            if row[C.STATUS] == C.SUCCESS:
                entries.append((f"{IMPORTED}{row[C.COMPLETED_AT]}", row[C.ACCOUNT],
                                row[C.VIDEO_PATH], row[C.JOB_ID]))
    return entries


def earliest_chance(rows: list[list[str]], tallies: dict[str, Tally], now: float, day: Day,
                    settings: Settings, window: PostingWindow | None,
                    gap_until: Callable[[str], float | None], off: frozenset[str],
                    off_phones: frozenset[str], phone: str | None = None,
                    accounts: frozenset[str] | None = None) -> tuple[bool, float | None]:
    """JobStore.next_chance over one day's rows and their tallies, for every store: (any job
    claimed, the earliest moment the clock alone makes a job claimable today)."""
    limit = settings.daily_limit
    others = any(r[C.STATUS] == C.CLAIMED for r in rows)
    opens = (window.opens_at(now, settings.tz) if window is not None else None) or now
    if opens >= day.end:
        return others, None     # the window opens tomorrow: nothing more today
    earliest: float | None = None
    gaps: dict[str, float | None] = {}
    for row in rows:
        status = row[C.STATUS]
        if status not in (C.PENDING, C.RETRYING):
            continue
        if phone is not None and (row[C.PHONE_ID] or row[C.ACCOUNT]) != phone:
            continue
        if accounts is not None and row[C.ACCOUNT] not in accounts:
            continue
        if row[C.ACCOUNT] in off or (row[C.PHONE_ID] or row[C.ACCOUNT]) in off_phones:
            continue    # out of rotation: only the operator brings it back
        t = tallies[row[C.ACCOUNT]]
        if t.blocked_by or t.used - t.running >= limit:
            continue  # not today, whatever happens
        job_phone = row[C.PHONE_ID] or row[C.ACCOUNT]
        if job_phone not in gaps:
            gaps[job_phone] = gap_until(job_phone)
        at = max(parse_time(row[C.RETRY_AT]) or now if status == C.RETRYING else now,
                 t.cooldown_until, opens, gaps[job_phone] or now)
        if at >= day.end:
            continue
        earliest = at if earliest is None else min(earliest, at)
    return others, earliest


def host_parts(ctx, kwargs: dict) -> dict:
    """A store's host-side parts for a context, for either store (the caller's own win): the
    host's other progress files (engine/limits.py), its phones' power records and the accounts
    and phones out of rotation."""
    kwargs = dict(kwargs)
    kwargs.setdefault("host", HostDay(ctx.progress_file, ctx.host_state_dir, ctx.campaigns_dir))
    kwargs.setdefault("power", PhonePower(ctx.power_dir, ctx.settings.tz,
                                          kwargs.get("clock", time.time)))
    kwargs.setdefault("rotation", Rotation(rotation_path(ctx)))
    return kwargs


def _stale(row: list[str], live: set[str], run_id: str | None) -> bool:
    """A claim no live worker of this run holds."""
    return row[C.STATUS] == C.CLAIMED and not (
        row[C.WORKER_ID] in live and (run_id is None or row[C.RUN_ID] == run_id))


def _move_first(table: Table, i: int) -> bool:
    """Row i first in the table, every other row in its order; False when it is first already.
    Each row keeps its bytes, so the write re-serializes nothing."""
    if i == 0:
        return False
    for column in (table.rows, table.raw, table.orig):
        column.insert(0, column.pop(i))
    table.index = {r[C.JOB_ID]: n for n, r in enumerate(table.rows)}
    return True


def consent_wanted(row: list[str]) -> str:
    """Why a retry of this failed job waits for the operator's explicit word."""
    job_id, error_type = row[C.JOB_ID], row[C.ERROR_TYPE] or "unknown"
    if error_type == OUTCOME_UNKNOWN:
        return (f"job {job_id} has an unknown outcome: the post may already be public, so a "
                "retry may post it twice; check the account first, and retry it, including "
                "non-retryable failures, only if the video is not there")
    return (f"job {job_id} failed with an error a retry repeats until it is fixed "
            f"({row[C.ERROR_CATEGORY] or 'non-retryable'}: {error_type}); fix it first, then "
            "retry it including non-retryable failures")


def refusal(job_id: str, action: str, row: list[str], exc: Exception) -> JobRefused:
    """A transition the lifecycle table refused, worded for the operator by the job's status."""
    status, verb = row[C.STATUS], ACTION_WORDS[action]
    if status == C.SUCCESS:
        return JobRefused(job_id, JobRefused.POSTED, f"job {job_id} was posted "
                          f"({row[C.COMPLETED_AT] or 'today'}); there is nothing to {verb}")
    if status == C.SKIPPED:
        return JobRefused(job_id, JobRefused.STATUS, f"job {job_id} was skipped "
                          f"({row[C.ERROR] or 'no reason given'}); it is out of the queue for "
                          f"good, so there is nothing to {verb}")
    if action == "retry":
        return JobRefused(job_id, JobRefused.STATUS, f"job {job_id} is {status}: it is in the "
                          "queue already; only a failed job can be retried")
    if action == "to_front":
        return JobRefused(job_id, JobRefused.STATUS, f"job {job_id} is {status}; only a pending "
                          "job can be moved to the front"
                          + ("; retry it first" if status == C.FAILED else ""))
    # withdraw: a failed job that holds its account back (the lifecycle says how)
    return JobRefused(job_id, JobRefused.STATUS, f"{exc}; it is out of the queue already, so "
                      "there is nothing to skip")


def job_id_for(filename: str, campaign: str) -> str:
    return f"{filename}_{campaign}"


def job_id_of(video: Video, campaign: str) -> str:
    """The earlier system's job id when its scheduler state gave one, else postdeck's."""
    return video.job_id or job_id_for(video.filename, campaign)


def _torn_or_empty(path: Path) -> str:
    """'empty' (missing or zero bytes: write the header), 'torn' (the last write was cut off
    before its line end) or 'whole'."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return "empty"
            fh.seek(-1, os.SEEK_END)
            return "whole" if fh.read(1) == b"\n" else "torn"
    except FileNotFoundError:
        return "empty"


def archive_rows(path: Path) -> list[list[str]]:
    """An archive's rows, read leniently: a damaged archive still keeps every video it names
    as posted out of seeding, and never stops today's work."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    try:
        return parse_progress(path, data).rows
    except CorruptProgressFile:
        return lenient_rows(data)
