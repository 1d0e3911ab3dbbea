"""A job's lifecycle: each transition is one function over a progress row, and `TRANSITIONS` says
from which statuses it may start and in which it may end. A transition asked of a row in any
other status raises IllegalTransition and leaves the row as it was, so no caller can move a job
along a path the table does not name.

    pending ──claim──▶ claimed ──complete──▶ success
    retrying ─claim─▶    │  ├──fail────────▶ retrying | failed
                         │  ├──release─────▶ pending | retrying | failed (publishing: unknown)
                         │  └──recover─────▶ retrying | failed (publishing: unknown)
    failed ──retry──▶ retrying          pending | retrying ──skip──▶ skipped
    pending | retrying | failed ──withdraw──▶ skipped     (the operator, for one job)
    (claimed ──set_phase──▶ claimed: claimed → preparing → publishing, never back)
    (pending ──to_front──▶ pending: first in the claim order)

The store (engine/tracker.py) keeps the lock, the file and the cache, and calls these under its
lock; who may write (the claim_id check) and which job is chosen (the claim rules) stay there.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from . import columns as C
from .columns import Phase, Status
from .errors import (INFRASTRUCTURE, OUTCOME_UNKNOWN, UNKNOWN, Classification,
                     attempts_allowed)
from .rules import as_int, is_blocking, now_iso

TRANSITIONS: dict[str, tuple[frozenset[Status], frozenset[Status]]] = {
    "claim": (frozenset({Status.PENDING, Status.RETRYING}), frozenset({Status.CLAIMED})),
    "set_phase": (frozenset({Status.CLAIMED}), frozenset({Status.CLAIMED})),
    "set_task": (frozenset({Status.CLAIMED}), frozenset({Status.CLAIMED})),
    "watch": (frozenset({Status.CLAIMED}), frozenset({Status.CLAIMED})),
    "complete": (frozenset({Status.CLAIMED}), frozenset({Status.SUCCESS})),
    "fail": (frozenset({Status.CLAIMED}), frozenset({Status.RETRYING, Status.FAILED})),
    "release": (frozenset({Status.CLAIMED}),
                frozenset({Status.PENDING, Status.RETRYING, Status.FAILED})),
    "recover": (frozenset({Status.CLAIMED}), frozenset({Status.RETRYING, Status.FAILED})),
    "retry": (frozenset({Status.FAILED}), frozenset({Status.RETRYING})),
    "skip": (frozenset({Status.PENDING, Status.RETRYING}), frozenset({Status.SKIPPED})),
    # The operator's actions on one job: a claimed job is never touched (a worker holds it).
    "withdraw": (frozenset({Status.PENDING, Status.RETRYING, Status.FAILED}),
                 frozenset({Status.SKIPPED})),
    "to_front": (frozenset({Status.PENDING}), frozenset({Status.PENDING})),
}


class IllegalTransition(ValueError):
    """A transition asked of a job in a status it may not start from."""


@dataclass(frozen=True)
class RetryPolicy:
    """Run-level retry settings (the CLI's --retry-delay and --max-passes)."""
    retry_delay_s: float = 60.0
    max_passes: int = 3


@dataclass(frozen=True)
class Job:
    """A claimed job as the worker gets it: typed, and readable by column name too (`job[...]`
    spells the progress file's columns)."""
    job_id: str
    account: str
    video_path: str
    caption: str
    status: Status
    phone_id: str
    worker_id: str
    claim_id: str
    attempts: int
    run_id: str
    row: tuple[str, ...]

    @classmethod
    def from_row(cls, row: list[str]) -> "Job":
        return cls(job_id=row[C.JOB_ID], account=row[C.ACCOUNT], video_path=row[C.VIDEO_PATH],
                   caption=row[C.CAPTION], status=Status(row[C.STATUS]),
                   phone_id=row[C.PHONE_ID], worker_id=row[C.WORKER_ID],
                   claim_id=row[C.CLAIM_ID], attempts=as_int(row[C.ATTEMPTS]),
                   run_id=row[C.RUN_ID], row=tuple(row))

    def __getitem__(self, column: str) -> str:
        return self.row[C.COLUMNS.index(column)]

    def as_dict(self) -> dict[str, str]:
        """The row as `store.job()` reads it back."""
        return dict(zip(C.COLUMNS, self.row))


def transition(name: str):
    """Check the row's status against TRANSITIONS[name] before and after the change."""
    starts, ends = TRANSITIONS[name]

    def decorate(change):
        @wraps(change)
        def checked(row: list[str], *args, **kwargs):
            if row[C.STATUS] not in starts:
                raise IllegalTransition(f"job {row[C.JOB_ID]}: cannot {name} a job that is "
                                        f"{row[C.STATUS]}")
            before = row[:]
            result = change(row, *args, **kwargs)
            if row[C.STATUS] not in ends:
                row[:] = before
                raise IllegalTransition(f"job {row[C.JOB_ID]}: {name} would end in "
                                        f"{row[C.STATUS]}")
            return result
        return checked
    return decorate


# --- the transitions ------------------------------------------------------------------------------
@transition("claim")
def claim(row: list[str], worker_id: str, claim_id: str, now: float, phone: str, run_id: str,
          max_attempts: int) -> Job:
    """A lease: a fresh claim_id that every later write must present; the attempt counts now."""
    row[C.STATUS] = Status.CLAIMED
    row[C.WORKER_ID] = worker_id
    row[C.CLAIMED_AT] = now_iso(now)
    row[C.CLAIM_ID] = claim_id
    row[C.PHASE] = Phase.CLAIMED
    row[C.ATTEMPTS] = str(as_int(row[C.ATTEMPTS]) + 1)
    row[C.MAX_ATTEMPTS] = row[C.MAX_ATTEMPTS] or str(max_attempts)
    row[C.PASS_NUMBER] = row[C.PASS_NUMBER] or "1"
    row[C.PHONE_ID] = phone
    row[C.RUN_ID] = run_id or row[C.RUN_ID]
    row[C.COMPLETED_AT] = ""
    row[C.TASK_ID] = ""          # a new attempt gets a task of its own
    return Job.from_row(row)


@transition("set_phase")
def set_phase(row: list[str], phase: str) -> None:
    """claimed -> preparing -> publishing, never back: after publishing the post may be public."""
    new = Phase(phase)
    if C.PHASES.index(new) < C.PHASES.index(row[C.PHASE] or Phase.CLAIMED):
        raise IllegalTransition(f"job {row[C.JOB_ID]} cannot go back from {row[C.PHASE]} to "
                                f"{new}")
    row[C.PHASE] = new


@transition("set_task")
def set_task(row: list[str], task_id: str) -> None:
    """The remote task that publishes this attempt: only in phase publishing (it was created
    after the phase was written), and never replaced (one attempt, one task)."""
    if (row[C.PHASE] or Phase.CLAIMED) != Phase.PUBLISHING:
        raise IllegalTransition(f"job {row[C.JOB_ID]} records a task only while publishing")
    if row[C.TASK_ID] and row[C.TASK_ID] != task_id:
        raise IllegalTransition(f"job {row[C.JOB_ID]} already has task {row[C.TASK_ID]}")
    row[C.TASK_ID] = task_id


@transition("watch")
def watch(row: list[str], watcher: str, run_id: str) -> None:
    """A publishing claim whose worker is gone but whose remote task still runs: the run's
    supervisor takes it over and watches the task. The claim stays (the account stays busy and
    counts toward its limit) until the task ends."""
    if (row[C.PHASE] or Phase.CLAIMED) != Phase.PUBLISHING:
        raise IllegalTransition(f"job {row[C.JOB_ID]} is watched only while publishing")
    row[C.WORKER_ID] = watcher
    row[C.RUN_ID] = run_id


@transition("complete")
def complete(row: list[str], now: float, video_id: str = "") -> None:
    row[C.STATUS] = Status.SUCCESS
    row[C.COMPLETED_AT] = now_iso(now)
    row[C.VIDEO_ID] = video_id or ""
    row[C.ERROR] = row[C.ERROR_TYPE] = row[C.ERROR_CATEGORY] = ""
    row[C.PHASE] = ""
    row[C.RETRY_AT] = ""


@transition("fail")
def fail(row: list[str], now: float, message: str, cls: Classification, policy: RetryPolicy,
         max_attempts: int) -> None:
    """A failed attempt: retryable ones go to `retrying` with `retry_at` and the next pass
    number while attempts and passes remain; the rest end `failed`."""
    _record_failure(row, now, message, cls, policy, max_attempts)


@transition("release")
def release(row: list[str], now: float, policy: RetryPolicy, max_attempts: int) -> None:
    """A claim given back unfinished (stop-all): before publishing the attempt did not happen,
    so it is given back too; in publishing the outcome is unknown."""
    if (row[C.PHASE] or Phase.CLAIMED) == Phase.PUBLISHING:
        _unknown_outcome(row, now, "stopped by the operator", policy, max_attempts)
        return
    attempts = as_int(row[C.ATTEMPTS]) - 1
    row[C.ATTEMPTS] = str(max(0, attempts))
    row[C.STATUS] = Status.RETRYING if (attempts > 0 or row[C.ERROR]) else Status.PENDING
    row[C.PHASE] = row[C.RETRY_AT] = ""


@transition("recover")
def recover(row: list[str], now: float, why: str, policy: RetryPolicy, max_attempts: int) -> None:
    """The claim of a worker that was lost. Before publishing the job is claimable again at once,
    the attempt counted; in publishing it fails as `outcome_unknown`: never retried
    automatically, and it uses a slot of the account's daily limit."""
    phase = row[C.PHASE] or Phase.CLAIMED
    if phase == Phase.PUBLISHING:
        _unknown_outcome(row, now, why, policy, max_attempts)
        return
    attempts = as_int(row[C.ATTEMPTS], 1)
    limit = as_int(row[C.MAX_ATTEMPTS], max_attempts)
    row[C.ERROR] = f"{why} in phase {phase}"
    row[C.ERROR_TYPE] = "worker_lost"
    row[C.ERROR_CATEGORY] = INFRASTRUCTURE
    row[C.COMPLETED_AT] = now_iso(now)
    row[C.PHASE] = ""
    row[C.RETRY_AT] = ""
    row[C.STATUS] = Status.RETRYING if attempts < limit else Status.FAILED


@transition("retry")
def retry(row: list[str]) -> None:
    """Back in the queue, due at once, with fresh attempts and passes (a job that failed in the
    last pass would otherwise get one attempt instead of its max_attempts)."""
    row[C.STATUS] = Status.RETRYING
    row[C.RETRY_AT] = ""
    row[C.ATTEMPTS] = "0"
    row[C.PASS_NUMBER] = "1"


@transition("skip")
def skip(row: list[str], now: float, reason: str) -> None:
    """Taken out of the queue for good, with the reason (its video is already posted)."""
    _skipped(row, now, reason)


@transition("withdraw")
def withdraw(row: list[str], now: float, reason: str) -> None:
    """The operator takes one job out of the queue for good, with the reason. Two failures are
    refused, being out of the queue already and holding their account back on purpose: an
    unknown outcome (it may be public: only as `failed` + `outcome_unknown` does it keep counting
    toward the account's limit and keep its video from ever being seeded again) and an account
    error (it keeps the account BLOCKED; skipped, it would let the account post again)."""
    if is_unknown_outcome(row):
        raise IllegalTransition(f"job {row[C.JOB_ID]} has an unknown outcome: it stays failed, "
                                "so it keeps counting toward its account's limit")
    if is_blocking(row):
        raise IllegalTransition(f"job {row[C.JOB_ID]} failed with an account error: it stays "
                                "failed, so its account stays blocked until it is fixed")
    _skipped(row, now, reason)


@transition("to_front")
def to_front(row: list[str]) -> None:
    """A pending job asked for first. The row itself does not change: its place in the file is
    the claim order, and the store moves it (only the status rule lives here)."""


def needs_consent(row: list[str]) -> bool:
    """Whether putting this failed job back needs the operator's explicit word: account and
    content errors repeat until fixed, and an unknown outcome may already be public (a retry
    may post it twice)."""
    return not Classification(row[C.ERROR_CATEGORY] or UNKNOWN,
                              row[C.ERROR_TYPE] or "unknown").retryable


def is_unknown_outcome(row: list[str]) -> bool:
    return row[C.STATUS] == Status.FAILED and row[C.ERROR_TYPE] == OUTCOME_UNKNOWN


def _skipped(row: list[str], now: float, reason: str) -> None:
    row[C.STATUS] = Status.SKIPPED
    row[C.ERROR] = reason
    row[C.ERROR_TYPE] = "skipped"
    row[C.ERROR_CATEGORY] = ""
    row[C.COMPLETED_AT] = now_iso(now)
    row[C.RETRY_AT] = row[C.PHASE] = ""


def _unknown_outcome(row: list[str], now: float, why: str, policy: RetryPolicy,
                     max_attempts: int) -> None:
    _record_failure(row, now, f"{why} while publishing: the post may or may not be public; "
                              "check the account, then retry it by hand",
                    Classification(UNKNOWN, OUTCOME_UNKNOWN), policy, max_attempts)


def _record_failure(row: list[str], now: float, message: str, cls: Classification,
                    policy: RetryPolicy, max_attempts: int) -> None:
    attempts = as_int(row[C.ATTEMPTS], 1)
    limit = as_int(row[C.MAX_ATTEMPTS], max_attempts)
    pass_number = as_int(row[C.PASS_NUMBER], 1)
    again = (cls.retryable and attempts < attempts_allowed(cls.category, limit)
             and pass_number < policy.max_passes)
    row[C.ERROR] = message
    row[C.ERROR_TYPE] = cls.error_type
    row[C.ERROR_CATEGORY] = cls.category
    row[C.COMPLETED_AT] = now_iso(now)
    row[C.PHASE] = ""
    if again:
        row[C.STATUS] = Status.RETRYING
        row[C.RETRY_AT] = now_iso(now + policy.retry_delay_s)
        row[C.PASS_NUMBER] = str(pass_number + 1)
    else:
        row[C.STATUS] = Status.FAILED
        row[C.RETRY_AT] = ""
