"""History across days: posts, failures and unknown outcomes per calendar day, error types and
per-account totals over the last N days, from every progress file of the campaign folder.

A day reset archives the day's file (`progress_YYYYMMDD.csv`, `_1`, `_2` ... when taken) and starts
a fresh one, so the campaign's past lives in its archives: this module reads them all (as the
store lists them, engine/tracker.py) with today's file. What is counted:

- a `success` row counts as a success, a `failed` row as a failure, except that a failure with
  error type `outcome_unknown` (the post may be public) counts as unknown; other statuses are not
  outcomes yet and are not counted;
- a row falls on the day of its `completed_at` in the campaign's time zone (naive times, the
  earlier system's, are read in that zone); a row without a readable time falls on its file's
  day: today for the current file, the date in an archive's name, else the day the file last
  changed (as engine/limits.py dates them).

A damaged file never stops the history: the rows that can still be read are counted (every row
with a status, as limits.lenient_rows counts them for the daily limit) and the file is named in
`warnings`, with the first problem as the codec (engine/progress_csv.py) words it.

Every file is counted as it is: a copy the earlier system left (`progress_backup_*.csv`) counts
again, as it does for the daily limit.

Reading 30 archives of 5,000 rows takes about half a second; the console asks again every time
the screen opens, so each file's tallies are kept by (path, mtime_ns, size, inode) in a
`HistoryReader` and only a file that changed (in practice today's) is read again.
"""
from __future__ import annotations

import csv
import io
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from pathlib import Path

from . import columns as C
from .context import PostingContext
from .errors import OUTCOME_UNKNOWN, UNKNOWN
from .limits import _DATE_IN_NAME
from .progress_csv import CorruptProgressFile, parse_progress
from .rules import Day, now_iso, parse_time
from .tracker import ProgressStore

DEFAULT_DAYS = 30
SUCCESS, FAILED, UNKNOWN_OUTCOME = 0, 1, 2     # indexes into a DayTally's counts
_STATUSES = frozenset(C.STATUSES)


@dataclass
class DayTally:
    """One day's outcomes in one file: [success, failed, unknown], failures (unknown outcomes
    included) by error type, and each account's [success, failed] (unknown counted as failed:
    for the account it is a post that did not surely go out)."""
    counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    errors: dict[str, int] = field(default_factory=dict)
    accounts: dict[str, list[int]] = field(default_factory=dict)

    def add(self, kind: int, account: str, error_type: str) -> None:
        self.counts[kind] += 1
        acc = self.accounts.get(account)
        if acc is None:
            acc = self.accounts[account] = [0, 0]
        if kind == SUCCESS:
            acc[0] += 1
            return
        acc[1] += 1
        # an untyped failure (a 9-column file of the earlier system) is what classify() calls it
        key = error_type or UNKNOWN
        self.errors[key] = self.errors.get(key, 0) + 1


@dataclass
class FileTally:
    """What one progress file holds, independent of the day it is asked on: tallies per date
    (YYYY-MM-DD) of the rows with a readable time, and one for the rows without, which fall on
    the file's day only when the history is made (for today's file that day moves)."""
    dated: dict[str, DayTally] = field(default_factory=dict)
    undated: DayTally = field(default_factory=DayTally)
    warning: str | None = None


class _Dater:
    """The campaign-zone date (YYYY-MM-DD) of an ISO time, or None when it cannot be read.
    The rows of a file are nearly all of one or two days, so the last day's bounds are kept: a
    time of postdeck's own UTC format inside them is placed by comparing text (those times
    compare as text, as rules.counts_today does), any other by one parse and two comparisons;
    only a time outside them costs a time-zone conversion."""

    def __init__(self, tz: tzinfo):
        self.tz = tz
        self.start = self.end = 0.0
        self.start_iso = self.end_iso = ""
        self.label = ""

    def __call__(self, text: str) -> str | None:
        if len(text) == 29 and self.start_iso <= text < self.end_iso and text.endswith("+00:00"):
            return self.label
        at = parse_time(text, self.tz)
        if at is None:
            return None
        if not self.start <= at < self.end:
            try:
                day = Day.of(at, self.tz)
                end_iso = now_iso(day.end)
            except (OverflowError, OSError, ValueError):   # a damaged time far out of range
                return None
            self.start, self.end = day.start, day.end
            self.start_iso, self.end_iso = day.start_iso, end_iso
            self.label = f"{day.label[:4]}-{day.label[4:6]}-{day.label[6:]}"
        return self.label


