"""Simulated phones: boot and post times and failures from campaign.json's `simulation` block.

Deterministic: whether an attempt fails depends only on the seed, the job and the attempt number,
so a run can be replayed. It goes through exactly the same worker code as the real backends.
"""
from __future__ import annotations

import random
import threading
import time
import zlib
from typing import Callable

from ..errors import PostError
from ..settings import Simulation
from .base import PhoneBackend, PostRequest, WorkerSlot

# Transient errors a real farm sees; each is classified by message like a real one.
TRANSIENT_ERRORS = (
    "adb timeout while pushing the video",
    "UiAutomator2 instrumentation process is not running",
    "element not found: com.instagram.android:id/share_button",
    "network error while uploading",
)


class SimulatedBackend(PhoneBackend):
    name = "simulated"

    def __init__(self, phones: list[str], simulation: Simulation,
                 sleep: Callable[[float], None] = time.sleep):
        self.phones = list(phones)
        self.sim = simulation
        self.sleep = sleep
        self._booted: set[str] = set()
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def list_phones(self) -> list[str]:
        return list(self.phones)

    def prepare(self, phone: str, slot: WorkerSlot) -> None:
        if phone not in self.phones:
            raise PostError(f"phone {phone} not found", error_type="device_offline")
        if phone not in self._booted:
            self.sleep(self.sim.boot_seconds)
            self._booted.add(phone)

    def post(self, request: PostRequest, slot: WorkerSlot,
             on_publishing: Callable[[], None]) -> str | None:
        with self._lock:
            attempt = self._attempts.get(request.job_id, 0) + 1
            self._attempts[request.job_id] = attempt
        # Most of a real post (open app, pick video, caption) happens before the share tap.
        self.sleep(self.sim.post_seconds * 0.8)
        forced = self.sim.failures.get(request.account)
        if forced:
            raise PostError(forced)
        rng = random.Random(zlib.crc32(f"{self.sim.seed}:{request.job_id}:{attempt}".encode()))
        if rng.random() < self.sim.failure_rate:
            raise PostError(rng.choice(TRANSIENT_ERRORS))
        on_publishing()
        self.sleep(self.sim.post_seconds * 0.2)
        return f"sim-{zlib.crc32(request.job_id.encode()):08x}"

    def stop_phones(self, phones: list[str]) -> None:
        self._booted.difference_update(phones)
