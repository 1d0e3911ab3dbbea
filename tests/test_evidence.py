"""Evidence of failed attempts (engine/evidence.py): the last screen and page source a real Appium
session leaves (a real server from npm, the fake Android phone of tests/appium_driver), a capture
that hangs, the simulated backend's files, step.txt, pruning, and the console's job detail."""
from __future__ import annotations

import io
import logging
import os
import struct
import sys
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Any

import av
import pytest

from appium_fixtures import (  # noqa: F401  (fixtures)
    FAKE_AUTOMATION, appium_server, crash_caps, fake_caps, free_port, require_npm_appium,
    session_for,
)
from console.screens.job_detail import JobDetailScreen

# The console tests' builders (tests/console is not on the path of the tests at this level).
sys.path.insert(0, str(Path(__file__).resolve().parent / "console"))
from console_fixtures import (  # noqa: E402,F401 (fixtures used by name)
    async_test, fake_alive, frozen_clock, frozen_dir, next_frame, screen_text, wait_until)
from engine.context import PostingContext
from engine.devices.appium import AppiumSession
from engine.devices.base import PostRequest, WorkerSlot
from engine.devices.flow import load_flow
from engine.devices.real import RealBackend
from engine.devices.simulated import SimulatedBackend
from engine.errors import PostError
from engine.evidence import (
    CAPTURE_SECONDS, PAGE_FILE, SCREEN_FILE, STEP_FILE, Attempt, attempt_dir, capture_driver,
    evidence_root, failed_step, png_from_rgb, prune, read_evidence, safe_name, write_step,
)
from engine.settings import Simulation

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CREATE = "com.instagram.android:id/creation_tab"
DAY = 86_400.0


def decode_png(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG, checked three ways: signature, IHDR and a full decode by FFmpeg."""
    assert data[:8] == PNG_SIGNATURE, data[:16]
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR")
    width, height = struct.unpack(">II", data[16:24])
    assert zlib.crc32(data[12:29]) == struct.unpack(">I", data[29:33])[0], "IHDR checksum"
    with av.open(io.BytesIO(data), format="png_pipe") as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (width, height)
    return width, height


# --------------------------------------------------------------------------- a real session


class StubAdb:
    """What RealBackend needs of adb for one post: the video is "pushed" and removed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    def push_media(self, serial: str, path: Path) -> str:
        self.calls.append(("push", serial, path.name))
        return f"/sdcard/DCIM/{path.name}"

    def remove_media(self, serial: str, remote: str) -> None:
        self.calls.append(("rm", serial, remote))


class StubPhones:
    def list_phones(self) -> list[str]:
        return ["fake-phone-1"]

    def connect(self, phone: str, adb: Any) -> str:
        return "fake-phone-1"

    def stop(self, phones: list[str]) -> None:
        pass


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory):
    """A RealBackend (its own Appium server from npm, the fake phone) whose phone shows the
    "suspended" screen, so every post fails on the open_app step."""
    require_npm_appium()
    tmp = tmp_path_factory.mktemp("real-backend")
    port = free_port()
    slot = WorkerSlot(0, port, 9600 + (port % 40) * 10, 9609 + (port % 40) * 10, tmp / "logs")
    real = RealBackend("adb", StubPhones(), StubAdb(), tmp / "appium", "instagram_reel",
                       {"appium:automationName": FAKE_AUTOMATION, "appium:startScreen": "suspended"})
    real.prepare("fake-phone-1", slot)
    video = tmp / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    yield real, slot, video
    real.shutdown(slot)


def request(video: Path, evidence_dir: Path | None) -> PostRequest:
    return PostRequest("clip.mp4_c", "alice", "fake-phone-1", video, "hello", evidence_dir)


@pytest.mark.appium
def test_failing_flow_leaves_the_sessions_screenshot_and_page_source(session_for, tmp_path):
    """The files are exactly what the session returns, the error is the flow's own."""
    session = session_for("suspended")
    folder = tmp_path / "ev" / "1"
    with pytest.raises(PostError) as info:
        try:
            session.run_flow(load_flow("instagram_reel"), caption="hi", on_publishing=lambda: None)
        except PostError:
            assert session.capture_evidence(folder, label="job-1") == [SCREEN_FILE, PAGE_FILE]
            raise
    assert info.value.error_type == "suspended"
    assert failed_step(info.value) == "open_app"
    screen = (folder / SCREEN_FILE).read_bytes()
    assert decode_png(screen) == (400, 852)       # the fake phone's screenshot
    assert screen == session.driver.get_screenshot_as_png()
    page = (folder / PAGE_FILE).read_text(encoding="utf-8")
    assert page == session.driver.page_source
    assert "We suspended your account" in page


