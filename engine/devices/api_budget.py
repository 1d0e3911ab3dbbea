"""One Geelark API budget for every postdeck process on a host.

Geelark counts calls per endpoint per minute for the whole team (API_CALLS_PER_MINUTE), answers
40007/40017 when that is passed, and locks the API for two hours (40014) when the hourly limit is.
A farm runs many worker processes, each with its own GeelarkClient: with an in-process
`RateLimiter` each, twenty workers together make twenty times the calls the limit allows.
`HostApiBudget` keeps the count in a SQLite file in the host state folder (beside the phone and
account locks), so every process on the host draws on one budget: each endpoint's sliding window,
the pause after a 40007, and the 40014 lock-out. No server: SQLite's file locking does the sharing.

Each `acquire` is one short BEGIN IMMEDIATE transaction (drop calls that left the window, count the
endpoint's calls, read its pause and the lock-out, record the call if it may go); a caller that
must wait commits first and sleeps outside the transaction, then tries again. Times are wall-clock
(`time.time`): a monotonic clock means nothing to another process.

The connection is opened lazily, per process and thread, so the budget can be handed to spawned or
forked workers (it pickles as its settings): a SQLite connection must never cross a fork.

If the file cannot be used (a read-only folder, a corrupt file, a lock held for minutes), the
budget logs one warning naming the file and falls back to an in-process `RateLimiter`: an
imperfect limit beats stopping every Geelark call. The file is never deleted, corrupt or not: the
operator decides (removing it only forgets the last minute's calls).

Environment:
    POSTDECK_GEELARK_CALLS_PER_MINUTE  lowers max_calls, never raises it: for tests, and for
        operators who share a Geelark team with another tool and must leave it part of the
        budget. The lower of it and `max_calls` applies; a value that is not a whole number from
        1 to API_CALLS_PER_MINUTE is ignored (with a warning). It caps the calls per `window`,
        which is a minute unless the caller says otherwise.
"""
from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .geelark import API_CALLS_PER_MINUTE, GeelarkLocked, RateLimiter

log = logging.getLogger("postdeck.geelark")

DB_FILENAME = "geelark-api.sqlite3"
CALLS_PER_MINUTE_ENV = "POSTDECK_GEELARK_CALLS_PER_MINUTE"

# Geelark counts a call when it arrives, which can be later than the instant we counted it
# (connection setup, TLS, a busy host). Keeping each call counted a little past the window stops
# a slow first call and a fast later one from landing in one of Geelark's minutes together.
ARRIVAL_MARGIN = 1.0
BUSY_TIMEOUT = 30.0     # seconds SQLite waits for another process's transaction
BUSY_RETRIES = 3        # busy timeouts in a row before giving up on the file

_SCHEMA = """
BEGIN IMMEDIATE;
CREATE TABLE IF NOT EXISTS calls (endpoint TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS calls_by_endpoint ON calls (endpoint, at);
CREATE TABLE IF NOT EXISTS pauses (endpoint TEXT PRIMARY KEY, until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS lockout (id INTEGER PRIMARY KEY CHECK (id = 1), until REAL NOT NULL);
COMMIT;
"""

# Connections inherited across a fork: never used nor closed in the child (closing one runs
# SQLite's unlock and WAL clean-up against the parent's file state), only kept from the collector.
_inherited: list[sqlite3.Connection] = []


def host_budget(host_state_dir: Path) -> "HostApiBudget":
    """The budget every postdeck process on the host shares."""
    return HostApiBudget(Path(host_state_dir) / DB_FILENAME)


