"""The interface every phone backend implements (simulated, geelark, adb).

The worker loop calls only these methods, so the simulated backend exercises exactly the code
path the real ones do. Failures are raised as `engine.errors.PostError` (with `error_type` when
the backend knows it) or any other exception, which is classified by its message.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Callable

APPIUM_BASE_PORT = 4723
SYSTEM_PORT_BASE = 8200
SYSTEM_PORTS_PER_WORKER = 10


@dataclass(frozen=True)
class WorkerSlot:
    """The ports and files that belong to one worker. Worker i gets Appium port 4723 + 2*i and the
    systemPort range 8200 + 10*i .. +9, so no two workers on a host ever share a port."""

    worker_id: int
    appium_port: int
    system_port_start: int
    system_port_end: int
    log_dir: Path

    @classmethod
    def for_index(cls, worker_id: int, log_dir: Path) -> "WorkerSlot":
        # The bases move only for tests beside a live farm (which owns 4723 and 8200 up).
        appium_base = int(os.environ.get("POSTDECK_APPIUM_BASE_PORT", APPIUM_BASE_PORT))
        system_base = int(os.environ.get("POSTDECK_SYSTEM_PORT_BASE", SYSTEM_PORT_BASE))
        start = system_base + SYSTEM_PORTS_PER_WORKER * worker_id
        return cls(
            worker_id=worker_id,
            appium_port=appium_base + 2 * worker_id,
            system_port_start=start,
            system_port_end=start + SYSTEM_PORTS_PER_WORKER - 1,
            log_dir=Path(log_dir),
        )


@dataclass(frozen=True)
class PostRequest:
    job_id: str
    account: str
    phone: str
    video_path: Path
    caption: str
    # Where a failed attempt leaves its last screen (screen.png, page.xml); None: nowhere.
    evidence_dir: Path | None = None
    claim_id: str = ""        # with job_id, names a platform task so it can be found again
    # A backend that hands the post to a remote task (geelark-task) reports the task's id here
    # right after creating it, so the id is on disk before the post can be public.
    on_task: Callable[[str], None] | None = None


class TaskState(StrEnum):
    """What became of a remote publishing task, as its service reports it."""
    SUCCESS = "success"       # posted: record the success (the post's link as its video id)
    FAILED = "failed"         # ended without posting: record the failure, classified
    RUNNING = "running"       # waiting or in progress: keep watching it
    MISSING = "missing"       # no such task: the outcome cannot be known


@dataclass(frozen=True)
class TaskOutcome:
    state: TaskState
    task_id: str = ""
    video_id: str = ""                 # the post's share link, when it posted
    error: str = ""                    # why it failed
    category: str = ""                 # engine/errors.py category of the failure
    error_type: str = ""


class PhoneBackend(ABC):
    """One instance per worker process (created after spawn), except `list_phones` and
    `stop_phones`, which the supervisor may call on an instance of its own."""

    name: str = "base"

    @abstractmethod
    def list_phones(self) -> list[str]:
        """Names of the phones this backend can drive (used to validate `--phones`)."""

    def check(self) -> None:
        """Before a run starts: raise PostError when a tool this backend needs is missing, so
        the run is refused at once instead of failing every job."""

    @abstractmethod
    def prepare(self, phone: str, slot: WorkerSlot) -> None:
        """Make the phone ready to post: boot it, connect ADB, make sure the worker's Appium
        server is up. Idempotent: called before every job."""

    @abstractmethod
    def post(self, request: PostRequest, slot: WorkerSlot,
             on_publishing: Callable[[], None]) -> str | None:
        """Post one video. Must call `on_publishing()` right before the step that makes the post
        public, and must not take that step if `on_publishing` raises (the claim was lost).
        Returns the platform's id of the new post when it is known."""

    def shutdown(self, slot: WorkerSlot) -> None:
        """The worker is leaving: stop what it started for itself (its Appium server)."""

    def power_off(self, phone: str) -> None:
        """Turn one phone off after its work (cloud phones bill by the minute); the worker's own
        servers stay up for its next phone. A no-op where the backend cannot power phones."""

    def stop_phones(self, phones: list[str]) -> None:
        """Stop-all: power the campaign's phones down where the backend can."""

    # --- remote tasks (geelark-task): a post whose worker died can be looked up -------------------
    def find_task(self, job_id: str, claim_id: str, task_id: str) -> TaskOutcome | None:
        """What became of the task of this job's claim (`task_id` may be "" when the worker died
        before it could record it: the task is then looked up by its name). None: this backend
        has no tasks, so a lost post stays an unknown outcome."""
        return None

    def cancel_task(self, task_id: str) -> bool:
        """Cancel a task that has not started (stop-all); True when it is cancelled, so the job
        never posted. A running task is not cancelled: it may be publishing."""
        return False