@pytest.mark.appium
def test_real_backend_post_saves_evidence_and_keeps_its_error(backend, session_for, tmp_path):
    real, slot, video = backend
    folder = tmp_path / "state" / "evidence" / "clip.mp4_c" / "1"
    with pytest.raises(PostError) as info:
        real.post(request(video, folder), slot, lambda: pytest.fail("never publishes"))
    assert type(info.value) is PostError and info.value.error_type == "suspended"
    assert failed_step(info.value) == "open_app"
    assert sorted(os.listdir(folder)) == [PAGE_FILE, SCREEN_FILE]
    # The same screen a session on that phone shows.
    reference = session_for("suspended")
    reference.driver.activate_app("com.instagram.android")
    assert (folder / SCREEN_FILE).read_bytes() == reference.driver.get_screenshot_as_png()
    decode_png((folder / SCREEN_FILE).read_bytes())
    assert (folder / PAGE_FILE).read_text(encoding="utf-8") == reference.driver.page_source
    ET.fromstring((folder / PAGE_FILE).read_bytes())


@pytest.mark.appium
def test_real_backend_without_an_evidence_dir_writes_nothing(backend, tmp_path):
    real, slot, video = backend
    with pytest.raises(PostError, match="suspended"):
        real.post(request(video, None), slot, lambda: None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.appium
def test_a_crash_that_ended_the_session_leaves_no_screen_and_names_the_step(appium_server, tmp_path):
    """UiAutomator2 crashed twice: the session is gone, so nothing is captured (and no new
    session is opened to do it); the step still travels through the wrapping PostError."""
    with AppiumSession.on(appium_server, crash_caps(appium_server, on=CREATE, times=2)) as session:
        with pytest.raises(PostError) as info:
            session.run_flow(load_flow("instagram_reel"), caption="hi", on_publishing=lambda: None)
        assert session.capture_evidence(tmp_path / "ev") == []
        assert session._driver is None, "capturing must not open a session"
    assert info.value.error_type == "appium_crash"
    assert getattr(info.value, "postdeck_step", None) is None
    assert failed_step(info.value) == "new_post"
    assert not (tmp_path / "ev").exists()


# --------------------------------------------------------------------------- a capture that hangs


class HangingDriver:
    """A driver whose screenshot (or page source) never returns until released."""

    def __init__(self, hang: str) -> None:
        self.hang = hang
        self.release = threading.Event()

    def get_screenshot_as_png(self) -> bytes:
        if self.hang == "screenshot":
            self.release.wait(60)
        return png_from_rgb(2, 2, b"\xff\x00\x00" * 4)

    @property
    def page_source(self) -> str:
        if self.hang == "page":
            self.release.wait(60)
        return "<hierarchy/>"


@pytest.mark.parametrize("hang, kept", [("screenshot", []), ("page", [SCREEN_FILE])])
def test_a_hanging_capture_is_left_behind_within_its_bound(tmp_path, caplog, hang, kept):
    driver = HangingDriver(hang)
    try:
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="postdeck.evidence"):
            written = capture_driver(driver, tmp_path / "ev", timeout=1.0, label="job-h")
        took = time.monotonic() - started
    finally:
        driver.release.set()
    assert 0.9 <= took < 3.0, took
    assert written == kept
    folder = tmp_path / "ev"
    assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else []) == kept
    assert "did not return within" in caplog.text


def test_a_failing_capture_is_logged_and_the_rest_is_still_saved(tmp_path, caplog):
    class Broken:
        def get_screenshot_as_png(self) -> bytes:
            raise RuntimeError("screenshot exploded")

        page_source = "<hierarchy/>"

    with caplog.at_level(logging.WARNING, logger="postdeck.evidence"):
        assert capture_driver(Broken(), tmp_path / "ev") == [PAGE_FILE]
    assert "screenshot exploded" in caplog.text
    assert (tmp_path / "ev" / PAGE_FILE).read_text() == "<hierarchy/>"