def tally_data(data: bytes, tz: tzinfo) -> tuple[FileTally, bool]:
    """One file's outcomes by the date of their completed_at, and whether the file looked damaged
    (not UTF-8, a header that is not a progress file's, a row of another width or status, CSV it
    could not read to the end).

    One lenient pass of the csv module over the four columns the history needs, not the codec's
    strict parse: that one builds the Table a writer needs (each row's bytes, a copy, an index)
    and costs twice as much, which 30 archives of 5,000 rows would feel. Damage is then described
    by the codec itself (`read_file_tally`). Like limits.lenient_rows, every row with a status is
    counted, so a damaged file still shows what it holds."""
    out = FileTally()
    damaged = False
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text, damaged = data.decode("utf-8", errors="replace"), True
    reader = csv.reader(io.StringIO(text, newline=""))
    dated, undated, dater = out.dated, out.undated, _Dater(tz)
    status_col, account_col, completed_col, type_col = (C.STATUS, C.ACCOUNT, C.COMPLETED_AT,
                                                        C.ERROR_TYPE)
    try:
        header = next(reader, None)
        if header is None or tuple(header) not in C.ACCEPTED_HEADERS:
            damaged = True
            if not header or header[0].lstrip("\ufeff") != "job_id":
                return out, True        # not a progress file at all: nothing to count
        width = len(header)
        for row in reader:
            n = len(row)
            if n != width:
                damaged = True
                if n <= completed_col:
                    continue
            status = row[status_col]
            if status == C.SUCCESS:
                kind, error_type = SUCCESS, ""
            elif status == C.FAILED:
                error_type = row[type_col] if n > type_col else ""
                kind = UNKNOWN_OUTCOME if error_type == OUTCOME_UNKNOWN else FAILED
            else:
                if status not in _STATUSES:
                    damaged = True
                continue
            label = dater(row[completed_col])
            if label is None:
                target = undated
            else:
                target = dated.get(label)
                if target is None:
                    target = dated[label] = DayTally()
            target.add(kind, row[account_col], error_type)
    except csv.Error:
        damaged = True          # what was read before the bad spot is counted
    return out, damaged


def read_file_tally(path: Path, tz: tzinfo) -> FileTally:
    """One file's tallies; a damaged file's carry a warning naming the file and, in the codec's
    words, the first problem. Raises OSError when the file cannot be read (the caller names it
    and does not cache it)."""
    data = path.read_bytes()
    out, damaged = tally_data(data, tz)
    if damaged:
        out.warning = _damage(path, data, out)
    return out


def _damage(path: Path, data: bytes, tallies: FileTally) -> str:
    """The warning for a damaged file: where the codec finds its first problem, and how many
    outcomes were still counted."""
    counted = sum(sum(t.counts) for t in tallies.dated.values()) + sum(tallies.undated.counts)
    try:
        parse_progress(path, data)
    except CorruptProgressFile as exc:
        # the codec's message goes on to say what the store does with the file; here only what
        # is wrong matters
        words = exc.message.split(". The file is left as it is")[0]
        problem = f", line {exc.line}, {words}" if exc.line else f" {words}"
    else:
        problem = " is damaged"    # a fault only the lenient read sees (a row of another width)
    counts = (f"the history counts the {counted} outcome(s) that could still be read" if counted
              else "nothing in it could be counted")
    return f"{path.name}{problem}; {counts}"


def file_day(path: Path, current: bool, today: date, mtime: float, tz: tzinfo) -> str:
    """The day of a file's rows without a readable time: today for the current file, the date in
    an archive's name, else the day the file last changed."""
    if not current:
        m = _DATE_IN_NAME.search(path.name)
        if m:
            try:
                return datetime.strptime(m.group(1), "%Y%m%d").date().isoformat()
            except ValueError:
                pass        # eight digits that are no date (`_20251399`): go by the mtime
        try:
            return datetime.fromtimestamp(mtime, tz).date().isoformat()
        except (OverflowError, OSError, ValueError):
            pass
    return today.isoformat()


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_mtime_ns, st.st_size, st.st_ino


