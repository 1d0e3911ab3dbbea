"""The daily limit across day resets and campaigns: which posts count toward an account's limit
today, wherever on the host they were made.

The limit is per account and calendar day in the campaign's time zone. A day reset starts a new
progress file, not a new day, and one account may post from several campaigns on a host, so the
count for today covers (DESIGN.md, claim rule 3):
- the rows of the campaign's current progress file (the store counts those from the table it
  holds under its lock),
- the rows of every other progress file in the campaign's folder (`progress*.csv`: its archives,
  whatever the earlier system named them),
- the same files of every other campaign on the host: the folders of the campaigns folder, and
  every campaign that has seeded or run with this host state folder (`register`).
A row counts when it is a success, a claim or an unknown outcome (rules.counts_toward_limit). It
falls on the day of its completed_at (a claim: its claimed_at; a claim in a current file is
running now); a time at or after today's midnight counts as today (a clock that ran ahead must
not free a slot); a row with no readable time falls on its file's day: today for a current file,
the date in an archive's name, else the day the file last changed.

Claims for an account are serialized host-wide by `account_lock`, held from the moment the
other files are counted until the claim is written, so two campaigns cannot both take the last
slot of a shared account.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from pathlib import Path

from filelock import FileLock

from . import columns as C
from .durable import write_atomic
from .progress_csv import CorruptProgressFile, Table, parse_progress, reparse
from .rules import Day, Usage, counts_today

REGISTRY_DIRNAME = "campaigns"
ACCOUNT_LOCKS_DIRNAME = "accounts"
ACCOUNT_LOCK_TIMEOUT_S = 120.0
_DATE_IN_NAME = re.compile(r"_(\d{8})(?:\D|$)")


def register(host_state_dir: Path, root: Path, stem: str) -> None:
    """Record that a campaign posts from this host, so every other campaign counts its posts
    toward shared accounts' limits even when it lives outside the campaigns folder."""
    folder = Path(host_state_dir) / REGISTRY_DIRNAME
    entry = folder / f"{_digest(str(root))}.json"
    if entry.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(entry, json.dumps({"root": str(root), "stem": stem}).encode())


def account_lock(host_state_dir: Path, account: str) -> FileLock:
    """The host-wide lock that serializes claims for one account across campaigns. Named by a
    digest: account names are the operator's and need not be valid file names."""
    folder = Path(host_state_dir) / ACCOUNT_LOCKS_DIRNAME
    folder.mkdir(parents=True, exist_ok=True)
    return FileLock(str(folder / f"{_digest(account)}.lock"), timeout=ACCOUNT_LOCK_TIMEOUT_S,
                    poll_interval=0.002)


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:20]