class HostApiBudget:
    """`RateLimiter`'s interface (acquire, pause, lock_out, locked_for), shared by every process
    that opens the same file."""

    def __init__(self, path: Path | str, max_calls: int = API_CALLS_PER_MINUTE,
                 window: float = 60.0, *, margin: float = ARRIVAL_MARGIN,
                 busy_timeout: float = BUSY_TIMEOUT,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self.path = Path(path)
        self.max_calls = lowered_by_env(max_calls)
        self.window = window
        self.margin = margin
        self.busy_timeout = busy_timeout
        self.clock = clock
        self.sleep = sleep
        self._local = threading.local()
        # pid -> the in-process limiter used once the file failed in that process.
        self._fallbacks: dict[int, RateLimiter] = {}

    def __repr__(self) -> str:
        return f"HostApiBudget({str(self.path)!r}, max_calls={self.max_calls})"

    # A connection cannot travel to another process: only the settings do.
    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "max_calls": self.max_calls, "window": self.window,
                "margin": self.margin, "busy_timeout": self.busy_timeout,
                "clock": self.clock, "sleep": self.sleep}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    # ---- the limiter interface

    def acquire(self, key: str) -> float:
        """Block until a call to `key` is allowed, count it, and return the (wall-clock) instant
        counted. Raises GeelarkLocked when the API is locked, even after waiting: a process that
        was queued when another one saw 40014 must not make the call that prolongs the lock."""
        while True:
            outcome = self._transact(lambda conn: self._try_acquire(conn, key))
            if outcome is None:
                return self._fallback().acquire(key)
            now, wait = outcome
            if wait <= 0:
                return now
            # Processes that wait for the same freed slot would all wake at once: spread them.
            self.sleep(wait + random.uniform(0.0, 0.01))

    def pause(self, key: str, seconds: float) -> None:
        """Hold every caller of `key` on the host back for `seconds` (Geelark answered 40007)."""
        def write(conn: sqlite3.Connection) -> bool:
            conn.execute("INSERT INTO pauses VALUES (?, ?) ON CONFLICT (endpoint) DO UPDATE "
                         "SET until = max(until, excluded.until)", (key, self.clock() + seconds))
            return True
        if self._transact(write) is None:
            self._fallback().pause(key, seconds)

    def lock_out(self, seconds: float) -> None:
        """Geelark locked the API (40014): every process on the host fails fast until then."""
        def write(conn: sqlite3.Connection) -> bool:
            conn.execute("INSERT INTO lockout VALUES (1, ?) ON CONFLICT (id) DO UPDATE "
                         "SET until = max(until, excluded.until)", (self.clock() + seconds,))
            return True
        if self._transact(write) is None:
            self._fallback().lock_out(seconds)

    def locked_for(self) -> float:
        """Seconds the API stays locked (0 when it is not)."""
        outcome = self._transact(lambda conn: self._locked_until(conn) - self.clock())
        if outcome is None:
            return self._fallback().locked_for()
        return max(0.0, outcome)

    # ---- the budget

    def _try_acquire(self, conn: sqlite3.Connection, key: str) -> tuple[float, float]:
        """One transaction: record the call if it may go now, else say how long to wait."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Read the clock only once the write lock is ours: time spent waiting for it must
            # not make our count stale.
            now = self.clock()
            span = self.window + self.margin
            # A call stamped in the future means the clock was set back: it would hold its slot
            # for as long, so it goes.
            conn.execute("DELETE FROM calls WHERE at <= ? OR at > ?", (now - span, now))
            conn.execute("DELETE FROM pauses WHERE until <= ?", (now,))
            locked = self._locked_until(conn) - now
            if locked > 0:
                conn.execute("COMMIT")
                raise GeelarkLocked(f"Geelark API is locked (40014) for another {locked:.0f}s; "
                                    f"not calling {key}", retry_after=locked, code=40014,
                                    endpoint=key)
            wait = max(self._window_wait(conn, key, now, span), self._paused_for(conn, key, now))
            if wait <= 0:
                conn.execute("INSERT INTO calls VALUES (?, ?)", (key, now))
            conn.execute("COMMIT")
            return now, wait
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def _window_wait(self, conn: sqlite3.Connection, key: str, now: float, span: float) -> float:
        (count,) = conn.execute("SELECT count(*) FROM calls WHERE endpoint = ?", (key,)).fetchone()
        if count < self.max_calls:
            return 0.0
        # Another process may allow more calls than we do: wait for as many to leave as it takes
        # to get under our own limit, not just for the oldest.
        (oldest,) = conn.execute("SELECT at FROM calls WHERE endpoint = ? ORDER BY at "
                                 "LIMIT 1 OFFSET ?", (key, count - self.max_calls)).fetchone()
        return oldest + span - now

    @staticmethod
    def _paused_for(conn: sqlite3.Connection, key: str, now: float) -> float:
        row = conn.execute("SELECT until FROM pauses WHERE endpoint = ?", (key,)).fetchone()
        return row[0] - now if row else 0.0

    @staticmethod
    def _locked_until(conn: sqlite3.Connection) -> float:
        row = conn.execute("SELECT until FROM lockout WHERE id = 1").fetchone()
        return row[0] if row else 0.0

    # ---- the file

    def _transact(self, work: Callable[[sqlite3.Connection], Any]) -> Any:
        """`work(conn)` on this thread's connection, retried while another process holds the
        file. None when the file is unusable in this process: the caller falls back."""
        conn = self._connection()
        if conn is None:
            return None
        try:
            return self._retry_busy(lambda: work(conn))
        except sqlite3.Error as exc:
            self._give_up(exc)
            return None

    def _connection(self) -> sqlite3.Connection | None:
        """This thread's connection, opened on first use in each process."""
        pid = os.getpid()
        if pid in self._fallbacks:
            return None
        local = self._local
        if getattr(local, "pid", None) != pid:
            if getattr(local, "conn", None) is not None:
                _inherited.append(local.conn)
            local.conn, local.pid = None, pid
            try:
                local.conn = self._open()
            except (OSError, sqlite3.Error) as exc:
                self._give_up(exc)
                return None
        return local.conn

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # SQLite would create the file with the umask (often world-readable); it then gives its
        # -wal and -shm files the database's mode, so creating it 0600 here covers all three.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            self._retry_busy(lambda: self._prepare(conn))
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _prepare(conn: sqlite3.Connection) -> None:
        # WAL: readers (locked_for) never wait for the writer, and a commit costs no fsync of the
        # database file. Reading the mode first is also what tells a corrupt file apart.
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            conn.execute("PRAGMA journal_mode = WAL")
        # Losing the last calls to a power cut is harmless; an fsync per call is not free.
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            conn.executescript(_SCHEMA)
        finally:
            if conn.in_transaction:    # busy half-way: leave none open for the retry
                conn.execute("ROLLBACK")

    def _retry_busy(self, work: Callable[[], Any]) -> Any:
        for attempt in range(BUSY_RETRIES):
            try:
                return work()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or attempt + 1 == BUSY_RETRIES:
                    raise
                log.warning("Geelark API budget %s busy for %.0fs; trying again", self.path,
                            self.busy_timeout)
                self.sleep(random.uniform(0.05, 0.25))

    def _give_up(self, exc: BaseException) -> None:
        """Use an in-process limiter from now on in this process; warn once."""
        candidate = RateLimiter(self.max_calls, self.window + self.margin, clock=self.clock,
                                sleep=self.sleep)
        # setdefault is atomic: of threads failing together, exactly one installs its limiter.
        if self._fallbacks.setdefault(os.getpid(), candidate) is candidate:
            log.warning("Geelark API budget %s cannot be used (%s: %s); this process now limits "
                        "its own Geelark calls only, so processes together may pass Geelark's "
                        "limit. The file is left as it is; fix or remove it and restart.",
                        self.path, type(exc).__name__, exc)

    def _fallback(self) -> RateLimiter:
        return self._fallbacks[os.getpid()]


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) \
        or "locked" in str(exc) or "busy" in str(exc)


def lowered_by_env(max_calls: int) -> int:
    """`max_calls`, or the lower limit POSTDECK_GEELARK_CALLS_PER_MINUTE sets."""
    raw = os.environ.get(CALLS_PER_MINUTE_ENV, "").strip()
    if not raw:
        return max_calls
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= API_CALLS_PER_MINUTE:
        log.warning("%s=%r ignored: it may only lower the Geelark limit, to a whole number from 1 "
                    "to %d", CALLS_PER_MINUTE_ENV, raw, API_CALLS_PER_MINUTE)
        return max_calls
    return min(value, max_calls)
