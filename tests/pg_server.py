"""A real, throw-away PostgreSQL server for the tests.

Why a real server: the code under test talks to PostgreSQL over the wire (psycopg 3), and the
behaviours that matter (locks, transactions, a connection that drops mid-run) are only worth
testing against the real thing. The server comes from Debian's `postgresql` package, lives in a
temporary folder, listens on a free loopback port, and runs as an unprivileged user: initdb and
postgres refuse to run as root, so when the tests run as root (they do in CI) the server runs as
Debian's `postgres` system user instead.

Lifetime: the server is started in its own session (so a Ctrl-C in the terminal does not hit it
before the tests have shut it down), stopped by an atexit hook if the tests forget, and on Linux
told by the kernel (PR_SET_PDEATHSIG) to shut down immediately when the process that started it
dies, which also covers a pytest killed by SIGTERM or SIGKILL. Without that last one (another OS,
no prctl), a SIGKILLed pytest can leave a server behind in its temporary folder; that is
accepted.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
from psycopg import sql

SUPERUSER = "postdeck"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def find_bindir() -> Path | None:
    """The folder holding initdb and postgres: the highest /usr/lib/postgresql/<N>/bin (Debian
    puts server binaries there, off PATH), else what `pg_config --bindir` says, else None."""
    def usable(d: Path) -> bool:
        return all(os.access(d / name, os.X_OK) for name in ("initdb", "postgres"))

    versioned = []
    for d in Path("/usr/lib/postgresql").glob("*/bin"):
        try:
            major = int(d.parent.name.split(".")[0])
        except ValueError:
            continue
        if usable(d):
            versioned.append((major, d))
    if versioned:
        return max(versioned)[1]
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True,
                                 timeout=10, check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None
        if out and usable(Path(out)):
            return Path(out)
    return None


def free_port() -> int:
    """A loopback port nobody listens on right now (another process may take it before the
    server binds it: start() then tries another one)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """A preexec_fn asking the kernel to send SIGQUIT (PostgreSQL's immediate shutdown) to the
    server when the process that started it dies, however it dies. Runs in the child after the
    switch to the postgres user (a credential change would clear the setting)."""
    # The kernel watches the *thread* that forked: one started from another thread would be
    # shut down when that thread ends, so only the main thread (where pytest runs) asks.
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    PR_SET_PDEATHSIG = 1

    def preexec():
        prctl(PR_SET_PDEATHSIG, int(signal.SIGQUIT), 0, 0, 0)
        if os.getppid() != parent:      # the parent died before the call above: go now
            os._exit(1)
    return preexec


class PgServer:
    """One PostgreSQL cluster in `base_dir` (data/, sock/, server.log), trust auth for the
    superuser `postdeck`, tuned for speed (fsync off: the data is thrown away, and only a crash
    of the whole machine could lose it; a crash of the server, as restart() makes, does not)."""

    def __init__(self, bindir: Path | str, base_dir: Path | str):
        self.bindir = Path(bindir)
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "sock"
        self.log_path = self.base_dir / "server.log"
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._atexit_registered = False
        # As root the server runs as Debian's postgres user (initdb and postgres refuse root).
        self._as: dict = {}
        self._owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root, but there is no `postgres` user to run the "
                                   "PostgreSQL server as (install Debian's postgresql package)") from None
            self._owner = (pw.pw_uid, pw.pw_gid)
            self._as = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    # ---- public API -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """initdb (once), then start the server on a free port and wait until it answers."""
        if self.running:
            return
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        if self.port is not None:       # a restart: same port, same data
            self._launch(self.port)
            return
        for attempt in range(3):        # the free port may be taken between probe and bind
            try:
                self._launch(free_port())
                return
            except RuntimeError as e:
                if "could not bind" not in str(e) or attempt == 2:
                    raise

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients are disconnected, no waiting for them), and wait for
        the server to exit; SIGKILL on its process group if it does not."""
        self._signal_and_wait(signal.SIGINT)

    def restart(self) -> None:
        """Stop the server abruptly (SIGQUIT: immediate shutdown, every client connection
        drops) and start it again on the same port and data: how a test sees a database that
        went away mid-run and came back."""
        self._signal_and_wait(signal.SIGQUIT)
        self.start()

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (CREATE DATABASE cannot run in a transaction, hence
        autocommit); returns its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE `name`, closing whatever connections a test left open on it."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    # ---- internals --------------------------------------------------------------------------

    def _env(self) -> dict:
        """The environment without PG* variables, which would point initdb or the server at
        another cluster."""
        return {k: v for k, v in os.environ.items() if not k.startswith("PG")}

    def _prepare_dirs(self) -> None:
        """data/ and sock/ belong to the server's user, mode 0700 (postgres insists); as root,
        base_dir and the folders above it get o+x (traverse only, no listing) so that the
        postgres user can reach them: pytest makes its temp folders 0700."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for d in (self.data_dir, self.socket_dir):
            d.mkdir(mode=0o700, exist_ok=True)
            if self._owner:
                os.chown(d, *self._owner)
        self.log_path.touch()
        if self._owner:
            os.chown(self.log_path, *self._owner)
            self._make_traversable()

    def _make_traversable(self) -> None:
        home = Path.home().resolve()
        for d in [self.base_dir.resolve(), *self.base_dir.resolve().parents]:
            mode = d.stat().st_mode
            if mode & stat.S_IXOTH:
                continue
            if d == home or d in home.parents:
                raise RuntimeError(f"the postgres user cannot reach {self.base_dir}: {d} is not "
                                   f"traversable and is a home folder; use a temp dir elsewhere")
            os.chmod(d, stat.S_IMODE(mode) | stat.S_IXOTH)

    def _initdb(self) -> None:
        self._prepare_dirs()
        cmd = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "--auth=trust",
               f"--username={SUPERUSER}", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
               "--no-instructions"]
        r = subprocess.run(cmd, capture_output=True, text=True, env=self._env(),
                           cwd=self.base_dir, timeout=120, **self._as)
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")

    def _launch(self, port: int) -> None:
        self._prepare_dirs()
        cmd = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(port),
               "-c", "listen_addresses=127.0.0.1", "-k", str(self.socket_dir),
               "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=300",
               # Not synchronous_commit=off: with it, restart() (an immediate shutdown) loses
               # commits the server had already acknowledged, which no real server does and
               # which a reconnect test would trip over. With fsync off, on costs nothing.
               "-c", "synchronous_commit=on"]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=self._env(), cwd=self.base_dir, start_new_session=True,
                preexec_fn=_die_with_parent(), **self._as)
        self.port = port
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"postgres exited while starting; server.log:\n"
                                   f"{self.log_tail()}")
            try:
                psycopg.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self._signal_and_wait(signal.SIGQUIT)
                    raise RuntimeError(f"postgres did not accept connections on port {port} "
                                       f"within {START_TIMEOUT:.0f} s; server.log:\n"
                                       f"{self.log_tail()}")
                time.sleep(0.05)

    def _signal_and_wait(self, sig: int) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.send_signal(sig)
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)     # the postmaster and its children
            except ProcessLookupError:
                pass
            proc.wait()
        # An abrupt stop leaves the children a moment to notice; a new postmaster on the same
        # data refuses to start while any of them still holds the shared memory.
        self._wait_children_gone(proc.pid)

    def _wait_children_gone(self, pgid: int) -> None:
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                return
            except PermissionError:     # not ours to signal: assume it is gone
                return
            time.sleep(0.02)


__all__ = ["PgServer", "find_bindir", "free_port", "SUPERUSER"]
