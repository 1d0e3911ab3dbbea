"""The store interface: what workers, runs, status and the console ask of a campaign's job store.

`JobStore` is the whole surface; engine/tracker.py's `ProgressStore` (the CSV file under a file
lock, the embedded default for one host) implements it, and a second implementation (the
PostgreSQL store for several hosts) can implement it without touching workers, runs or the
console. Everything outside the store opens one with `open_store(ctx)`.

The rules are the store's to keep, whatever it is made of: every write presents the claim_id of
the claim it acts on (ClaimLost otherwise), claims follow DESIGN.md's claim rules inside one
atomic step, transitions follow engine/lifecycle.py's table, and a success reaches the ledger
before the job's row.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol, runtime_checkable
import threading

from .campaigns import Account, Video, video_name
from .errors import Classification
from .lifecycle import Job, RetryPolicy
from .problems import Refused
from .progress_csv import Table
from .rules import Day, Usage
from .settings import Settings


# --- the values the interface speaks in -------------------------------------------------------------
@dataclass(frozen=True)
class DamagedLine:
    line: int
    cells: list[str]


@dataclass(frozen=True)
class Ledger:
    entries: list[dict[str, str]]
    damaged: list[DamagedLine]      # lines that are not whole entries (a cut-off write, an edit)

    def posted(self) -> "PostedVideos":
        """What the ledger says was posted; a damaged line's every field counts, so a cut-off
        entry still keeps its video out of the queue."""
        posted = PostedVideos()
        for entry in self.entries:
            posted.add(entry["video_path"], entry["job_id"])
        for bad in self.damaged:
            for cell in bad.cells:
                posted.add(cell, cell)
        return posted


class JobRefused(Refused):
    """An operator's action on one job that must not happen as asked (retry, skip, move to the
    front). `job_id` names the job; `reason` says why in one word, so each front end can add what
    to do in its own words (a flag, a key):

    - `unknown_job`: no job of today has that id
    - `claimed`: a worker holds it (stop the run, or wait for the attempt to end)
    - `needs_consent`: a retry that may hurt (an account or content error, an unknown outcome
      that may already be public): asked again with the operator's explicit consent it goes
    - `posted`: its video is posted (a success, or in the ledger)
    - `status`: the job is not in a status the action starts from (the message says which)
    """

    UNKNOWN_JOB, CLAIMED, NEEDS_CONSENT, POSTED, STATUS = (
        "unknown_job", "claimed", "needs_consent", "posted", "status")

    def __init__(self, job_id: str, reason: str, message: str):
        self.job_id = job_id
        self.reason = reason
        super().__init__(message)


class PostedVideos:
    """Video file names and job ids that were ever posted (or may have been)."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.job_ids: set[str] = set()

    def add(self, video_path: str, job_id: str) -> None:
        # stripped: a hand-edited line with a stray space still names its video
        if video_path.strip():
            self.names.add(video_name(video_path.strip()))
        if job_id.strip():
            self.job_ids.add(job_id.strip())

    def holds(self, name: str, job_id: str) -> bool:
        return name in self.names or job_id in self.job_ids


class Lease(Protocol):
    """A worker's (or a supervisor's) lease on its claims, renewed every few seconds. A store
    shared by several hosts (PostgreSQL) keeps it in the database: a claim whose lease expired
    is recovered by any host, and its holder's later writes are rejected (ClaimLost)."""

    def renew(self, state: str = "", job_id: str = "", phone: str = "") -> bool:
        """Extend the lease; False when it had expired already: the holder has lost its claims
        and must stop."""

    def wait_changes(self, timeout: float) -> bool:
        """Sleep until another process changed the store (True) or the timeout (False)."""

    def interrupt(self) -> None:
        """End a wait_changes now (from another thread: the holder is leaving)."""

    def close(self) -> None:
        """Give the lease up (a clean exit); a lease that still holds a claim is left to run
        out, so any host can recover the claim."""


