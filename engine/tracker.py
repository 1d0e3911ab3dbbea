"""The progress store: one CSV file per campaign day, changed only under a file lock.

Every change is a read-modify-write under an exclusive `filelock.FileLock` on `<file>.lock`, written
atomically (engine/durable.py). Readers that only look (the console, --status) read without the
lock. The file is never deleted or truncated; a file that does not parse is refused with the
file and line, byte-for-byte untouched.

A claim is a lease: it writes a fresh `claim_id`, and every later write for that job must present
it, so a worker whose claim was recovered cannot overwrite the job's newer state.
"""
from __future__ import annotations

import csv
import io
import os
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from itertools import compress
from operator import ne
from pathlib import Path
from typing import Callable, Iterable, Iterator

from filelock import FileLock, Timeout

from . import columns as C
from .campaigns import Account, Video
from .durable import append_durable, write_atomic
from .errors import (INFRASTRUCTURE, OUTCOME_UNKNOWN, UNKNOWN, Classification,
                     attempts_allowed, classify)
from .problems import InputError
from .rules import Tally, account_blocker, as_int, due, now_iso, parse_time, tally
from .settings import Settings

LOCK_TIMEOUT_S = 120.0
# filelock's default 50 ms poll throttles contended claims to ~20 a second per waiter.
LOCK_POLL_S = 0.002


class CorruptProgressFile(InputError):
    def __init__(self, path: Path, line: int | None, problem: str):
        super().__init__(path, line, f"{problem}. The file is left as it is: inspect it, or run "
                                     "--reset-day to archive it and start a new day")


class ClaimLost(Exception):
    """A write presented a claim_id that is no longer the job's claim."""


@dataclass(frozen=True)
class RetryPolicy:
    """Run-level retry settings (the CLI's --retry-delay and --max-passes)."""
    retry_delay_s: float = 60.0
    max_passes: int = 3


class Table:
    """The parsed file: rows as lists of 20 strings, in file order.

    `raw[i]` is row i's bytes as they stand in the file (None when not known) and `orig[i]` a
    copy of the row's values when those bytes were taken. Writing re-serializes only the rows
    that no longer equal their `orig` (the ones a change touched), and a re-read after another
    process's write re-parses only the rows that differ (`reparse`): both cost a join or a
    comparison per row instead of the csv module's work on the whole file."""

    def __init__(self, rows: list[list[str]], raw: list[bytes | None] | None = None,
                 orig: list[list[str] | None] | None = None):
        self.rows = rows
        self.raw: list[bytes | None] = raw if raw is not None else [None] * len(rows)
        self.orig: list[list[str] | None] = orig if orig is not None else [
            None if t is None else r[:] for r, t in zip(rows, self.raw)]
        self.index = {row[C.JOB_ID]: i for i, row in enumerate(rows)}

    def get(self, job_id: str) -> list[str] | None:
        i = self.index.get(job_id)
        return None if i is None else self.rows[i]

    def append(self, row: list[str]) -> None:
        self.index[row[C.JOB_ID]] = len(self.rows)
        self.rows.append(row)
        self.raw.append(None)
        self.orig.append(None)


def job_dict(row: list[str]) -> dict[str, str]:
    return dict(zip(C.COLUMNS, row))


HEADER_BYTES = (",".join(C.COLUMNS) + "\n").encode()
_STATUSES = frozenset(C.STATUSES)


