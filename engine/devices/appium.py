"""Appium for one worker: its own server process, UiAutomator2 capabilities, and a session that
survives one UiAutomator2 crash.

The server is the npm `appium` of this repository (`npm ci` at the repo root installs it, the
UiAutomator2 driver and the test drivers). Appium finds its drivers through APPIUM_HOME: when
APPIUM_HOME is a folder whose package.json depends on `appium`, every package in its node_modules
whose package.json has an `appium` driver manifest is a driver (Appium records them in
node_modules/.cache/appium/extensions.yaml and refreshes that list when package.json changes).
So APPIUM_HOME is the repo root and installing a driver is adding it to package.json.

Every server we start is marked twice so that a later run can recognise it without ever touching
somebody else's process: a pidfile `<state_dir>/appium-<port>.json` (pid + process create time)
and the environment variable POSTDECK_APPIUM_MARKER=<state_dir>#<port>. A leftover of ours on
the port is ended before a new server starts; anything else on the port is refused with
PostError(error_type="appium_port_busy") and left alone.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import re
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import urllib3
from appium import webdriver
from appium.options.common import AppiumOptions
from appium.webdriver.client_config import AppiumClientConfig
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.proxy import Proxy, ProxyType

from engine.errors import INFRASTRUCTURE, OUTCOME_UNKNOWN, UNKNOWN, PostError
from engine.evidence import CAPTURE_SECONDS, capture_driver

from .base import WorkerSlot
from .flow import Flow, run_flow

log = logging.getLogger("postdeck.appium")

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKER_ENV = "POSTDECK_APPIUM_MARKER"
INSTALL_HINT = "run `npm ci` in {base_dir} (or `make test`, which does it)"

# What a dead UiAutomator2 instrumentation looks like from the client side.
_UIA2_CRASH = re.compile(r"instrumentation process is not running|cannot be proxied", re.IGNORECASE)

T = TypeVar("T")


def _infra(message: str, error_type: str) -> PostError:
    return PostError(message, error_type=error_type, category=INFRASTRUCTURE)


# --------------------------------------------------------------------------- capabilities


def uiautomator2_capabilities(udid: str, system_port: int, *, mjpeg_server_port: int | None = None,
                              chromedriver_port: int | None = None, new_command_timeout: int = 300,
                              skip_device_initialization: bool = True,
                              extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """W3C capabilities for a UiAutomator2 session on a farm phone.

    Every port the driver forwards from the host is given explicitly from the worker's own range,
    so workers sharing a host never race for the same one. Timeouts are generous because cloud
    phones over ADB-over-network are slow to install and start the UiAutomator2 server.
    """
    caps: dict[str, Any] = {
        "platformName": "Android",
        "appium:automationName": "UiAutomator2",
        "appium:udid": udid,
        "appium:deviceName": udid,
        "appium:systemPort": system_port,
        # Keep the app's data (the logged-in account) and never reinstall anything.
        "appium:noReset": True,
        "appium:fullReset": False,
        "appium:newCommandTimeout": new_command_timeout,
        "appium:adbExecTimeout": 60_000,
        "appium:androidInstallTimeout": 180_000,
        "appium:uiautomator2ServerInstallTimeout": 120_000,
        "appium:uiautomator2ServerLaunchTimeout": 120_000,
        # A phone that already ran a session has the settings helper and permissions in place;
        # skipping that setup saves seconds per job. Pass False for a phone's first session.
        "appium:skipDeviceInitialization": skip_device_initialization,
        "appium:disableWindowAnimation": True,
        # Custom ROMs and cloud phones often refuse the hidden-API policy change; it is not needed.
        "appium:ignoreHiddenApiPolicyError": True,
        # Instagram's autoplaying previews never let the UI go idle; without this every find and
        # tap waits the default 10 s for an idle that never comes.
        "appium:settings[waitForIdleTimeout]": 100,
    }
    if mjpeg_server_port is not None:
        caps["appium:mjpegServerPort"] = mjpeg_server_port
    if chromedriver_port is not None:
        caps["appium:chromedriverPort"] = chromedriver_port
    caps.update(extra or {})
    return caps


# --------------------------------------------------------------------------- the server


class AppiumServer:
    """One Appium server on 127.0.0.1:`port`, owned by one worker.

    `state_dir` should be the campaign's `.postdeck/appium/`: it holds the pidfiles that let a
    later run find and end this server. It defaults to the log file's folder.
    """

    def __init__(self, port: int, system_port_range: tuple[int, int], log_file: str | Path,
                 appium_bin: str | Path | None = None, base_dir: str | Path = REPO_ROOT, *,
                 state_dir: str | Path | None = None, host: str = "127.0.0.1",
                 start_timeout: float = 60.0, stop_timeout: float = 10.0,
                 env: Mapping[str, str] | None = None):
        first, last = system_port_range
        if last < first + 2:
            raise ValueError(f"system_port_range {system_port_range} needs at least 3 ports "
                             "(systemPort, mjpegServerPort, chromedriverPort)")
        self.port = port
        self.system_port_range = (first, last)
        self.log_file = Path(log_file)
        self.base_dir = Path(base_dir)
        self.appium_bin = Path(appium_bin) if appium_bin else self.base_dir / "node_modules" / ".bin" / "appium"
        self.state_dir = Path(state_dir) if state_dir else self.log_file.parent
        self.host = host
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.extra_env = dict(env or {})
        self.marker = f"{self.state_dir.resolve()}#{port}"
        self.pidfile = self.state_dir / f"appium-{port}.json"
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_slot(cls, slot: WorkerSlot, state_dir: str | Path, **kwargs: Any) -> "AppiumServer":
        """The server of a worker slot: its port, its systemPort range, its log in the slot's log dir."""
        log_file = Path(slot.log_dir) / f"appium-worker{slot.worker_id}.log"
        return cls(slot.appium_port, (slot.system_port_start, slot.system_port_end), log_file,
                   state_dir=state_dir, **kwargs)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once our server has exited, waiting up to `timeout`; None if it runs on."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def capabilities(self, udid: str, **kwargs: Any) -> dict[str, Any]:
        """UiAutomator2 capabilities using this worker's ports."""
        first = self.system_port_range[0]
        return uiautomator2_capabilities(udid, first, mjpeg_server_port=first + 1,
                                         chromedriver_port=first + 2, **kwargs)

    # ----------------------------------------------------------------- lifecycle

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def is_healthy(self, timeout: float = 5.0) -> bool:
        """The server we started answers GET /status with ready: true."""
        return self.is_running() and self._status_ready(timeout)

    def ensure_running(self) -> None:
        """Make sure our server is up: start it, or restart it if it died or stopped answering."""
        if self.is_healthy():
            return
        if self._proc is not None:
            code = self._proc.poll()
            log.warning("Appium on port %d %s; restarting it", self.port,
                        f"exited with code {code}" if code is not None else "stopped answering")
            self.stop()
        self.start()

    def start(self) -> None:
        """Start a fresh server, ending a leftover of ours on the port first."""
        if self._proc is not None:
            self.stop()
        if not self.appium_bin.exists():
            raise _infra(f"Appium is not installed: {self.appium_bin} does not exist; "
                         + INSTALL_HINT.format(base_dir=self.base_dir), "appium_not_installed")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.end_leftover()

        tmp_dir = self.state_dir / f"tmp-{self.port}"
        tmp_dir.mkdir(exist_ok=True)
        command = [str(self.appium_bin), "--address", self.host, "--port", str(self.port),
                   "--log-no-colors", "--log-timestamp", "--local-timezone", "--tmp", str(tmp_dir)]
        env = {**os.environ, **self.extra_env, "APPIUM_HOME": str(self.base_dir), MARKER_ENV: self.marker}
        with open(self.log_file, "ab") as log_handle:
            log_handle.write(f"\n==== postdeck: starting Appium on {self.url} at "
                             f"{time.strftime('%Y-%m-%d %H:%M:%S')} ====\n".encode())
            log_handle.flush()
            # Its own session: a Ctrl-C or hang-up aimed at the console or worker does not reach
            # the server, and the server's own children (adb shells) die with its process group.
            self._proc = subprocess.Popen(command, cwd=self.base_dir, env=env, stdin=subprocess.DEVNULL,
                                          stdout=log_handle, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        self._write_pidfile(self._proc.pid)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        log.info("Appium %s ready (pid %d)", self.url, self._proc.pid)

    def stop(self) -> None:
        """Stop the server we started (gracefully, then by force) and forget it."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                children = psutil.Process(proc.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                children = []
            # Through Popen rather than psutil, so it reaps its own child and keeps the exit code.
            proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=self.stop_timeout)
            _kill_all(children)
        record = _read_pidfile(self.pidfile)
        if record and record.get("pid") == proc.pid:
            self.pidfile.unlink(missing_ok=True)

    def __enter__(self) -> "AppiumServer":
        self.ensure_running()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- leftovers

    def end_leftover(self) -> None:
        """End a server an earlier run of ours left on this port; refuse to touch anything else."""
        record = _read_pidfile(self.pidfile)
        if record is not None:
            proc = _verified_process(record, self.marker)
            if proc is not None:
                log.warning("ending leftover Appium (pid %d) of an earlier run on port %d", proc.pid, self.port)
                _end_process_tree(proc, self.stop_timeout)
            self.pidfile.unlink(missing_ok=True)
        if _port_is_free(self.host, self.port):
            return
        owner = _listener(self.port)
        if owner is not None and _marker_of(owner) == self.marker:
            # Ours, but its pidfile was lost (deleted folder, crash while writing it).
            log.warning("ending leftover Appium (pid %d, no pidfile) on port %d", owner.pid, self.port)
            _end_process_tree(owner, self.stop_timeout)
        else:
            raise _infra(f"port {self.port} on {self.host} is in use by {_describe(owner)}, which is not an "
                         "Appium server of this campaign; postdeck leaves it alone. Stop it or give "
                         "this worker another port.", "appium_port_busy")
        deadline = time.monotonic() + self.stop_timeout
        while not _port_is_free(self.host, self.port):
            if time.monotonic() > deadline:
                raise _infra(f"port {self.port} is still in use after ending our leftover Appium",
                             "appium_port_busy")
            time.sleep(0.1)

    # ----------------------------------------------------------------- internals

    def _status_ready(self, timeout: float) -> bool:
        try:
            # trust_env=False: a farm host's HTTP_PROXY must not swallow requests to 127.0.0.1.
            response = httpx.get(f"{self.url}/status", timeout=timeout, trust_env=False)
            return response.status_code == 200 and bool(response.json().get("value", {}).get("ready", True))
        except (httpx.HTTPError, ValueError):
            return False

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise _infra(f"Appium on port {self.port} exited with code {code} while starting; "
                             f"its log {self.log_file} ends with:\n{_tail(self.log_file)}", "appium_start_failed")
            if self._status_ready(timeout=2.0):
                return
            if time.monotonic() > deadline:
                raise _infra(f"Appium on port {self.port} did not become ready within {self.start_timeout:g}s; "
                             f"its log {self.log_file} ends with:\n{_tail(self.log_file)}", "appium_start_failed")
            time.sleep(0.1)

    def _write_pidfile(self, pid: int) -> None:
        try:
            create_time = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            return  # already gone: _wait_ready reports why
        record = {"pid": pid, "create_time": create_time, "port": self.port, "marker": self.marker,
                  "log_file": str(self.log_file), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        tmp = self.pidfile.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, self.pidfile)


def stop_recorded_servers(state_dir: str | Path, timeout: float = 10.0) -> list[int]:
    """End every Appium server recorded under `state_dir` that is still ours (for stop-all).
    Returns the pids ended."""
    ended = []
    for pidfile in sorted(Path(state_dir).glob("appium-*.json")):
        record = _read_pidfile(pidfile)
        if record is None:
            continue
        proc = _verified_process(record, str(record.get("marker", "")))
        if proc is not None:
            _end_process_tree(proc, timeout)
            ended.append(proc.pid)
        pidfile.unlink(missing_ok=True)
    return ended


def _read_pidfile(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("pid"), int) else None


def _verified_process(record: Mapping[str, Any], marker: str) -> psutil.Process | None:
    """The recorded process if it is still the one we started: same pid and create time (so a
    recycled pid is never mistaken for it) and, where readable, our marker in its environment."""
    try:
        proc = psutil.Process(record["pid"])
        if abs(proc.create_time() - float(record.get("create_time", -1))) > 0.05:
            return None
        found = _marker_of(proc)
        if found is not None and found != marker:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.ZombieProcess, TypeError, ValueError):
        return None


def _marker_of(proc: psutil.Process) -> str | None:
    try:
        return proc.environ().get(MARKER_ENV)
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
        return None


def _end_process_tree(proc: psutil.Process, timeout: float) -> None:
    """SIGTERM (Appium then closes its sessions), SIGKILL if it lingers; then its descendants."""
    try:
        children = proc.children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        proc.terminate()
        _, alive = psutil.wait_procs([proc], timeout=timeout)
        for p in alive:
            p.kill()
        psutil.wait_procs(alive, timeout=timeout)
    except psutil.NoSuchProcess:
        pass
    _kill_all(children)


def _kill_all(processes: list[psutil.Process]) -> None:
    # psutil refuses to signal a recycled pid, so this only reaches the processes we listed.
    for process in processes:
        try:
            process.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR: a port held only by TIME_WAIT connections of a dead server is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _listener(port: int) -> psutil.Process | None:
    """The process listening on `port`, when the OS lets us see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for conn in connections:
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            try:
                return psutil.Process(conn.pid)
            except psutil.NoSuchProcess:
                return None
    return None


def _describe(proc: psutil.Process | None) -> str:
    if proc is None:
        return "a process postdeck cannot identify"
    try:
        return f"pid {proc.pid} ({' '.join(proc.cmdline())[:200] or proc.name()})"
    except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
        return f"pid {proc.pid}"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 8192))
            return "\n".join(handle.read().decode("utf-8", "replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- the session


class AppiumSession:
    """A WebDriver session against one Appium server, created on first use.

    A UiAutomator2 crash (its instrumentation died; every command then fails with "cannot be
    proxied ... instrumentation process is not running") is survived once: the session is quit,
    recreated, and the action runs again from the start. A second crash is
    PostError("appium_crash"). Once the post may be public (`published()` is true), nothing is
    retried: a failure then is `outcome_unknown`, because a retry could post twice.
    """

    def __init__(self, url: str, capabilities: Mapping[str, Any], *, server: AppiumServer | None = None,
                 http_timeout: float = 180.0):
        self.url = url
        self.capabilities = dict(capabilities)
        self.server = server
        self.http_timeout = http_timeout
        self.recreated = 0
        self._driver: Any = None

    @classmethod
    def on(cls, server: AppiumServer, capabilities: Mapping[str, Any], **kwargs: Any) -> "AppiumSession":
        return cls(server.url, capabilities, server=server, **kwargs)

    @property
    def driver(self) -> Any:
        """The live WebDriver, created if there is none."""
        if self._driver is None:
            self._driver = self._create()
        return self._driver

    def run(self, action: Callable[[Any], T], *, published: Callable[[], bool] = lambda: False) -> T:
        """Run `action(driver)`, recreating the session once if UiAutomator2 crashes."""
        for attempt in (1, 2):
            try:
                return action(self.driver)
            except PostError:
                raise
            except WebDriverException as exc:
                if not _UIA2_CRASH.search(str(exc)):
                    raise
                self._discard()
                if published():
                    raise self._outcome_unknown(f"UiAutomator2 crashed: {_first_line(exc)}") from exc
                if attempt == 2:
                    raise _infra(f"UiAutomator2 crashed again after its session was recreated: "
                                 f"{_first_line(exc)}", "appium_crash") from exc
                self.recreated += 1
                log.warning("UiAutomator2 crashed (%s); recreating the session once", _first_line(exc))
            except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
                # The server is gone or hung: the session is lost with it.
                self._driver = None
                message = self._unreachable_message(exc)
                if published():
                    raise self._outcome_unknown(message) from exc
                raise _infra(message, "appium_unreachable") from exc
        raise AssertionError("unreachable")

    def run_flow(self, flow: Flow, *, caption: str, on_publishing: Callable[[], None]) -> None:
        """Walk a posting flow, with crash recovery that never repeats the publishing tap."""
        state = {"published": False}

        def publishing() -> None:
            on_publishing()
            state["published"] = True

        self.run(lambda driver: run_flow(driver, flow, caption=caption, on_publishing=publishing),
                 published=lambda: state["published"])

    def capture_evidence(self, folder: Path, *, timeout: float = CAPTURE_SECONDS,
                         label: str | None = None) -> list[str]:
        """After a failure, save the live session's screenshot (screen.png) and page source
        (page.xml) into `folder`, within `timeout` seconds in all; call it before the session is
        quit. Never raises and never opens a session: when the failure already ended the session
        (a UiAutomator2 crash, a dead server) there is no screen to save. Returns the files saved."""
        if self._driver is None:
            log.info("evidence%s: no live Appium session, so no screen to save",
                     f" for {label}" if label else "")
            return []
        return capture_driver(self._driver, folder, timeout=timeout, label=label)

    def quit(self) -> None:
        self._discard()

    def __enter__(self) -> "AppiumSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.quit()

    # ----------------------------------------------------------------- internals

    def _create(self) -> Any:
        options = AppiumOptions()
        options.load_capabilities(self.capabilities)
        config = AppiumClientConfig(self.url, timeout=self.http_timeout, keep_alive=True,
                                    proxy=Proxy({"proxyType": ProxyType.DIRECT}))
        try:
            return webdriver.Remote(self.url, options=options, client_config=config)
        except (urllib3.exceptions.HTTPError, ConnectionError) as exc:
            raise _infra(self._unreachable_message(exc), "appium_unreachable") from exc
        except WebDriverException as exc:
            # The message says why (device offline, adb timeout, ...): let classify() read it.
            raise PostError(f"Appium could not create a session at {self.url}: {_first_line(exc)}") from exc

    def _discard(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            try:
                driver.quit()
            except Exception:  # a crashed or vanished session cannot be quit cleanly; it is gone anyway
                pass

    def _unreachable_message(self, exc: BaseException) -> str:
        message = f"Appium server {self.url} stopped answering: {_first_line(exc)}"
        if self.server is not None:
            # A killed server drops its connections a moment before it can be reaped.
            code = self.server.wait_exit(timeout=2.0)
            if code is not None:
                message += f" (the server process exited with code {code})"
        return message

    def _outcome_unknown(self, why: str) -> PostError:
        return PostError(f"{why}; this happened after the publishing tap, so the post may be public",
                         error_type=OUTCOME_UNKNOWN, category=UNKNOWN)


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "msg", None) or str(exc)
    return str(text).strip().splitlines()[0] if str(text).strip() else type(exc).__name__