class LocalLease:
    """The lease of a one-host store: liveness is the heartbeat file and the pid
    (engine/runstate.py), and wake-ups come through engine/wake.py, so there is nothing to
    renew and nothing to listen to."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def renew(self, state: str = "", job_id: str = "", phone: str = "") -> bool:
        return True

    def wait_changes(self, timeout: float) -> bool:
        self._closed.wait(max(0.0, timeout))
        return False

    def interrupt(self) -> None:
        self._closed.set()

    def close(self) -> None:
        self._closed.set()


@runtime_checkable
class JobStore(Protocol):
    settings: Settings
    retry: RetryPolicy
    # Whether other hosts write to this store too: then a supervisor also recovers claims whose
    # lease expired, wherever they were made.
    shared: bool

    # --- reading: a consistent snapshot, without blocking writers ------------------------------
    def read(self) -> Table:
        """Today's jobs as progress rows (engine/columns.py), in queue order."""

    def validate(self) -> None:
        """Raise InputError when the store cannot be used as it is (naming file and line)."""

    def stats(self) -> dict[str, int]:
        """Jobs per status, and `total`."""

    def jobs(self) -> list[dict[str, str]]: ...

    def job(self, job_id: str) -> dict[str, str] | None: ...

    def next_chance(self, phone: str | None = None,
                    accounts: frozenset[str] | None = None) -> tuple[bool, float | None]:
        """For an idle worker: (others running, the earliest moment a job may become claimable
        today); (False, None) when nothing more can happen today."""

    # --- a job's life (engine/lifecycle.py) --------------------------------------------------
    def claim(self, worker_id: str, phone: str | None = None,
              phone_free: Callable[[str], bool] | None = None,
              accounts: frozenset[str] | None = None,
              prefer_phone: str | None = None) -> Job | None: ...

    def set_phase(self, job_id: str, claim_id: str, phase: str) -> None: ...

    def set_task(self, job_id: str, claim_id: str, task_id: str) -> None: ...

    def watch(self, job_id: str, claim_id: str, watcher: str) -> None: ...

    def complete(self, job_id: str, claim_id: str, video_id: str = "") -> None: ...

    def fail(self, job_id: str, claim_id: str, error: str | BaseException,
             classification: Classification | None = None) -> dict[str, str]: ...

    def release(self, job_id: str, claim_id: str) -> None: ...

    def recover_stale(self, live_workers: Iterable[str], run_id: str | None = None,
                      counted: bool = True) -> list[dict]: ...

    def stale_claims(self, live_workers: Iterable[str],
                     run_id: str | None = None) -> list[dict[str, str]]:
        """The claims recover_stale would take now (the same arguments): this host's claims of
        workers not in `live_workers` (or of another run), and any claim whose lease expired."""

    def retry_all_failed(self, include_non_retryable: bool = False) -> int: ...

    # --- leases (Lease) ----------------------------------------------------------------------
    def lease(self, worker_id: str, pid: int, ttl_s: float, run_id: str = "") -> Lease:
        """Take the lease `worker_id` holds its claims under, for `ttl_s` seconds at a time."""

    def hold_run(self, pid: int, ttl_s: float, run_id: str) -> Lease:
        """The supervisor's lease, held for the whole run; on a shared store also the run's lock
        for this campaign and host (Refused while another supervisor holds it)."""

    def leases(self) -> list[dict[str, object]]:
        """Every host's live and expired leases on this campaign (host, worker_id, pid, state,
        job_id, phone, expires_in); [] for a one-host store."""

    # --- the operator's actions on one job (JobRefused when they must not happen) --------------
    def retry_job(self, job_id: str, include_non_retryable: bool = False) -> dict[str, str]:
        """A failed job back in the queue, due now, with fresh attempts (lifecycle `retry`)."""

    def skip_job(self, job_id: str, reason: str) -> dict[str, str]:
        """A job not claimed taken out of the queue for good (lifecycle `withdraw`)."""

    def move_to_front(self, job_id: str) -> dict[str, str]:
        """A pending job first in the claim order (lifecycle `to_front`)."""

    # --- the day -----------------------------------------------------------------------------
    def seed(self, videos: list[Video], accounts: list[Account], campaign: str) -> list[dict]: ...

    def reset_day(self, date: str, guard: Callable[[], None] | None = None) -> Path | None:
        """Close today's jobs (kept as an archive, whose path is returned) and start empty."""

    def days(self) -> list[str]:
        """The closed days, oldest first, by the name their archive carries (YYYYMMDD, or
        YYYYMMDD_N after several resets on one date)."""

    def export_day(self, day: str | None = None) -> bytes:
        """A day as a progress file's bytes: today's (None) or a closed one named as days()
        names it; InputError when there is no such day."""

    def usage_elsewhere(self, day: Day) -> dict[str, Usage]:
        """What each account used on `day` that today's jobs do not show (engine/limits.py)."""

    # --- the ledger --------------------------------------------------------------------------
    def ledger(self) -> list[dict[str, str]]: ...

    def read_ledger(self) -> Ledger: ...

    def import_posts(self, entries: list[tuple[str, str, str, str]]) -> tuple[int, int]:
        """Ledger entries for videos not yet known as posted: (new, already known)."""

    def adopt_history(self) -> int:
        """Once, for a campaign without a ledger: its progress files' successes as entries."""

    def posted(self) -> PostedVideos:
        """Every video ever posted or maybe posted (the ledger and the archives), by file name."""


def open_store(ctx, **kwargs) -> JobStore:
    """The store of a campaign (or of legacy mode): the PostgreSQL database the context names
    (POSTDECK_STORE), else the CSV progress file in the campaign folder."""
    if ctx.store_url:
        from .pg_store import PgStore
        return PgStore.for_context(ctx, **kwargs)
    from .tracker import ProgressStore
    return ProgressStore.for_context(ctx, **kwargs)