@pytest.mark.appium
def test_real_backend_with_a_hanging_screenshot_returns_within_10s_with_its_error(
        backend, tmp_path, monkeypatch):
    """The driver's screenshot never returns (the WebDriver method of the real client is made to
    block): post() still raises the flow's own error, about CAPTURE_SECONDS later."""
    from appium.webdriver.webdriver import WebDriver

    real, slot, video = backend
    release = threading.Event()
    entered = threading.Event()

    def never_returns(self) -> bytes:
        entered.set()
        release.wait(120)
        return b""

    monkeypatch.setattr(WebDriver, "get_screenshot_as_png", never_returns)
    folder = tmp_path / "ev"
    try:
        started = time.monotonic()
        with pytest.raises(PostError) as info:
            real.post(request(video, folder), slot, lambda: None)
        took = time.monotonic() - started
    finally:
        release.set()
    assert entered.is_set()
    assert info.value.error_type == "suspended"
    assert CAPTURE_SECONDS - 0.5 <= took < CAPTURE_SECONDS + 5, took
    assert not (folder / SCREEN_FILE).exists()


# --------------------------------------------------------------------------- the simulated backend


def simulated_post(tmp_path: Path, evidence_dir: Path | None, **sim: Any) -> PostError:
    backend = SimulatedBackend(["p1"], Simulation(**{"boot_seconds": 0, "post_seconds": 0, **sim}),
                               sleep=lambda s: None)
    slot = WorkerSlot.for_index(0, tmp_path / "logs")
    backend.prepare("p1", slot)
    with pytest.raises(PostError) as info:
        backend.post(PostRequest("v001.mp4_c", "alice", "p1", tmp_path / "v.mp4", "hi", evidence_dir),
                     slot, lambda: pytest.fail("a failing post never publishes"))
    return info.value


@pytest.mark.parametrize("sim, message", [
    ({"failures": {"alice": "account suspended <really> & \"truly\""}},
     "account suspended <really> & \"truly\""),
    ({"failure_rate": 1.0}, None),
])
def test_simulated_failure_writes_screen_and_page(tmp_path, sim, message):
    folder = tmp_path / "evidence" / "v001.mp4_c" / "1"
    exc = simulated_post(tmp_path, folder, **sim)
    if message is not None:
        assert str(exc) == message
    assert failed_step(exc) == "share"
    assert sorted(os.listdir(folder)) == [PAGE_FILE, SCREEN_FILE]
    assert decode_png((folder / SCREEN_FILE).read_bytes()) == (90, 160)
    root = ET.fromstring((folder / PAGE_FILE).read_bytes())
    assert root.tag == "hierarchy"
    texts = [node.get("text") for node in root.iter("node")]
    assert str(exc) in texts, "the page names the error"


def test_simulated_screen_has_a_colour_of_the_job_and_a_red_band(tmp_path):
    from engine.devices.simulated import simulated_screen

    def pixels(job_id: str) -> bytes:
        with av.open(io.BytesIO(simulated_screen(job_id)), format="png_pipe") as container:
            frame = next(container.decode(video=0)).reformat(format="rgb24")
        plane = frame.planes[0]
        raw = bytes(plane)
        return b"".join(raw[y * plane.line_size:y * plane.line_size + 90 * 3] for y in range(160))

    a, b = pixels("job-a"), pixels("job-b")
    top = lambda px: px[:3]                       # noqa: E731
    middle = lambda px: px[80 * 90 * 3:80 * 90 * 3 + 3]  # noqa: E731
    assert top(a) != top(b)
    assert middle(a) == middle(b) == bytes((220, 30, 30))


def test_simulated_failure_without_an_evidence_dir_writes_nothing(tmp_path):
    exc = simulated_post(tmp_path, None, failure_rate=1.0)
    assert failed_step(exc) == "share"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_simulated_evidence_that_cannot_be_written_keeps_the_error(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING):
        exc = simulated_post(tmp_path, blocker / "1", failures={"alice": "account suspended"})
    assert str(exc) == "account suspended"
    assert "could not write evidence" in caplog.text


# --------------------------------------------------------------------------- step.txt and reading


ODD_IDS = ["clip.mp4_c", "../../etc/passwd", "a/b", "a_b", ".hidden", "..", ".", "",
           "with space\nand newline", "ünï 🎬.mp4", "x" * 300, "C:\\win\\path", "nul\0byte"]