class HostDay:
    """Counts today's slots per account in every progress file of the host except the store's
    own current file. A file is read again only when its size, inode or mtime changed, and its
    count for a day is kept until then: a claim costs a stat per file."""

    def __init__(self, own_file: Path, host_state_dir: Path | None = None,
                 campaigns_dir: Path | None = None):
        self.own_file = Path(own_file)
        self.host_state_dir = Path(host_state_dir) if host_state_dir else None
        self.campaigns_dir = Path(campaigns_dir) if campaigns_dir else None
        self._cache: dict[Path, tuple[tuple, Table | None, list[list[str]]]] = {}
        self._usage: dict[Path, tuple[tuple, dict[str, Usage]]] = {}
        # Archives of the own folder that are counted elsewhere already: the PostgreSQL store
        # writes each day it closes as an archive too, and counts that day from the database.
        self.skip_names: frozenset[str] = frozenset()

    @property
    def shared(self) -> bool:
        """Whether other campaigns may post for the same accounts (then claims take
        account_lock)."""
        return self.host_state_dir is not None

    # --- which files -------------------------------------------------------------------------
    def _peer_folders(self) -> list[tuple[Path, str]]:
        own = (self.own_file.parent.resolve(), _stem(self.own_file))
        folders: dict[tuple[Path, str], None] = {own: None}
        if self.campaigns_dir is not None and self.campaigns_dir.is_dir():
            for d in _campaign_folders(self.campaigns_dir):
                folders.setdefault((d.resolve(), "progress"), None)
        if self.host_state_dir is not None:
            registry = self.host_state_dir / REGISTRY_DIRNAME
            try:
                entries = sorted(registry.glob("*.json"))
            except OSError:
                entries = []
            for entry in entries:
                try:
                    d = json.loads(entry.read_text())
                    folders.setdefault((Path(d["root"]).resolve(), str(d["stem"])), None)
                except (OSError, ValueError, KeyError, TypeError):
                    continue  # a damaged entry: that campaign's folder may still be listed above
        return list(folders)

    def files(self) -> list[tuple[Path, bool, os.stat_result, bytes | None]]:
        """(path, is a current file, its stat, its bytes when already read). A folder's current
        file is read before its archives are listed: a day reset in between then shows its rows
        twice (in the archive and in the old current file), never not at all. Each stat is taken
        before the read, so a cache keyed by it can only be too old, never wrongly fresh."""
        out = []
        own_current = self.own_file.resolve()
        for folder, stem in self._peer_folders():
            current = folder / f"{stem}.csv"
            if current != own_current:
                try:
                    st = current.stat()
                    cached = self._cache.get(current)
                    fresh = cached is not None and cached[0] == _key(st)
                    out.append((current, True, st, None if fresh else current.read_bytes()))
                except OSError:
                    pass
            try:
                names = sorted(p for p in folder.glob(f"{stem}*.csv") if p.name != current.name)
            except OSError:
                names = []
            for p in names:
                if p.name in self.skip_names and folder == own_current.parent:
                    continue
                try:
                    out.append((p, False, p.stat(), None))
                except OSError:
                    continue
        return out

    # --- counting ----------------------------------------------------------------------------
    def usage(self, day: Day) -> dict[str, Usage]:
        out: dict[str, Usage] = {}
        for path, current, st, data in self.files():
            for account, u in self._usage_of(path, current, st, data, day).items():
                total = out.get(account)
                if total is None:
                    total = out[account] = Usage()
                total.used += u.used
                total.running += u.running
                total.posted += u.posted
        return out

    def _usage_of(self, path: Path, current: bool, st: os.stat_result, data: bytes | None,
                  day: Day) -> dict[str, Usage]:
        """One file's use of each account on `day`, kept until the file or the day changes: an
        archive is read and counted once per process and day, then costs one stat a claim."""
        key = (_key(st), day, current)
        cached = self._usage.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        if current:
            file_is_today = True
        else:
            m = _DATE_IN_NAME.search(path.name)
            file_is_today = (m.group(1) == day.label if m
                             else day.start <= st.st_mtime < day.end)
        out: dict[str, Usage] = {}
        for row in self._rows(path, st, data):
            if not counts_today(row, day, current, file_is_today):
                continue
            u = out.get(row[C.ACCOUNT])
            if u is None:
                u = out[row[C.ACCOUNT]] = Usage()
            u.used += 1
            if row[C.STATUS] == C.CLAIMED:
                u.running += current
            elif row[C.STATUS] == C.SUCCESS:
                u.posted += 1
        self._usage[path] = (key, out)
        return out

    def _rows(self, path: Path, st: os.stat_result, data: bytes | None) -> list[list[str]]:
        key = _key(st)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[2]
        if data is None:
            try:
                data = path.read_bytes()
            except OSError:
                return []
        table = None
        if cached is not None and cached[1] is not None:
            table = reparse(cached[1], data)
        if table is None:
            try:
                table = parse_progress(path, data)
            except CorruptProgressFile:
                table = None
        rows = table.rows if table is not None else lenient_rows(data)
        self._cache[path] = (key, table, rows)
        return rows


def _campaign_folders(top: Path, depth: int = 2) -> list[Path]:
    """Campaign folders in the campaigns folder and one level below, hidden ones included: a
    campaign set aside as `.retired-x` or `old/x` posted today under the same accounts."""
    found = []
    try:
        entries = sorted(p for p in top.iterdir() if p.is_dir() and p.name != ".postdeck")
    except OSError:
        return found
    for d in entries:
        if (d / "accounts.txt").is_file():
            found.append(d)
        elif depth > 1:
            found.extend(_campaign_folders(d, depth - 1))
    return found


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return st.st_size, st.st_ino, st.st_mtime_ns


def _stem(path: Path) -> str:
    return path.name[:-4] if path.name.endswith(".csv") else path.stem


def lenient_rows(data: bytes) -> list[list[str]]:
    """The rows of a progress file that does not parse strictly (a damaged archive, an earlier
    system's backup): every row that has a status column is counted, so damage never frees a
    slot that was used. Other campaigns' files are never refused for the sake of this one."""
    text = data.decode("utf-8", errors="replace")
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = []
    try:
        header = next(reader, None)
        if not header or header[0].lstrip("\ufeff") != "job_id":
            return []
        for row in reader:
            if len(row) > C.COMPLETED_AT and row[C.STATUS] in C.STATUSES:
                rows.append((row + [""] * C.WIDTH)[:C.WIDTH])
    except csv.Error:
        pass
    return rows
