"""The worker's Appium server and session (engine/devices/appium.py), against real Appium servers
from npm on 127.0.0.1 and the fake Android phone of tests/appium_driver."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from appium_fixtures import (  # noqa: F401  (fixtures)
    appium_server, crash_caps, events, fake_caps, free_port, make_server, require_npm_appium,
)
from engine.devices.appium import (
    MARKER_ENV, AppiumServer, AppiumSession, stop_recorded_servers, uiautomator2_capabilities,
)
from engine.devices.base import WorkerSlot
from engine.devices.flow import load_flow
from engine.errors import INFRASTRUCTURE, OUTCOME_UNKNOWN, PostError, classify

CREATE = "com.instagram.android:id/creation_tab"
SHARE = "com.instagram.android:id/share_button"


def status_ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/status", timeout=2, trust_env=False).json()["value"]["ready"]
    except httpx.HTTPError:
        return False


def post(session: AppiumSession, calls: list[str] | None = None) -> None:
    calls = calls if calls is not None else []
    session.run_flow(load_flow("instagram_reel"), caption="hello", on_publishing=lambda: calls.append("publishing"))


# --------------------------------------------------------------------------- capabilities


def test_uiautomator2_capabilities_for_a_farm_phone():
    caps = uiautomator2_capabilities("10.0.0.7:5555", 8210, mjpeg_server_port=8211,
                                     extra={"appium:newCommandTimeout": 120})
    assert caps["platformName"] == "Android"
    assert caps["appium:automationName"] == "UiAutomator2"
    assert caps["appium:udid"] == "10.0.0.7:5555"
    assert caps["appium:systemPort"] == 8210
    assert caps["appium:mjpegServerPort"] == 8211
    assert caps["appium:noReset"] is True and caps["appium:fullReset"] is False
    assert caps["appium:newCommandTimeout"] == 120
    assert caps["appium:adbExecTimeout"] >= 60_000
    assert caps["appium:uiautomator2ServerInstallTimeout"] >= 120_000
    assert caps["appium:uiautomator2ServerLaunchTimeout"] >= 120_000
    assert caps["appium:skipDeviceInitialization"] is True
    assert all(k == "platformName" or k.startswith("appium:") for k in caps)


def test_server_capabilities_use_the_workers_own_ports(tmp_path: Path):
    slot = WorkerSlot.for_index(2, tmp_path / "logs")
    server = AppiumServer.for_slot(slot, tmp_path / "appium")
    assert server.port == 4727 and server.url == "http://127.0.0.1:4727"
    caps = server.capabilities("phone-2")
    assert (caps["appium:systemPort"], caps["appium:mjpegServerPort"], caps["appium:chromedriverPort"]) == (
        8220, 8221, 8222)
    assert server.log_file == tmp_path / "logs" / "appium-worker2.log"


def test_missing_appium_says_how_to_install(tmp_path: Path):
    server = AppiumServer(free_port(), (9000, 9009), tmp_path / "a.log", base_dir=tmp_path)
    with pytest.raises(PostError, match=r"npm ci") as info:
        server.start()
    assert info.value.error_type == "appium_not_installed"
    assert info.value.category == INFRASTRUCTURE


# --------------------------------------------------------------------------- the server


@pytest.mark.appium
def test_server_starts_answers_and_stops(tmp_path: Path):
    server = make_server(tmp_path)
    server.ensure_running()
    try:
        assert status_ready(server.port)
        record = json.loads(server.pidfile.read_text())
        assert record["pid"] == server.pid
        assert record["create_time"] == pytest.approx(psutil.Process(server.pid).create_time())
        assert psutil.Process(server.pid).environ()[MARKER_ENV] == server.marker
        assert "Appium REST http interface listener started" in server.log_file.read_text()
        first_pid = server.pid
        server.ensure_running()  # healthy: nothing to do
        assert server.pid == first_pid
    finally:
        server.stop()
    assert not psutil.pid_exists(first_pid) or psutil.Process(first_pid).status() == psutil.STATUS_ZOMBIE
    assert not server.pidfile.exists()
    assert not status_ready(server.port)


@pytest.mark.appium
def test_ensure_running_restarts_a_dead_server(tmp_path: Path):
    server = make_server(tmp_path)
    server.ensure_running()
    try:
        dead = server.pid
        os.kill(dead, signal.SIGKILL)
        server.ensure_running()
        assert server.pid != dead
        assert status_ready(server.port)
    finally:
        server.stop()


@pytest.mark.appium
@pytest.mark.parametrize("lose_pidfile", [False, True])
def test_leftover_server_of_ours_is_ended_before_a_new_one_starts(tmp_path: Path, lose_pidfile: bool):
    earlier = make_server(tmp_path)
    earlier.ensure_running()
    leftover = psutil.Process(earlier.pid)
    # The earlier run's worker died without stopping it: only the pidfile and marker remain.
    earlier._proc = None
    if lose_pidfile:
        earlier.pidfile.unlink()
    later = make_server(tmp_path, port=earlier.port)
    try:
        later.ensure_running()
        assert not leftover.is_running() or leftover.status() == psutil.STATUS_ZOMBIE
        assert later.pid != leftover.pid
        assert status_ready(later.port)
        assert json.loads(later.pidfile.read_text())["pid"] == later.pid
    finally:
        later.stop()
        if leftover.is_running():
            leftover.kill()


@pytest.mark.appium
def test_foreign_process_on_the_port_is_left_alone(tmp_path: Path):
    require_npm_appium()
    port = free_port()
    server = make_server(tmp_path, port=port)
    foreign = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not any(c.laddr.port == port for c in psutil.Process(foreign.pid).net_connections()):
            assert time.monotonic() < deadline, "the foreign server did not start"
            time.sleep(0.05)
        with pytest.raises(PostError) as info:
            server.ensure_running()
        assert info.value.error_type == "appium_port_busy"
        assert info.value.category == INFRASTRUCTURE
        assert f"port {port}" in str(info.value) and f"pid {foreign.pid}" in str(info.value)
        assert "http.server" in str(info.value)
        assert foreign.poll() is None
        assert server.pid is None
    finally:
        server.stop()
        foreign.kill()
        foreign.wait()


@pytest.mark.appium
def test_another_campaigns_appium_on_the_port_is_left_alone(tmp_path: Path):
    other = make_server(tmp_path / "other-campaign")
    other.ensure_running()
    try:
        ours = make_server(tmp_path / "this-campaign", port=other.port)
        with pytest.raises(PostError) as info:
            ours.ensure_running()
        assert info.value.error_type == "appium_port_busy"
        assert other.is_healthy()
    finally:
        other.stop()


@pytest.mark.appium
def test_stop_recorded_servers_ends_only_ours(tmp_path: Path):
    server = make_server(tmp_path)
    server.ensure_running()
    pid = server.pid
    # A stale pidfile whose pid now belongs to somebody else (here: this test process).
    (tmp_path / "appium-1.json").write_text(json.dumps({"pid": os.getpid(), "create_time": 1.0}))
    try:
        assert stop_recorded_servers(tmp_path) == [pid]
        assert server.wait_exit(timeout=10) is not None
        assert not status_ready(server.port)
        assert list(tmp_path.glob("appium-*.json")) == []
    finally:
        server.stop()


# --------------------------------------------------------------------------- the session


@pytest.mark.appium
def test_server_killed_mid_job_is_an_infrastructure_error(tmp_path: Path):
    server = make_server(tmp_path)
    server.ensure_running()
    # The editor never finishes loading, so the flow is still waiting when the server dies.
    session = AppiumSession.on(server, fake_caps(server, screenOverrides={"reel_editor": "loading"}))
    killer = threading.Timer(1.5, os.kill, (server.pid, signal.SIGKILL))
    calls: list[str] = []
    started = time.monotonic()
    killer.start()
    try:
        with pytest.raises(PostError) as info:
            post(session, calls)
        assert time.monotonic() - started < 10
        assert info.value.error_type == "appium_unreachable"
        assert info.value.category == INFRASTRUCTURE
        assert classify(info.value).retryable
        assert "exited with code -9" in str(info.value)
        assert calls == []
        # The next job's prepare() brings it back.
        server.ensure_running()
        assert status_ready(server.port)
    finally:
        killer.cancel()
        session.quit()
        server.stop()


@pytest.mark.appium
def test_no_server_is_appium_unreachable():
    session = AppiumSession(f"http://127.0.0.1:{free_port()}", {"platformName": "Android"})
    with pytest.raises(PostError) as info:
        post(session)
    assert info.value.error_type == "appium_unreachable"
    assert info.value.category == INFRASTRUCTURE


@pytest.mark.appium
def test_uiautomator2_crash_is_recovered_once(appium_server: AppiumServer):
    calls: list[str] = []
    with AppiumSession.on(appium_server, crash_caps(appium_server, on=CREATE, times=1)) as session:
        post(session, calls)
        assert session.recreated == 1
        assert calls == ["publishing"]
        # The new session walked the whole flow from the start.
        seen = events(session)
        assert seen[-2:] == [f"tap:{SHARE}", "screen:shared"]
        assert f"tap:{CREATE}" in seen


@pytest.mark.appium
def test_uiautomator2_crashing_again_is_appium_crash(appium_server: AppiumServer):
    calls: list[str] = []
    with AppiumSession.on(appium_server, crash_caps(appium_server, on=CREATE, times=2)) as session:
        with pytest.raises(PostError) as info:
            post(session, calls)
        assert session.recreated == 1
    assert info.value.error_type == "appium_crash"
    assert info.value.category == INFRASTRUCTURE
    assert "instrumentation process is not running" in str(info.value)
    assert calls == []


@pytest.mark.appium
def test_uiautomator2_crash_after_publishing_is_not_retried(appium_server: AppiumServer):
    calls: list[str] = []
    # Crashes once only: a retry would succeed, and post a second time.
    with AppiumSession.on(appium_server, crash_caps(appium_server, on=SHARE, times=1)) as session:
        with pytest.raises(PostError) as info:
            post(session, calls)
        assert session.recreated == 0
    assert info.value.error_type == OUTCOME_UNKNOWN
    assert not classify(info.value).retryable
    assert calls == ["publishing"]


@pytest.mark.appium
def test_other_driver_errors_pass_through(appium_server: AppiumServer):
    from selenium.common.exceptions import NoSuchElementException

    with AppiumSession.on(appium_server, fake_caps(appium_server)) as session:
        with pytest.raises(NoSuchElementException):
            session.run(lambda d: d.find_element("id", "no-such-thing"))
        assert session.recreated == 0