def test_attempt_dirs_stay_inside_evidence_and_never_collide(tmp_path):
    state = tmp_path / ".postdeck"
    root = evidence_root(state).resolve()
    folders = [attempt_dir(state, job_id, 2) for job_id in ODD_IDS]
    for job_id, folder in zip(ODD_IDS, folders):
        assert folder.parent.parent == evidence_root(state)
        assert folder.name == "2"
        name = folder.parent.name
        assert name not in ("", ".", "..") and not name.startswith(".")
        assert "/" not in name and "\\" not in name and "\0" not in name and len(name) < 120
        assert folder.resolve().is_relative_to(root), job_id
    assert len({f.parent.name for f in folders}) == len(ODD_IDS)
    assert safe_name("clip_006.mp4_spring") == "clip_006.mp4_spring"
    with pytest.raises(ValueError):
        attempt_dir(state, "j", -1)


def test_read_evidence_reads_what_write_step_wrote(tmp_path):
    state = tmp_path / ".postdeck"
    job_id = "../odd/job: id"
    error = "Appium on port 4723 exited\n  its log ends with:\nline: two\n\n"
    for attempt, step in ((2, None), (1, "share"), (10, "caption")):
        folder = attempt_dir(state, job_id, attempt)
        write_step(folder, step=step, error=error if attempt == 1 else f"error {attempt}",
                   at=f"2025-06-15T12:0{attempt % 10}:00+00:00", job_id=job_id, account="alice",
                   phone="p1", attempt=attempt)
    (attempt_dir(state, job_id, 1) / SCREEN_FILE).write_bytes(b"png")
    (attempt_dir(state, job_id, 1) / PAGE_FILE).write_text("<hierarchy/>")
    (attempt_dir(state, job_id, 1).parent / "notes").mkdir()       # not an attempt: ignored
    got = read_evidence(state, job_id)
    assert [a.attempt for a in got] == [1, 2, 10]
    assert got[0] == Attempt(1, attempt_dir(state, job_id, 1), [PAGE_FILE, SCREEN_FILE, STEP_FILE],
                             "share", error, "2025-06-15T12:01:00+00:00")
    assert got[1].step is None and got[1].error == "error 2" and got[1].files == [STEP_FILE]
    assert got[2].step == "caption"
    text = (attempt_dir(state, job_id, 1) / STEP_FILE).read_text()
    assert "step: share\n" in text and "account: alice\n" in text and "attempt: 1\n" in text
    assert [p.name for p in attempt_dir(state, job_id, 1).iterdir() if p.name.startswith(".")] == []
    assert read_evidence(state, "no-such-job") == []


def test_write_step_never_raises_on_oserror(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.WARNING, logger="postdeck.evidence"):
        write_step(blocker / "1", step="share", error="boom", at="now", job_id="j",
                   account="a", phone="p", attempt=1)
    assert "could not write evidence" in caplog.text


def test_failed_step_follows_the_chain_and_keeps_the_innermost():
    inner = ValueError("driver said no")
    inner.postdeck_step = "caption"
    try:
        try:
            raise inner
        except ValueError as exc:
            raise PostError("wrapped") from exc
    except PostError as outer:
        assert failed_step(outer) == "caption"
    assert failed_step(PostError("plain")) is None


# --------------------------------------------------------------------------- pruning


def age(path: Path, days: float, now: float) -> None:
    os.utime(path, (now - days * DAY, now - days * DAY), follow_symlinks=False)


