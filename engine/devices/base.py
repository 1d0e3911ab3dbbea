"""The interface every phone backend implements (simulated, geelark, adb).

The worker loop calls only these methods, so the simulated backend exercises exactly the code
path the real ones do. Failures are raised as `engine.errors.PostError` (with `error_type` when
the backend knows it) or any other exception, which is classified by its message.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
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