class HistoryReader:
    """Makes histories, keeping each file's tallies until the file changes: a second history
    of the same folder re-reads only the files whose mtime, size or inode moved. Safe to share
    between threads (the console computes in a thread worker, the CLI in the main thread)."""

    def __init__(self) -> None:
        # campaign's progress file -> {path -> (stat key, time zone name, tallies)}: one reader
        # serves every campaign the console opens, and forgets only a campaign's vanished files
        self._cache: dict[Path, dict[Path, tuple[tuple[int, int, int], str, FileTally]]] = {}
        self._lock = threading.Lock()
        self.reads = 0          # files actually read, for tests and the benchmark

    def files(self, ctx: PostingContext) -> list[tuple[Path, bool]]:
        """(path, is the current file) of every progress file of the campaign folder: the
        archives as the store lists them (engine/tracker.py), then today's file."""
        if ctx.store_url:
            return store_day_files(ctx)
        store = ProgressStore(ctx.progress_file, ctx.ledger_file, ctx.settings)
        try:
            archives = store.archives()
        except OSError:
            archives = []
        return [*((p, False) for p in archives), (Path(ctx.progress_file), True)]

    def _tally(self, old: dict, kept: dict, path: Path,
               tz: tzinfo) -> tuple[FileTally | None, os.stat_result | None, str | None]:
        """(tallies, stat, warning) of one file: from `old` (the campaign's cache) while the file
        is unchanged, else read; what is returned is put in `kept`, the cache from now on. A
        missing file is (None, None, None): today's file before the first seeding, or an
        archive moved away since it was listed."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None, None, None
        except OSError as exc:
            return None, None, _unreadable(path, exc)
        key, zone = _key(st), str(tz)
        cached = old.get(path)
        if cached is not None and cached[0] == key and cached[1] == zone:
            kept[path] = cached
            return cached[2], st, cached[2].warning
        try:
            # The stat is taken before the read: a write in between makes the cache too old
            # (read again next time), never wrongly fresh.
            tallies = read_file_tally(path, tz)
        except OSError as exc:
            return None, None, _unreadable(path, exc)
        self.reads += 1
        kept[path] = (key, zone, tallies)
        return tallies, st, tallies.warning

    def history(self, ctx: PostingContext, now: float | None = None,
                days: int = DEFAULT_DAYS) -> dict:
        """The campaign's last `days` calendar days (today included), oldest first; see the
        module docstring for what is counted. Never raises for a bad progress file."""
        if days < 1:
            raise ValueError(f"days must be at least 1, not {days}")
        tz = ctx.settings.tz
        today = datetime.fromtimestamp(time.time() if now is None else now, tz).date()
        window = [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]
        totals = {d: DayTally() for d in window}
        warnings: list[str] = []
        campaign = Path(ctx.progress_file)
        with self._lock:
            old = self._cache.get(campaign, {})
            kept: dict[Path, tuple[tuple[int, int, int], str, FileTally]] = {}
            for path, current in self.files(ctx):
                tallies, st, warning = self._tally(old, kept, path, tz)
                if warning:
                    warnings.append(warning)
                if tallies is None or st is None:
                    continue
                for label, t in tallies.dated.items():
                    if label in totals:
                        _merge(totals[label], t)
                own = file_day(path, current, today, st.st_mtime, tz)
                if own in totals:
                    _merge(totals[own], tallies.undated)
            self._cache[campaign] = kept    # files that went away are forgotten
        return _summary(window, totals, warnings)


STORE_DAYS_DIRNAME = "store-days"


def store_day_files(ctx: PostingContext) -> list[tuple[Path, bool]]:
    """A shared store's days (every host's) as progress files in the campaign's state folder,
    so they are counted like the CSV store's files: a closed day is written once (it does not
    change any more), today's whenever it changed."""
    from .durable import write_atomic
    from .store import open_store
    store = open_store(ctx)
    folder = ctx.state_dir / STORE_DAYS_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for label in store.days():
        path = folder / f"{ctx.progress_file.stem}_{label}.csv"
        if not path.exists():
            write_atomic(path, store.export_day(label))
        out.append((path, False))
    today = folder / ctx.progress_file.name
    data = store.export_day()
    try:
        same = today.read_bytes() == data
    except OSError:
        same = False
    if not same:
        write_atomic(today, data)
    return [*out, (today, True)]


def _unreadable(path: Path, exc: OSError) -> str:
    return f"{path.name} could not be read ({exc.strerror or exc}); its rows are not counted"


def _merge(into: DayTally, t: DayTally) -> None:
    for i in range(3):
        into.counts[i] += t.counts[i]
    errors = into.errors
    for k, n in t.errors.items():
        errors[k] = errors.get(k, 0) + n
    accounts = into.accounts
    for name, (ok, bad) in t.accounts.items():
        acc = accounts.get(name)
        if acc is None:
            accounts[name] = [ok, bad]
        else:
            acc[0] += ok
            acc[1] += bad


def _summary(window: list[str], totals: dict[str, DayTally], warnings: list[str]) -> dict:
    """The history as plain data (JSON as it is): days oldest first, error types most frequent
    first, accounts by name."""
    errors: dict[str, int] = {}
    accounts: dict[str, list[int]] = {}
    for t in totals.values():
        for k, n in t.errors.items():
            errors[k] = errors.get(k, 0) + n
        for name, (ok, bad) in t.accounts.items():
            acc = accounts.setdefault(name, [0, 0])
            acc[0] += ok
            acc[1] += bad
    rows = [{"date": d, "success": totals[d].counts[SUCCESS], "failed": totals[d].counts[FAILED],
             "unknown": totals[d].counts[UNKNOWN_OUTCOME]} for d in window]
    success = sum(r["success"] for r in rows)
    outcomes = success + sum(r["failed"] + r["unknown"] for r in rows)
    return {
        "days": rows,
        "errors_by_type": dict(sorted(errors.items(), key=lambda kv: (-kv[1], kv[0]))),
        "accounts": [{"account": name, "success": ok, "failed": bad}
                     for name, (ok, bad) in sorted(accounts.items())],
        "success_rate": round(success / outcomes, 4) if outcomes else None,
        "warnings": warnings,
    }


_DEFAULT = HistoryReader()


def history(ctx: PostingContext, now: float | None = None, days: int = DEFAULT_DAYS) -> dict:
    """The campaign's history over its last `days` days (see HistoryReader.history), through one
    process-wide reader: a second call re-reads only the files that changed."""
    return _DEFAULT.history(ctx, now, days)
