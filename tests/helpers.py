"""Shared builders for the store, campaign and CLI tests: a temp campaign on real files, progress
rows, an injectable clock, byte-for-byte snapshots, and the CLI run as a real process.

Import from here (`from helpers import ...`); tests/conftest.py belongs to the lead.
"""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from engine import columns as C
from engine.campaigns import Account, Video, video_name
from engine.rules import now_iso, parse_time
from engine.settings import Settings
from engine.tracker import ProgressStore, RetryPolicy

REPO = Path(__file__).resolve().parent.parent

# 2025-06-15 12:00:00 UTC: a fixed, whole-second moment (the store writes ISO times in seconds).
T0 = 1_749_988_800.0


class Clock:
    """An injected clock: `store.clock = clock`; moving it never sleeps."""

    def __init__(self, now: float = T0):
        self.now = float(now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def settings(**overrides) -> Settings:
    return replace(Settings(), **overrides)


# --- progress rows ----------------------------------------------------------------------------
def row(job_id: str, account: str, status: str = C.PENDING, **fields: str) -> list[str]:
    """One 20-column progress row; keyword arguments name columns (phone_id=..., error_type=...)."""
    r = [""] * C.WIDTH
    r[C.JOB_ID] = job_id
    r[C.ACCOUNT] = account
    r[C.VIDEO_PATH] = f"/videos/{job_id}.mp4"
    r[C.CAPTION] = f"caption of {job_id}"
    r[C.STATUS] = status
    r[C.ATTEMPTS] = "0"
    r[C.MAX_ATTEMPTS] = "3"
    r[C.PASS_NUMBER] = "1"
    for key, value in fields.items():
        r[C.COLUMNS.index(key)] = str(value)
    return r


def progress_bytes(rows: list[list[str]], header: tuple[str, ...] = C.COLUMNS,
                   lineterminator: str = "\n") -> bytes:
    """The file as csv writes it; the earlier system used csv's default "\r\n"."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator=lineterminator)
    w.writerow(header)
    for r in rows:
        w.writerow(r[: len(header)])
    return buf.getvalue().encode("utf-8")


def write_progress(path: Path, rows: list[list[str]],
                   header: tuple[str, ...] = C.COLUMNS) -> Path:
    path.write_bytes(progress_bytes(rows, header))
    return path


def make_store(folder: Path, rows: list[list[str]] | None = None, *, clock: Clock | None = None,
               retry: RetryPolicy | None = None, name: str = "progress.csv",
               **setting_overrides) -> ProgressStore:
    """A ProgressStore on `folder/progress.csv` (written from `rows` when given) with its ledger
    `folder/posted.csv`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if rows is not None:
        write_progress(path, rows)
    return ProgressStore(path, folder / "posted.csv", settings(**setting_overrides),
                         retry=retry or RetryPolicy(retry_delay_s=60.0, max_passes=3),
                         clock=clock or Clock())


def by_id(store: ProgressStore) -> dict[str, dict[str, str]]:
    return {j["job_id"]: j for j in store.jobs()}


def videos(folder: Path, names: list[str], caption: str = "cap") -> list[Video]:
    return [Video(n, folder / n, f"{caption} {n}") for n in names]


def accounts(*names: str | tuple[str, str]) -> list[Account]:
    return [Account(n, n) if isinstance(n, str) else Account(*n) for n in names]


# --- snapshots --------------------------------------------------------------------------------
def snapshot(path: Path) -> tuple[bytes, int]:
    """The file's bytes and mtime: 'byte-for-byte unchanged' compares both."""
    return path.read_bytes(), path.stat().st_mtime_ns


# --- campaigns --------------------------------------------------------------------------------
def make_campaign(campaigns_dir: Path, name: str = "demo", *,
                  accounts: list[str | tuple[str, str]] | None = None,
                  videos: int | list[str] = 4, captions: dict[str, str] | None = None,
                  settings: dict | None = None, accounts_text: str | None = None,
                  captions_bytes: bytes | None = None) -> Path:
    """A campaign folder with accounts.txt, captions.csv, videos/ and campaign.json.
    `videos` is a count (v000.mp4 ...) or a list of file names (may hold sub-folders);
    `captions` maps file name -> caption (default: a caption for every video)."""
    root = campaigns_dir / name
    (root / "videos").mkdir(parents=True, exist_ok=True)
    if accounts_text is None:
        accounts = accounts or ["acc_a", "acc_b"]
        accounts_text = "".join((f"{a[0]},{a[1]}" if isinstance(a, tuple) else a) + "\n"
                                for a in accounts)
    (root / "accounts.txt").write_text(accounts_text, encoding="utf-8")
    names = [f"v{i:03d}.mp4" for i in range(videos)] if isinstance(videos, int) else videos
    for i, rel in enumerate(names):
        p = root / "videos" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\0\0\0\x18ftypmp42" + bytes([i % 256]))
    if captions_bytes is None:
        if captions is None:
            captions = {Path(n).name: f"caption for {Path(n).name}" for n in names}
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["filename", "post_caption"])
        for fname, cap in captions.items():
            w.writerow([fname, cap])
        captions_bytes = buf.getvalue().encode("utf-8")
    (root / "captions.csv").write_bytes(captions_bytes)
    if settings is not None:
        (root / "campaign.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    return root


# --- the CLI as a real process ----------------------------------------------------------------
def run_cli(*args: str, cwd: Path | None = None, campaigns_dir: Path | None = None,
            env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`python -m console ARGS` in a real process (the way an operator runs postdeck)."""
    full_env = {k: v for k, v in os.environ.items()
                if k not in ("POSTDECK_CAMPAIGNS_DIR", "POSTDECK_STATE_DIR")}
    full_env["PYTHONPATH"] = str(REPO) + os.pathsep + full_env.get("PYTHONPATH", "")
    if campaigns_dir is not None:
        full_env["POSTDECK_CAMPAIGNS_DIR"] = str(campaigns_dir)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


# --- days and the daily limit over every file ---------------------------------------------------
TIME_COLUMNS = (C.CLAIMED_AT, C.COMPLETED_AT, C.RETRY_AT)


def age_one_day(root: Path, days: float = 1.0) -> None:
    """Make a day pass for a campaign folder without waiting for one: every time in its
    progress files moves back `days` days, and so do the files' modification times (what
    engine/limits.py reads to skip files that cannot hold today's posts)."""
    shift = 86400.0 * days
    for path in sorted(Path(root).glob("*progress*.csv")):
        text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        header, body = rows[0], rows[1:]
        for r in body:
            for col in TIME_COLUMNS:
                if col < len(r) and r[col]:
                    at = parse_time(r[col])
                    if at is not None:
                        r[col] = now_iso(at - shift)
        buf = io.StringIO(newline="")
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(body)
        path.write_text(buf.getvalue(), encoding="utf-8")
        st = path.stat()
        os.utime(path, (st.st_atime - shift, st.st_mtime - shift))


def posts_per_day(roots: list[Path], tz: str = "UTC") -> Counter:
    """(account, YYYY-MM-DD) -> slots used, over every progress file of every campaign folder
    given: successes and unknown outcomes on the day of completed_at, claims on claimed_at."""
    zone = ZoneInfo(tz)
    used: Counter = Counter()
    for root in roots:
        for path in sorted(Path(root).glob("*progress*.csv")):
            for r in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")):
                if len(r) <= C.ERROR_TYPE or r[C.STATUS] not in C.STATUSES:
                    continue    # a header, or a row of a file too damaged to be read
                if r[C.STATUS] == C.CLAIMED:
                    at = r[C.CLAIMED_AT]
                elif r[C.STATUS] == C.SUCCESS or r[C.ERROR_TYPE] == "outcome_unknown":
                    at = r[C.COMPLETED_AT]
                else:
                    continue
                when = parse_time(at)
                day = datetime.fromtimestamp(when, zone).date().isoformat() if when else "?"
                used[(r[C.ACCOUNT], day)] += 1
    return used


def assert_daily_limits(roots: list[Path], limit: int, tz: str = "UTC") -> Counter:
    """No account above its limit on any calendar day, counted over every progress file
    (archives too) of every campaign that shares the accounts; no video posted twice."""
    used = posts_per_day(roots, tz)
    over = {k: n for k, n in used.items() if n > limit}
    assert not over, f"accounts above their daily limit of {limit}: {over}"
    names: Counter = Counter()
    for root in roots:
        for path in sorted(Path(root).glob("*progress*.csv")):
            for r in csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")):
                if len(r) > C.STATUS and r[C.STATUS] == C.SUCCESS:
                    names[video_name(r[C.VIDEO_PATH])] += 1
    twice = {n: k for n, k in names.items() if k > 1}
    assert not twice, f"videos posted twice: {twice}"
    return used


def one_message(res: subprocess.CompletedProcess, *fragments: str) -> str:
    """A refusal as the product promises it: exit 1 and one line on stderr, no traceback,
    holding each fragment."""
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def tree_snapshot(top: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every file below `top` with its bytes and mtime (folders and links as None): 'nothing
    changed, nothing added' compares two of these."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(top))
            if p.is_symlink() or p.is_dir():
                out[rel] = (None, 0)
            else:
                out[rel] = (p.read_bytes(), p.stat().st_mtime_ns)
    return out


# --- the earlier system's campaign folder ---------------------------------------------------------
EARLIER_HEADER = C.COLUMNS[:17]
EARLIER_ARCHIVES = ("progress_20251101.csv", "progress_20251101_1.csv",
                    "progress_20251102_093015.csv", "progress_20251103_archive.csv",
                    "progress_backup_20251104.csv", "progress_pre_migration.csv",
                    "progress_v5_old.csv")


def earlier_campaign(root: Path, *, captions: int = 40, videos: int = 24, archives: int = 7,
                     accounts: int = 4, posted_per_archive: int = 2) -> dict:
    """A campaign folder as the earlier system left it: a videos folder called clips/ with
    nested chunk folders, a captions CSV listing far more captions than videos (CRLF,
    multi-line captions with emoji, an onscreen_text column), 17-column CRLF progress files with
    Windows paths and multi-line errors under every archive name it used, and a master ledger
    outside the campaign with comments and `rebuilt`. Returns which videos each file says were
    posted."""
    root.mkdir(parents=True)
    names = [f"clip_{i:04d}.mp4" for i in range(videos)]
    for i, name in enumerate(names):
        p = root / "clips" / f"chunk_{i % 3:02d}b" / f"show{i % 2}" / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"\0\0\0\x18ftypmp42" + bytes([i % 256]))
    (root / "accounts.txt").write_text("".join(f"acc{i}\r\n" for i in range(accounts)))
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(["filename", "onscreen_text", "post_caption"])
    for i in range(captions):
        w.writerow([f"clip_{i:04d}.mp4", f"text {i}", f"caption {i} 🎬\nsecond line, \"quoted\""])
    (root / "captions.csv").write_bytes(buf.getvalue().encode("utf-8"))
    win = "C:\\Users\\op\\farm\\clips\\chunk_00b\\show0\\"
    posted: dict[str, list[str]] = {}
    used = 0
    for a in range(archives):
        name = EARLIER_ARCHIVES[a % len(EARLIER_ARCHIVES)]
        if a >= len(EARLIER_ARCHIVES):
            name = f"progress_2025110{a % 9}_{a}.csv"
        rows = []
        for k in range(posted_per_archive):
            video = names[used % videos]
            used += 1
            r = [""] * 17
            r[C.JOB_ID], r[C.ACCOUNT], r[C.VIDEO_PATH] = f"{video}_old", f"acc{k % accounts}", win + video
            r[C.CAPTION], r[C.STATUS], r[C.WORKER_ID] = "old caption\nline 2 🎬", C.SUCCESS, "1"
            r[C.CLAIMED_AT] = r[C.COMPLETED_AT] = "2025-11-01T10:00:00"
            r[C.ATTEMPTS], r[C.MAX_ATTEMPTS] = "1", "3"
            rows.append(r)
            posted.setdefault(name, []).append(video)
        failed = [""] * 17
        failed[C.JOB_ID], failed[C.ACCOUNT], failed[C.STATUS] = f"x{a}.mp4_old", "acc0", C.FAILED
        failed[C.VIDEO_PATH], failed[C.ERROR] = win + f"x{a}.mp4", "Traceback:\n  line 1\n  boom"
        rows.append(failed)
        (root / name).write_bytes(progress_bytes(rows, EARLIER_HEADER, "\r\n"))
    ledger = root.parent / "all_posted_videos.txt"
    ledger_videos = [names[(used + i) % videos] for i in range(3)]
    ledger.write_text("# master ledger, all campaigns\n"
                      + "".join(f"acc{i}|{v}|2025-11-0{i + 1} 10:00:00\n"
                                for i, v in enumerate(ledger_videos[:2]))
                      + f"acc3|{ledger_videos[2]}|rebuilt\n\n# end\n", encoding="utf-8")
    return {"archives": posted, "ledger": ledger, "ledger_videos": ledger_videos,
            "videos": names}
