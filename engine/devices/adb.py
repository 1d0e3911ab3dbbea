"""ADB through the `adb` executable: connect, Geelark's glogin, media push/remove/scan.

Every command runs as an argv list (never through a host shell) with a timeout. Failures are
raised as `AdbError` (a PostError) with an error_type the engine understands (`adb_timeout`,
`device_offline`, ...) and a message that carries adb's own words (stderr), with secrets such as
the glogin password replaced before anything is logged or raised.
"""
from __future__ import annotations

import logging
import posixpath
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence
from urllib.parse import quote

from engine.errors import CONTENT, INFRASTRUCTURE, PostError

log = logging.getLogger("postdeck.adb")

DEFAULT_TIMEOUT = 30.0
CONNECT_TIMEOUT = 20.0     # one `adb connect` attempt; unreachable hosts hang for a while
PUSH_TIMEOUT = 300.0       # a large video over a slow link
MEDIA_DIR = "/sdcard/DCIM/Camera"
SCAN_ACTION = "android.intent.action.MEDIA_SCANNER_SCAN_FILE"


class AdbError(PostError):
    def __init__(self, message: str, error_type: str, *, stderr: str = "",
                 category: str = INFRASTRUCTURE):
        super().__init__(message, error_type, category)
        self.stderr = stderr


@dataclass(frozen=True)
class Device:
    serial: str
    state: str                      # device, offline, unauthorized, no permissions, ...
    properties: dict[str, str] = field(default_factory=dict)   # usb, product, model, ...


@dataclass(frozen=True)
class AdbResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return "\n".join(part.strip() for part in (self.stderr, self.stdout) if part.strip())


# adb's own error texts, most specific first -> error_type.
_ERROR_PATTERNS: list[tuple[str, str]] = [
    (r"unauthorized", "device_unauthorized"),
    (r"device offline", "device_offline"),
    (r"device '.*' not found|device not found|no devices/emulators found", "device_offline"),
    (r"no space left on device", "device_storage_full"),
    (r"read-only file system|permission denied", "adb_permission_denied"),
    (r"failed to connect|cannot connect|unable to connect|connection refused", "adb_connect_failed"),
]


def _error_type(text: str, default: str) -> str:
    for pattern, error_type in _ERROR_PATTERNS:
        if re.search(pattern, text, re.IGNORECASE):
            return error_type
    return default


def parse_devices(output: str) -> list[Device]:
    """Parse `adb devices` or `adb devices -l`."""
    devices = []
    for line in output.splitlines():
        # Columns are tab-separated without -l and space-padded with it; the state can be two
        # words ("no permissions (...); see [...]"); -l adds key:value words. The header and
        # "* daemon not running; starting now" chatter do not match.
        match = re.match(r"(\S+)\s+(no permissions|\S+)(.*)$", line.strip())
        if not match or line.startswith(("*", "List of devices")):
            continue
        serial, state, rest = match.groups()
        props = dict(w.split(":", 1) for w in rest.split() if re.fullmatch(r"[a-z_]+:\S+", w))
        devices.append(Device(serial, state, props))
    return devices


