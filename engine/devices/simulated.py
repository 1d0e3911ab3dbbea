"""Simulated phones: boot and post times and failures from campaign.json's `simulation` block.

Deterministic: whether an attempt fails depends only on the seed, the job and the attempt number,
so a run can be replayed. It goes through exactly the same worker code as the real backends.
"""
from __future__ import annotations

import logging
import random
import re
import threading
import time
import zlib
from typing import Callable
from xml.sax.saxutils import quoteattr

from ..errors import PostError
from ..evidence import PAGE_FILE, SCREEN_FILE, annotate_step, png_from_rgb, write_file
from ..settings import Simulation
from .base import PhoneBackend, PostRequest, WorkerSlot

log = logging.getLogger("postdeck.simulated")

# Transient errors a real farm sees; each is classified by message like a real one.
TRANSIENT_ERRORS = (
    "adb timeout while pushing the video",
    "UiAutomator2 instrumentation process is not running",
    "element not found: com.instagram.android:id/share_button",
    "network error while uploading",
)

# A simulated failure happens just before the share tap (the post never goes public).
FAILED_STEP = "share"
SCREEN_SIZE = (90, 160)
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def simulated_screen(job_id: str) -> bytes:
    """The PNG a simulated phone "shows" when an attempt fails: a colour of the job's own with a
    red band across the middle."""
    width, height = SCREEN_SIZE
    crc = zlib.crc32(job_id.encode("utf-8", "surrogatepass"))
    base = bytes(64 + ((crc >> shift) & 0xFF) // 2 for shift in (16, 8, 0))
    red = bytes((220, 30, 30))
    band = range(height * 2 // 5, height * 3 // 5)
    return png_from_rgb(width, height,
                        b"".join((red if y in band else base) * width for y in range(height)))


def simulated_page(request: PostRequest, error: str) -> str:
    """A small view hierarchy in UiAutomator2's page-source shape, naming the error."""
    def attr(value: str) -> str:
        return quoteattr(_NOT_XML.sub("\ufffd", value))

    return ("<?xml version='1.0' encoding='UTF-8' standalone='yes' ?>\n"
            '<hierarchy index="0" class="hierarchy" rotation="0" width="1080" height="2400">\n'
            '  <node index="0" class="android.widget.FrameLayout" package="com.instagram.android" '
            f'resource-id="" text="" content-desc={attr(f"simulated phone {request.phone}")} '
            'bounds="[0,0][1080,2400]">\n'
            '    <node index="0" class="android.widget.TextView" package="com.instagram.android" '
            f'resource-id="postdeck:id/simulated_account" text={attr(request.account)} '
            'content-desc="" bounds="[40,120][1040,200]" />\n'
            '    <node index="1" class="android.widget.TextView" package="com.instagram.android" '
            f'resource-id="postdeck:id/simulated_error" text={attr(error)} content-desc="" '
            'bounds="[40,960][1040,1440]" />\n'
            '  </node>\n'
            '</hierarchy>\n')


def _failure(request: PostRequest, exc: PostError) -> PostError:
    """`exc`, annotated with the step it failed at, after leaving the same evidence a real phone
    would (screen.png, page.xml) when the worker asked for it. Never raises."""
    annotate_step(exc, FAILED_STEP)
    folder = request.evidence_dir
    if folder is None:
        return exc
    for name, make in ((SCREEN_FILE, lambda: simulated_screen(request.job_id)),
                       (PAGE_FILE, lambda: simulated_page(request, str(exc)).encode("utf-8"))):
        try:
            write_file(folder, name, make())
        except Exception as error:  # noqa: BLE001 (evidence never replaces the attempt's error)
            log.warning("evidence for %s: could not make %s: %s: %s", request.job_id, name,
                        type(error).__name__, error)
    return exc


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
            raise _failure(request, PostError(forced))
        rng = random.Random(zlib.crc32(f"{self.sim.seed}:{request.job_id}:{attempt}".encode()))
        if rng.random() < self.sim.failure_rate:
            raise _failure(request, PostError(rng.choice(TRANSIENT_ERRORS)))
        on_publishing()
        self.sleep(self.sim.post_seconds * 0.2)
        return f"sim-{zlib.crc32(request.job_id.encode()):08x}"

    def power_off(self, phone: str) -> None:
        # The next prepare boots it again and pays boot_seconds, as a cloud phone does.
        self._booted.discard(phone)

    def stop_phones(self, phones: list[str]) -> None:
        self._booted.difference_update(phones)