def _lines(text):
    """`text` (str or bytes) cut after each newline, as io.StringIO(text, newline="") iterates
    it when the text holds no carriage return. A str and its UTF-8 bytes cut alike."""
    nl = "\n" if isinstance(text, str) else b"\n"
    parts = text.split(nl)
    lines = [p + nl for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _raw(lines: list[bytes], start: int, after: int) -> bytes:
    """The bytes of the row on lines start..after-1 (1-based, as csv's line_num counts)."""
    return lines[start - 1] if after == start + 1 else b"".join(lines[start - 1:after - 1])


def parse_progress(path: Path, data: bytes) -> Table:
    """Validate and parse a progress file's bytes. Header-only is a valid, empty day."""
    if not data:
        raise CorruptProgressFile(path, 1, "is empty (zero bytes), not even a header")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptProgressFile(path, data[: exc.start].count(b"\n") + 1,
                                  "is not UTF-8 text") from None
    # Without "\r" the file's lines are exactly its "\n"-cut pieces, so each row's bytes can be
    # kept (Table.raw); with "\r" (the earlier system wrote CRLF) the file is read as before.
    lines = _lines(text) if "\r" not in text else None
    reader = csv.reader(lines if lines is not None else io.StringIO(text, newline=""),
                        strict=True)
    rows: list[list[str]] = []
    raws: list[bytes | None] = []
    seen: dict[str, int] = {}
    try:
        header = tuple(next(reader))
        if header not in C.ACCEPTED_HEADERS:
            raise CorruptProgressFile(path, 1, "has a header that is not a progress file's "
                                               f"(expected: {','.join(C.COLUMNS)})")
        width = len(header)
        pad = [""] * (C.WIDTH - width)
        blines = _lines(data) if lines is not None and not pad else None
        statuses = _STATUSES
        line = reader.line_num + 1
        for row in reader:
            start, line = line, reader.line_num + 1
            if len(row) != width:
                raise CorruptProgressFile(path, start, f"has a row with {len(row)} fields where "
                                                       f"the header has {width}")
            if row[C.STATUS] not in statuses:
                raise CorruptProgressFile(path, start, f"has an unknown status '{row[C.STATUS]}'")
            job_id = row[C.JOB_ID]
            if job_id in seen:
                raise CorruptProgressFile(path, start, f"has job '{job_id}' twice (first on line "
                                                       f"{seen[job_id]})")
            seen[job_id] = start
            rows.append(row + pad if pad else row)
            if blines is not None:
                raw = _raw(blines, start, line)
                raws.append(raw if raw.endswith(b"\n") else None)
    except StopIteration:
        raise CorruptProgressFile(path, 1, "has no header line") from None
    except csv.Error as exc:
        raise CorruptProgressFile(path, reader.line_num, f"is not valid CSV ({exc}); the last "
                                                         "write may have been cut off") from None
    return Table(rows, raws if blines is not None else None)


def reparse(old: Table, data: bytes) -> Table | None:
    """Parse `data` reusing the rows of `old` (a parse of an earlier version of the file) that
    it still holds byte-for-byte at its start and at its end; only the rows between are parsed.
    None when that is not possible or anything looks wrong: the caller then parses the whole
    file with parse_progress, which reports any problem with its line.

    Sound because CSV parsing is deterministic from the start of a record: the common prefix
    ends on a row boundary of `old`, so it parses to the same rows; the middle must parse
    into whole, valid rows ending on a line end, so the common suffix again starts a record.
    The bytes kept in common were valid UTF-8 in `old`; the middle is decoded here."""
    raws = old.raw
    if not raws or raws[0] is None or b"\r" in data or not data.startswith(HEADER_BYTES):
        return None
    pos, n, i = len(HEADER_BYTES), len(raws), 0
    while i < n:
        raw = raws[i]
        if raw is None or not data.startswith(raw, pos):
            break
        pos += len(raw)
        i += 1
    end, k = len(data), n
    while k > i:
        raw = raws[k - 1]
        if raw is None or end - len(raw) < pos or not data.endswith(raw, pos, end):
            break
        end -= len(raw)
        k -= 1
    middle = data[pos:end]
    if middle and not middle.endswith(b"\n"):
        return None
    try:
        text = middle.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines, blines = _lines(text), _lines(middle)
    reader = csv.reader(lines, strict=True)
    rows, new_raw = [], []
    line = 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if len(row) != C.WIDTH or row[C.STATUS] not in _STATUSES:
                return None
            rows.append(row)
            new_raw.append(_raw(blines, start, line))
    except csv.Error:
        return None
    table = Table(old.rows[:i] + rows + old.rows[k:], raws[:i] + new_raw + raws[k:],
                  old.orig[:i] + [r[:] for r in rows] + old.orig[k:])
    if len(table.index) != len(table.rows):
        return None  # a duplicate job_id: the full parse names its lines
    return table


def serialize(rows: Iterable[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(C.COLUMNS)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def serialize_table(table: Table) -> bytes:
    """The same bytes as serialize(table.rows) for every row written by postdeck; a row nobody
    changed keeps its bytes as they were read."""
    rows, raws, origs = table.rows, table.raw, table.orig
    # A row whose orig is None has no raw either; `row != None` marks it changed too.
    changed = list(compress(range(len(rows)), map(ne, rows, origs)))
    if changed:
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\n")
        for i in changed:
            buf.seek(0)
            buf.truncate()
            writer.writerow(rows[i])
            raws[i] = buf.getvalue().encode("utf-8")
            origs[i] = rows[i][:]
    return HEADER_BYTES + b"".join(raws)  # type: ignore[arg-type]


HEADER_ONLY = serialize([])
assert HEADER_ONLY == HEADER_BYTES


class ProgressStore:
    """The campaign's progress file and its ledger. Create one per process: the lock object is
    made lazily, inside the process that uses it (never inherited across spawn)."""

    def __init__(self, path: Path, ledger_path: Path, settings: Settings,
                 retry: RetryPolicy | None = None, clock: Callable[[], float] = time.time,
                 run_id: str = ""):
        self.path = Path(path)
        self.ledger_path = Path(ledger_path)
        self.settings = settings
        self.retry = retry or RetryPolicy()
        self.clock = clock
        self.run_id = run_id
        self._lock: FileLock | None = None
        self._cache: tuple[bytes, Table] | None = None

    @classmethod
    def for_context(cls, ctx, **kwargs) -> "ProgressStore":
        return cls(ctx.progress_file, ctx.ledger_file, ctx.settings, **kwargs)

    # --- reading ---------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.exists()

    def read(self) -> Table:
        """A consistent snapshot without the lock (the file is always replaced whole). A missing
        file is an empty day."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return Table([])
        return self._parse(data)

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
                try:
                    data = self.path.read_bytes()
                except FileNotFoundError:
                    data = None
                if data is None:
                    table = Table([])
                else:
                    table = self._parse(data)
                    # The change mutates the cached table; forget it until the write is done.
                    self._cache = None
                changed, result = change(table, self.clock())
                if changed:
                    new = serialize_table(table)
                    write_atomic(self.path, new)
                    self._cache = (new, table)
                elif data is not None:
                    self._cache = (data, table)
                return result
        except Timeout:
            raise InputError(self.path, None, f"the lock {self.path}.lock has been held for over "
                                              f"{LOCK_TIMEOUT_S:.0f}s; is a process stuck? "
                                              "See --status") from None

    # --- claims ----------------------------------------------------------------------------------
    def claim(self, worker_id: str, phone: str | None = None,
              phone_free: Callable[[str], bool] | None = None) -> dict[str, str] | None:
        """Claim the oldest eligible job (pending before retrying, file order within each) for
        `worker_id`, or None. `phone` binds the worker to one phone; `phone_free(p)` is asked
        last, for the chosen job only, whether no other worker on the host holds phone p."""

        def change(table: Table, now: float):
            limit = self.settings.daily_limit
            # An account's tally depends on its own rows only, so it is made for the accounts
            # of the candidates looked at, not for every account of the file.
            by_account: defaultdict[str, list[list[str]]] = defaultdict(list)
            for r in table.rows:
                by_account[r[C.ACCOUNT]].append(r)
            held = {r[C.PHONE_ID] or r[C.ACCOUNT]: r[C.WORKER_ID] for r in table.rows
                    if r[C.STATUS] == C.CLAIMED}
            tallies: dict[str, Tally | None] = {}
            for row in self._candidates(table, now):
                account = row[C.ACCOUNT]
                if account not in tallies:
                    tallies[account] = tally(by_account[account], self.settings).get(account)
                if account_blocker(tallies[account], limit, now):
                    continue
                job_phone = row[C.PHONE_ID] or account
                if phone is not None and job_phone != phone:
                    continue
                holder = held.get(job_phone)
                if holder is not None and holder != worker_id:
                    continue
                if phone_free is not None and not phone_free(job_phone):
                    continue
                row[C.STATUS] = C.CLAIMED
                row[C.WORKER_ID] = worker_id
                row[C.CLAIMED_AT] = now_iso(now)
                row[C.CLAIM_ID] = uuid.uuid4().hex
                row[C.PHASE] = "claimed"
                row[C.ATTEMPTS] = str(as_int(row[C.ATTEMPTS]) + 1)
                row[C.MAX_ATTEMPTS] = row[C.MAX_ATTEMPTS] or str(self.settings.max_attempts)
                row[C.PASS_NUMBER] = row[C.PASS_NUMBER] or "1"
                row[C.PHONE_ID] = job_phone
                row[C.RUN_ID] = self.run_id or row[C.RUN_ID]
                row[C.COMPLETED_AT] = ""
                return True, job_dict(row)
            return False, None

        return self._locked(change)  # type: ignore[return-value]

    @staticmethod
    def _candidates(table: Table, now: float) -> Iterator[list[str]]:
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
            row = self._own(table, job_id, claim_id)
            if C.PHASES.index(phase) < C.PHASES.index(row[C.PHASE] or "claimed"):
                raise ValueError(f"job {job_id} cannot go back from {row[C.PHASE]} to {phase}")
            row[C.PHASE] = phase
            return True, None

        self._locked(change)

    def complete(self, job_id: str, claim_id: str, video_id: str = "") -> None:
        """Success. The ledger line is written first: if we die between the two writes the job
        ends as an unknown outcome in the progress file but the video is never posted again."""

        def change(table: Table, now: float):
            row = self._own(table, job_id, claim_id)
            stamp = now_iso(now)
            self._append_ledger([(stamp, row[C.ACCOUNT], row[C.VIDEO_PATH], job_id)])
            row[C.STATUS] = C.SUCCESS
            row[C.COMPLETED_AT] = stamp
            row[C.VIDEO_ID] = video_id or ""
            row[C.ERROR] = row[C.ERROR_TYPE] = row[C.ERROR_CATEGORY] = ""
            row[C.PHASE] = ""
            row[C.RETRY_AT] = ""
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
            self._record_failure(row, now, message, cls)
            return True, job_dict(row)

        return self._locked(change)  # type: ignore[return-value]

    def _record_failure(self, row: list[str], now: float, message: str,
                        cls: Classification) -> None:
        attempts = as_int(row[C.ATTEMPTS], 1)
        max_attempts = as_int(row[C.MAX_ATTEMPTS], self.settings.max_attempts)
        pass_number = as_int(row[C.PASS_NUMBER], 1)
        retry = (cls.retryable and attempts < attempts_allowed(cls.category, max_attempts)
                 and pass_number < self.retry.max_passes)
        row[C.ERROR] = message
        row[C.ERROR_TYPE] = cls.error_type
        row[C.ERROR_CATEGORY] = cls.category
        row[C.COMPLETED_AT] = now_iso(now)
        row[C.PHASE] = ""
        if retry:
            row[C.STATUS] = C.RETRYING
            row[C.RETRY_AT] = now_iso(now + self.retry.retry_delay_s)
            row[C.PASS_NUMBER] = str(pass_number + 1)
        else:
            row[C.STATUS] = C.FAILED
            row[C.RETRY_AT] = ""

    def release(self, job_id: str, claim_id: str) -> None:
        """Give a claim back unfinished (stop-all). Before publishing the attempt did not happen,
        so it is not counted; in publishing the outcome is unknown."""

        def change(table: Table, now: float):
            row = self._own(table, job_id, claim_id)
            self._recover_row(row, now, counted=False, why="stopped by the operator")
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
                if row[C.STATUS] != C.CLAIMED:
                    continue
                if row[C.WORKER_ID] in live and (run_id is None or row[C.RUN_ID] == run_id):
                    continue
                why = (f"worker {row[C.WORKER_ID]} was lost" if counted
                       else "stopped by the operator")
                self._recover_row(row, now, counted=counted, why=why)
                recovered.append(job_dict(row))
            return bool(recovered), recovered

        return self._locked(change)  # type: ignore[return-value]

    def _recover_row(self, row: list[str], now: float, counted: bool, why: str) -> None:
        phase = row[C.PHASE] or "claimed"
        if phase == "publishing":
            self._record_failure(row, now, f"{why} while publishing: the post may or may not be "
                                           "public; check the account, then retry it by hand",
                                 Classification(UNKNOWN, OUTCOME_UNKNOWN))
            return
        if not counted:
            attempts = as_int(row[C.ATTEMPTS]) - 1
            row[C.ATTEMPTS] = str(max(0, attempts))
            row[C.STATUS] = C.RETRYING if (attempts > 0 or row[C.ERROR]) else C.PENDING
            row[C.PHASE] = row[C.RETRY_AT] = ""
            return
        attempts = as_int(row[C.ATTEMPTS], 1)
        max_attempts = as_int(row[C.MAX_ATTEMPTS], self.settings.max_attempts)
        row[C.ERROR] = f"{why} in phase {phase}"
        row[C.ERROR_TYPE] = "worker_lost"
        row[C.ERROR_CATEGORY] = INFRASTRUCTURE
        row[C.COMPLETED_AT] = now_iso(now)
        row[C.PHASE] = ""
        row[C.RETRY_AT] = ""
        row[C.STATUS] = C.RETRYING if attempts < max_attempts else C.FAILED

    def retry_all_failed(self, include_non_retryable: bool = False) -> int:
        """Put failed jobs back as `retrying`, due at once, with fresh attempts. Account and
        content errors and unknown outcomes only with `include_non_retryable` (the operator has
        checked them). A video already in the ledger is never retried."""
        posted = self.ledger_keys()

        def change(table: Table, now: float):
            count = 0
            for row in table.rows:
                if row[C.STATUS] != C.FAILED:
                    continue
                if row[C.JOB_ID] in posted or row[C.VIDEO_PATH] in posted:
                    continue
                cls = Classification(row[C.ERROR_CATEGORY] or UNKNOWN,
                                     row[C.ERROR_TYPE] or "unknown")
                if not (cls.retryable or include_non_retryable):
                    continue
                row[C.STATUS] = C.RETRYING
                row[C.RETRY_AT] = ""
                row[C.ATTEMPTS] = "0"
                # Fresh passes too: a job that failed in the last pass would otherwise get one
                # attempt instead of its max_attempts.
                row[C.PASS_NUMBER] = "1"
                count += 1
            return bool(count), count

        return self._locked(change)  # type: ignore[return-value]

    # --- what an idle worker waits for ----------------------------------------------------------
    def next_chance(self, phone: str | None = None) -> tuple[bool, float | None]:
        """For a worker that found nothing to claim: (others_running, earliest). `others_running`
        is whether any job is claimed (its end may free an account or a phone); `earliest` is the
        first moment the clock alone makes a job claimable (a retry_at, a cooldown end), or now
        when a job is due but its phone is held elsewhere. (False, None): nothing more can happen
        today for this worker."""
        table = self.read()
        now = self.clock()
        limit = self.settings.daily_limit
        tallies = tally(table.rows, self.settings)
        others = any(r[C.STATUS] == C.CLAIMED for r in table.rows)
        earliest: float | None = None
        for row in table.rows:
            status = row[C.STATUS]
            if status not in (C.PENDING, C.RETRYING):
                continue
            if phone is not None and (row[C.PHONE_ID] or row[C.ACCOUNT]) != phone:
                continue
            t = tallies[row[C.ACCOUNT]]
            if t.blocked_by or t.used - t.running >= limit:
                continue  # not today, whatever happens
            at = max(parse_time(row[C.RETRY_AT]) or now if status == C.RETRYING else now,
                     t.cooldown_until)
            earliest = at if earliest is None else min(earliest, at)
        return others, earliest

    # --- seeding ---------------------------------------------------------------------------------
    def seed(self, videos: list[Video], accounts: list[Account], campaign: str) -> list[dict]:
        """Add jobs for videos that have a caption and are in neither the file nor the ledger,
        one video per account per free slot, round-robin over accounts. Accounts with a pending,
        claimed or successful job today, or at their limit, get nothing; counts are kept in
        memory so one seeding pass cannot overfill an account."""
        posted = self.ledger_keys() | self.unknown_outcomes_in_archives()

        def change(table: Table, now: float):
            limit = self.settings.daily_limit
            tallies = tally(table.rows, self.settings)
            free: dict[str, int] = {}
            for acc in accounts:
                t = tallies.get(acc.name)
                if t is not None and (t.open_jobs or t.used >= limit):
                    continue
                free[acc.name] = limit - (t.used if t else 0)
            queue = [v for v in videos
                     if job_id_for(v.filename, campaign) not in table.index
                     and job_id_for(v.filename, campaign) not in posted
                     and str(v.path) not in posted]
            added = []
            q = iter(queue)
            for round_ in range(limit):
                for acc in accounts:
                    if free.get(acc.name, 0) <= round_:
                        continue
                    video = next(q, None)
                    if video is None:
                        return bool(added), added
                    row = [""] * C.WIDTH
                    row[C.JOB_ID] = job_id_for(video.filename, campaign)
                    row[C.ACCOUNT] = acc.name
                    row[C.VIDEO_PATH] = str(video.path)
                    row[C.CAPTION] = video.caption
                    row[C.STATUS] = C.PENDING
                    row[C.ATTEMPTS] = "0"
                    row[C.MAX_ATTEMPTS] = str(self.settings.max_attempts)
                    row[C.PASS_NUMBER] = "1"
                    row[C.PHONE_ID] = acc.phone
                    table.append(row)
                    added.append(job_dict(row))
            return bool(added), added

        return self._locked(change)  # type: ignore[return-value]

    # --- the ledger ------------------------------------------------------------------------------
    def _append_ledger(self, entries: list[tuple[str, str, str, str]]) -> None:
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\n")
        if not self.ledger_path.exists() or self.ledger_path.stat().st_size == 0:
            writer.writerow(C.LEDGER_COLUMNS)
        writer.writerows(entries)
        append_durable(self.ledger_path, buf.getvalue().encode("utf-8"))

    def ledger(self) -> list[dict[str, str]]:
        if not self.ledger_path.exists():
            return []
        text = self.ledger_path.read_text(encoding="utf-8-sig")
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is not None and tuple(header) != C.LEDGER_COLUMNS:
            raise InputError(self.ledger_path, 1, "is not a postdeck ledger (expected the header "
                                                  f"{','.join(C.LEDGER_COLUMNS)}); inspect it")
        return [dict(zip(C.LEDGER_COLUMNS, r)) for r in reader if len(r) == len(C.LEDGER_COLUMNS)]

    def ledger_keys(self) -> set[str]:
        """Job ids and video paths that were ever posted in this campaign."""
        keys: set[str] = set()
        for entry in self.ledger():
            keys.add(entry["job_id"])
            keys.add(entry["video_path"])
        return keys

    def archives(self) -> list[Path]:
        stem = self.path.stem
        return sorted(p for p in self.path.parent.glob(f"{stem}_*.csv") if p != self.path)

    def unknown_outcomes_in_archives(self) -> set[str]:
        """Videos whose post ended with an unknown outcome on an earlier day: they may be public,
        so seeding must not offer them again (the operator retries them by hand)."""
        keys: set[str] = set()
        for archive in self.archives():
            try:
                with open(archive, newline="", encoding="utf-8") as fh:
                    for row in csv.reader(fh):
                        if len(row) > C.ERROR_TYPE and row[C.ERROR_TYPE] == OUTCOME_UNKNOWN:
                            keys.add(row[C.JOB_ID])
                            keys.add(row[C.VIDEO_PATH])
            except (OSError, UnicodeDecodeError, csv.Error):
                continue  # an unreadable archive cannot add keys; the ledger still guards
        return keys

    # --- the day reset ---------------------------------------------------------------------------
    def reset_day(self, date: str, guard: Callable[[], None] | None = None) -> Path | None:
        """Archive the day as `<stem>_<date>.csv` (`_1`, `_2`, ... when taken) and start a fresh
        header-only file. `guard` runs under the lock and raises to refuse (workers alive).
        Works on a corrupt file too: it is archived byte-for-byte, never parsed or rewritten."""
        try:
            with self.lock:
                if guard is not None:
                    guard()
                archive = None
                if self.path.exists():
                    archive = self._free_archive_name(date)
                    # A hard link keeps the old bytes under the archive name while the fresh file
                    # replaces the path, so there is no moment without a progress file.
                    try:
                        os.link(self.path, archive)
                    except OSError:
                        os.rename(self.path, archive)
                write_atomic(self.path, HEADER_ONLY)
                self._cache = None
                return archive
        except Timeout:
            raise InputError(self.path, None, "the progress file is locked by another process; "
                                              "try again when it is idle") from None

    def _free_archive_name(self, date: str) -> Path:
        stem = self.path.stem
        candidate = self.path.with_name(f"{stem}_{date}.csv")
        n = 0
        while candidate.exists():
            n += 1
            candidate = self.path.with_name(f"{stem}_{date}_{n}.csv")
        return candidate


def job_id_for(filename: str, campaign: str) -> str:
    return f"{filename}_{campaign}"
