"""Fixtures and helpers for the tests that run a real Appium server from npm.

The phone is tests/appium_driver (a fake Android driver on @appium/fake-driver), which `npm ci`
at the repo root installs into the repo's APPIUM_HOME. Imported by the test modules (the lead
owns tests/conftest.py).
"""
from __future__ import annotations

import atexit
import socket
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from engine.devices.appium import REPO_ROOT, AppiumServer, AppiumSession

FAKE_AUTOMATION = "PostdeckFake"
FAKE_DRIVER_PACKAGE = REPO_ROOT / "node_modules" / "postdeck-fake-android-driver" / "package.json"
APPIUM_BIN = REPO_ROOT / "node_modules" / ".bin" / "appium"
FIRST_TEST_PORT = 4890  # far from the farm's 4723 + 2*i, so a running farm is never disturbed


def require_npm_appium() -> None:
    """Fail (never skip) when the npm side is missing: these tests are the only check of it."""
    missing = [str(p) for p in (APPIUM_BIN, FAKE_DRIVER_PACKAGE) if not p.exists()]
    if missing:
        pytest.fail(f"Appium from npm is not installed (missing {', '.join(missing)}). "
                    f"Install it with `npm ci` in {REPO_ROOT} (`make test` does this).", pytrace=False)


_handed_out: set[int] = set()


def free_port(start: int = FIRST_TEST_PORT) -> int:
    """A port nobody listens on, from `start` up, never the same twice in one test run."""
    for port in range(start, start + 200):
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {start}..{start + 199}")


_made: list[AppiumServer] = []


@atexit.register
def _stop_all_made() -> None:
    # Servers run in their own session and would outlive a test run that failed half-way.
    for server in _made:
        server.stop()


def make_server(state_dir: Path, port: int | None = None, **kwargs: Any) -> AppiumServer:
    require_npm_appium()
    port = port or free_port()
    server = AppiumServer(port, (9300 + (port % 100) * 10, 9309 + (port % 100) * 10),
                          state_dir / f"appium-{port}.log", state_dir=state_dir, **kwargs)
    _made.append(server)
    return server


def fake_caps(server: AppiumServer, start_screen: str = "home", **extra: Any) -> dict[str, Any]:
    """The real UiAutomator2 capabilities of the server's worker, pointed at the fake phone."""
    caps = {"appium:automationName": FAKE_AUTOMATION, "appium:startScreen": start_screen}
    caps.update({f"appium:{k}": v for k, v in extra.items()})
    return server.capabilities("fake-phone-1", extra=caps)


def crash_caps(server: AppiumServer, on: str, times: int) -> dict[str, Any]:
    """Caps whose session "crashes" UiAutomator2 when `on` is tapped, `times` sessions in all."""
    return fake_caps(server, crashOn=on, crashTimes=times, crashKey=uuid.uuid4().hex)


def events(session: AppiumSession) -> list[str]:
    return list(session.driver.execute_script("postdeck: events"))


def screen(session: AppiumSession) -> str:
    return session.driver.execute_script("postdeck: screen")


@pytest.fixture(scope="session")
def appium_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppiumServer]:
    """One server shared by the tests that do not kill or replace it."""
    server = make_server(tmp_path_factory.mktemp("appium-shared"))
    server.ensure_running()
    yield server
    server.stop()


@pytest.fixture
def session_for(appium_server: AppiumServer) -> Iterator[Any]:
    """session_for(start_screen, **caps) -> AppiumSession on the shared server, quit afterwards."""
    sessions: list[AppiumSession] = []

    def open_session(start_screen: str = "home", **extra: Any) -> AppiumSession:
        session = AppiumSession.on(appium_server, fake_caps(appium_server, start_screen, **extra))
        sessions.append(session)
        return session

    yield open_session
    for session in sessions:
        session.quit()