class Adb:
    """The `adb` client. `adb_path` is an explicit executable, else `adb` on PATH (looked up at
    each call, so a changed PATH is honoured)."""

    def __init__(self, adb_path: str | Path | None = None, *, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.adb_path = str(adb_path) if adb_path else None
        self.timeout = timeout
        self.clock = clock
        self.sleep = sleep

    def executable(self) -> str:
        path = self.adb_path or shutil.which("adb")
        if not path:
            raise AdbError("adb not found on PATH: install Android platform-tools or give its "
                           "path", "adb_missing")
        return path

    # ---- running

    def run(self, args: Sequence[str], *, serial: str | None = None,
            timeout: float | None = None, secrets: Iterable[str] = ()) -> AdbResult:
        """Run `adb [-s serial] args...`. Raises AdbError only for a timeout or a missing adb;
        the caller judges the exit code and output."""
        argv = [self.executable(), *(["-s", serial] if serial else []), *args]
        secrets = [s for s in secrets if s]
        shown = _redact(" ".join(shlex.quote(a) for a in argv[1:]), secrets)
        timeout = self.timeout if timeout is None else timeout
        log.debug("adb %s", shown)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, errors="replace")
        except OSError as exc:
            raise AdbError(f"cannot run adb ({argv[0]}): {exc.strerror}", "adb_missing") from None
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                pass   # a grandchild holds the pipes; the killed adb client is gone anyway
            raise AdbError(f"adb {shown} timed out after {timeout:g}s", "adb_timeout") from None
        return AdbResult(proc.returncode, _redact(stdout, secrets), _redact(stderr, secrets))

    def check(self, args: Sequence[str], what: str, *, serial: str | None = None,
              timeout: float | None = None, secrets: Iterable[str] = ()) -> AdbResult:
        """Run and raise an AdbError carrying adb's message when the command failed."""
        result = self.run(args, serial=serial, timeout=timeout, secrets=secrets)
        # Some adb errors come with exit code 0 (older adb, `shell` without v2): look at the text.
        failed = result.returncode != 0 or re.match(r"(adb: )?error:", result.stderr.strip())
        if failed:
            raise self._failure(what, serial, result)
        return result

    @staticmethod
    def _failure(what: str, serial: str | None, result: AdbResult,
                 default: str = "adb_command_failed") -> AdbError:
        where = f" on {serial}" if serial else ""
        detail = result.output or f"exit code {result.returncode}"
        return AdbError(f"adb {what}{where} failed: {detail}", _error_type(detail, default),
                        stderr=result.stderr)

    # ---- devices

    def list_devices(self) -> list[Device]:
        return parse_devices(self.check(["devices", "-l"], "devices").stdout)

    def devices(self) -> dict[str, str]:
        """serial -> state, from `adb devices`."""
        return {d.serial: d.state for d in parse_devices(self.check(["devices"], "devices").stdout)}

    def device_state(self, serial: str) -> str | None:
        return self.devices().get(serial)

    def ensure_device(self, serial: str) -> None:
        """Raise unless `serial` is attached and usable."""
        state = self.device_state(serial)
        if state == "device":
            return
        if state == "unauthorized":
            raise AdbError(f"adb device {serial} is unauthorized: accept the debugging prompt on "
                           "the phone", "device_unauthorized")
        raise AdbError(f"adb device {serial} is {state or 'not found'}", "device_offline")

    def connect(self, host: str, port: int, *, timeout: float = 60.0, poll: float = 1.0) -> str:
        """`adb connect host:port`, then wait until `adb devices` lists it as `device`. Returns
        the serial. A fresh TCP device is often `offline` for 5-20 s: that is waited out, and a
        device adb dropped is connected again, all within `timeout`."""
        serial = f"{host}:{port}"
        deadline = self.clock() + timeout
        if self.device_state(serial) == "offline":
            # A stale entry from an earlier session can stay offline for good.
            self.disconnect(serial)
        last_error = ""
        while True:
            state = self.device_state(serial)
            if state == "device":
                return serial
            if state == "unauthorized":
                raise AdbError(f"adb device {serial} is unauthorized", "device_unauthorized")
            remaining = deadline - self.clock()
            if state is None and remaining > 0:
                last_error = self._try_connect(serial, min(CONNECT_TIMEOUT, max(remaining, 1.0)))
            if self.clock() >= deadline:
                if state is None and last_error:
                    raise AdbError(f"adb connect {serial} failed: {last_error}",
                                   _error_type(last_error, "adb_connect_failed"),
                                   stderr=last_error)
                raise AdbError(f"adb device {serial} is {state or 'not listed'} after "
                               f"{timeout:g}s", "device_offline")
            self.sleep(poll)

    def _try_connect(self, serial: str, timeout: float) -> str:
        """One `adb connect`; returns "" on success, else adb's words."""
        try:
            result = self.run(["connect", serial], timeout=timeout)
        except AdbError as exc:
            if exc.error_type != "adb_timeout":
                raise
            return str(exc)
        # adb connect exits 0 even when it failed: the text tells.
        text = result.output
        if result.returncode == 0 and re.search(r"\bconnected to\b", text) and \
                not re.search(r"failed|cannot|unable", text, re.IGNORECASE):
            return ""
        log.info("adb connect %s: %s", serial, text)
        return text or f"exit code {result.returncode}"

    def disconnect(self, serial: str) -> None:
        self.run(["disconnect", serial], timeout=10)

    def glogin(self, serial: str, password: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Geelark's shell login: `adb -s SERIAL shell glogin PASSWORD` (the password comes from
        the Geelark API, adb/getData `pwd`). Without it, shell commands on a Geelark phone are
        refused ("you should run glogin to login first")."""
        result = self.run(["shell", "glogin", shlex.quote(password)], serial=serial,
                          timeout=timeout, secrets=[password])
        text = result.output
        if result.returncode != 0 or re.search(
                r"fail|error|invalid|incorrect|wrong|denied|not found", text, re.IGNORECASE):
            raise AdbError(f"glogin on {serial} failed: {text or f'exit code {result.returncode}'}",
                           _error_type(text, "glogin_failed"), stderr=result.stderr)

    # ---- files

    def shell(self, serial: str, *args: str, timeout: float | None = None) -> str:
        """Run a device shell command. The device shell re-parses the words, so every argument
        is quoted here."""
        words = [shlex.quote(a) for a in args]
        return self.check(["shell", *words], f"shell {args[0] if args else ''}".strip(),
                          serial=serial, timeout=timeout).stdout

    def push(self, serial: str, local: str | Path, remote: str, *,
             timeout: float = PUSH_TIMEOUT) -> None:
        local = Path(local)
        if not local.is_file():
            raise AdbError(f"video file not found: {local}", "video_missing", category=CONTENT)
        self.check(["push", str(local), remote], f"push {local.name}", serial=serial,
                   timeout=timeout)

    def remove(self, serial: str, remote: str) -> None:
        self.shell(serial, "rm", "-f", remote)

    def media_scan(self, serial: str, remote: str) -> None:
        """Tell the media store about a new (or removed) file so the gallery shows it now."""
        uri = "file://" + quote(remote)
        self.shell(serial, "am", "broadcast", "-a", SCAN_ACTION, "-d", uri)

    def push_media(self, serial: str, local: str | Path, *, remote_dir: str = MEDIA_DIR,
                   name: str | None = None, timeout: float = PUSH_TIMEOUT) -> str:
        """Push a video into the phone's gallery and scan it. Returns the remote path."""
        name = name or Path(local).name
        if "/" in name or name in ("", ".", ".."):
            raise AdbError(f"bad remote file name {name!r}", "adb_command_failed")
        remote = posixpath.join(remote_dir, name)
        self.push(serial, local, remote, timeout=timeout)
        self.media_scan(serial, remote)
        return remote

    def remove_media(self, serial: str, remote: str) -> None:
        self.remove(serial, remote)
        self.media_scan(serial, remote)


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class LocalAdbPhones:
    """Phones attached to this host's adb (USB or already connected over TCP); the serial is the
    phone's name."""

    def __init__(self, adb: Adb | None = None):
        self.adb = adb or Adb()

    def list_phones(self) -> list[str]:
        """Every serial adb knows, whatever its state: an offline phone is still a phone the
        operator can bind, and `ensure_ready` says what is wrong with it."""
        return sorted(d.serial for d in self.adb.list_devices())

    def ensure_ready(self, phone: str, *, timeout: float = 30.0, poll: float = 1.0) -> str:
        """Wait (up to `timeout`) for the phone to be in state `device`; returns the serial."""
        deadline = self.adb.clock() + timeout
        while True:
            try:
                self.adb.ensure_device(phone)
                return phone
            except AdbError as exc:
                if exc.error_type == "device_unauthorized" or self.adb.clock() >= deadline:
                    raise
            self.adb.sleep(poll)

    def connect(self, phone: str, adb: Adb) -> str:
        """PhoneProvider: a local phone is reached by its serial once adb sees it ready."""
        return self.ensure_ready(phone)

    def power_off(self, phone: str) -> None:
        """PhoneProvider: a phone on the desk stays on (it is not billed by the minute)."""

    def stop(self, phones: list[str]) -> None:
        """PhoneProvider: a phone on the desk is not ours to power off."""