def test_prune_removes_only_old_attempt_folders_inside_evidence(tmp_path):
    now = time.time()
    state = tmp_path / ".postdeck"
    outside = tmp_path / "outside"
    (outside / "1").mkdir(parents=True)
    (outside / "precious.txt").write_text("keep")
    (outside / "1" / "screen.png").write_text("keep")
    age(outside / "precious.txt", 100, now)
    age(outside / "1" / "screen.png", 100, now)
    (state / "keep.txt").parent.mkdir(parents=True)
    (state / "keep.txt").write_text("outside evidence/")
    age(state / "keep.txt", 100, now)

    def attempt(job: str, n: int, days_old: float) -> Path:
        folder = attempt_dir(state, job, n)
        write_step(folder, step="s", error="e", at="t", job_id=job, account="a", phone="p", attempt=n)
        (folder / SCREEN_FILE).write_bytes(b"png")
        for f in folder.iterdir():
            age(f, days_old, now)
        return folder

    old_only = attempt("old-job", 1, 20)
    mixed_old, mixed_new = attempt("mixed", 1, 30), attempt("mixed", 2, 1)
    # an old attempt holding one recent file is kept (its newest file counts)
    fresh_inside = attempt("recent-file", 1, 40)
    (fresh_inside / "late.txt").write_text("new")
    # a symlink inside an old attempt: the link goes, its target stays
    linked = attempt("with-link", 1, 50)
    (linked / "link").symlink_to(outside / "precious.txt")
    age(linked / "link", 50, now)
    # an attempt folder that is a symlink out, and a job folder that is one: never followed
    (state / "evidence" / "mixed" / "7").symlink_to(outside / "1", target_is_directory=True)
    (state / "evidence" / "linked-job").symlink_to(outside, target_is_directory=True)
    # what is not an attempt folder stays
    stray = state / "evidence" / "old-job" / "notes"
    stray.mkdir()
    (stray / "n.txt").write_text("x")
    age(stray / "n.txt", 90, now)
    (state / "evidence" / "README").write_text("x")
    age(state / "evidence" / "README", 90, now)

    assert prune(state, 14, now) == 3
    assert not old_only.exists() and not mixed_old.exists() and not linked.exists()
    assert mixed_new.is_dir() and fresh_inside.is_dir()
    assert (state / "evidence" / "old-job").is_dir() and stray.is_dir(), "not emptied: kept"
    assert (state / "evidence" / "mixed" / "7").is_symlink()
    assert (state / "evidence" / "linked-job").is_symlink()
    assert (state / "evidence" / "README").exists() and (state / "keep.txt").exists()
    assert (outside / "precious.txt").read_text() == "keep"
    assert (outside / "1" / "screen.png").read_text() == "keep"
    assert not (state / "evidence" / "with-link").exists(), "an emptied job folder goes"
    assert prune(state, 14, now) == 0
    assert prune(state, 14, now + 30 * DAY) == 2      # a month later the rest is old too
    assert (outside / "precious.txt").exists() and (outside / "1" / "screen.png").exists()
    assert (state / "evidence" / "mixed" / "7").is_symlink()


def test_prune_never_follows_an_evidence_folder_that_is_a_symlink(tmp_path):
    now = time.time()
    elsewhere = tmp_path / "elsewhere"
    folder = elsewhere / "job" / "1"
    folder.mkdir(parents=True)
    (folder / "step.txt").write_text("x")
    age(folder / "step.txt", 100, now)
    state = tmp_path / ".postdeck"
    state.mkdir()
    (state / "evidence").symlink_to(elsewhere, target_is_directory=True)
    assert prune(state, 14, now) == 0
    assert (folder / "step.txt").exists()
    assert prune(tmp_path / "no-state", 14, now) == 0


# --------------------------------------------------------------------------- the console


@async_test
async def test_job_detail_lists_each_attempts_evidence(frozen_dir):
    from console.app import PostdeckApp

    ctx = PostingContext.for_campaign(frozen_dir, "spring")
    job_id = "clip_006.mp4_spring"
    folder = attempt_dir(ctx.state_dir, job_id, 1)
    write_step(folder, step="pick_video", error="adb: device phone-06 offline (timeout after 30s)",
               at="2025-06-15T11:53:40+00:00", job_id=job_id, account="the.snack.lab",
               phone="phone-06", attempt=1)
    (folder / SCREEN_FILE).write_bytes(png_from_rgb(2, 2, b"\0" * 12))
    (folder / PAGE_FILE).write_text("<hierarchy/>")

    app = PostdeckApp(frozen_dir, "spring", clock=frozen_clock, pid_alive=fake_alive,
                      poll_interval=3600, blink=False)
    async with app.run_test(size=(220, 60)) as pilot:
        await next_frame(pilot)
        app.dashboard.jobs.move_to_key(job_id)
        await pilot.press("enter")
        screen = await wait_until(pilot, lambda: isinstance(app.screen, JobDetailScreen)
                                  and app.screen.detail is not None and app.screen)
        await pilot.pause()
        (got,) = screen.detail.evidence
        assert got.step == "pick_video" and got.folder == folder
        text = screen_text(app)
        assert "Evidence (1)" in text
        assert "attempt 1" in text and "pick_video" in text and "2025-06-15T11:53:40+00:00" in text
        assert f"{folder}{os.sep}" in text
        assert "page.xml  screen.png  step.txt" in text
