"""engine.devices.api_budget: one Geelark API budget for every process on the host.

The cross-process tests run real worker processes (subprocesses, each with its own GeelarkClient
and its own connection to the budget file) against the local fake Geelark server on 127.0.0.1,
and judge the limit by the server's own record of when calls arrived: what Geelark counts.
"""
from __future__ import annotations

import json
import logging
import os
import pickle
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

import pytest

from conftest import REPO, FakeTime

from engine.devices.api_budget import CALLS_PER_MINUTE_ENV, DB_FILENAME, HostApiBudget, host_budget
from engine.devices.geelark import (
    LOCK_SECONDS, PHONE_LIST, PHONE_STATUS, GeelarkClient, GeelarkLocked, GeelarkRateLimited,
    KeyAuth,
)
from geelark_fake_server import TEST_API_KEY, TEST_APP_ID, FakeGeelark

LIMIT = 40              # calls per minute in the multi-process test
HAMMER_SECONDS = 63.5   # a second wave fits: the first wave's calls stay counted 61 s
WORKERS = 20
PAUSE = 3.0             # what the 40007 test's clients take "the next minute" to be

# One worker process: a client on the shared budget, ready once its connection is open; on
# "once" it makes one phone/status call, on "hammer" it calls until it is terminated. Warnings
# (a fallback to the in-process limiter) go to stderr, where the test looks for them.
WORKER = r"""
import json, logging, sys, time
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
from engine.devices.api_budget import host_budget
from engine.devices.geelark import GeelarkClient, GeelarkError

budget = host_budget(sys.argv[1])
client = GeelarkClient.from_env(limiter=budget)
budget.locked_for()
print("ready", flush=True)
mode = sys.stdin.readline().strip()
started, calls, error = time.time(), 0, None
try:
    while True:
        client.phone_status(["p1"])
        calls += 1
        if mode == "once":
            break
except GeelarkError as exc:
    error = type(exc).__name__
print(json.dumps({"calls": calls, "error": error, "seconds": time.time() - started}), flush=True)
"""


class QuickMinuteClient(GeelarkClient):
    """Takes 40007's "next minute" to be PAUSE seconds away, so the test need not wait a minute:
    the pause's length is the client's business, its sharing the budget's."""

    def seconds_to_next_minute(self) -> float:
        return PAUSE


@pytest.fixture
def server():
    with FakeGeelark() as fake:
        fake.add_phone("p1")
        yield fake


def _client(server: FakeGeelark, limiter, cls=GeelarkClient, **kw) -> GeelarkClient:
    return cls(KeyAuth(TEST_APP_ID, TEST_API_KEY), base_url=server.url, limiter=limiter,
               timeout=5.0, **kw)


@contextmanager
def workers(n: int, server: FakeGeelark, state_dir: Path,
            env: dict[str, str] | None = None) -> Iterator[list[subprocess.Popen]]:
    """`n` worker processes, each ready (its budget connection open) when this yields."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), "GEELARK_APP_ID": TEST_APP_ID,
                "GEELARK_API_KEY": TEST_API_KEY, "GEELARK_BASE_URL": server.url, **(env or {})}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(state_dir)], env=full_env,
                              cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    try:
        for proc in procs:
            line = proc.stdout.readline()
            assert line == "ready\n", proc.communicate(timeout=10)[1]
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def _go(procs: list[subprocess.Popen], mode: str) -> None:
    for proc in procs:
        proc.stdin.write(mode + "\n")
        proc.stdin.flush()


def _results(procs: list[subprocess.Popen]) -> list[dict]:
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    return results


def busiest_window(arrivals: list[float], window: float = 60.0) -> int:
    """The most calls that arrived within any `window` seconds of one another."""
    best, first = 0, 0
    for last, at in enumerate(arrivals):
        while at - arrivals[first] >= window:
            first += 1
        best = max(best, last - first + 1)
    return best


def _calls_in_file(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT count(*) FROM calls").fetchone()[0]


# ------------------------------------------------------------------------- across processes

def test_twenty_processes_share_one_budget(server, tmp_path):
    with workers(WORKERS, server, tmp_path, {CALLS_PER_MINUTE_ENV: str(LIMIT)}) as procs:
        started = time.time()
        _go(procs, "hammer")
        time.sleep(HAMMER_SECONDS)
        crashed = [p.communicate()[1] for p in procs if p.poll() is not None]
        for proc in procs:
            proc.terminate()
        errors = [proc.communicate(timeout=10)[1] for proc in procs]
    arrivals = server.arrivals(PHONE_STATUS)
    busiest = busiest_window(arrivals)
    print(f"\nhost budget: busiest 60 s window {busiest} calls (limit {LIMIT}/min); "
          f"{len(arrivals)} calls from {WORKERS} processes in {time.time() - started:.1f} s")
    assert not crashed, crashed[0]
    # Nothing on stderr but, on a loaded machine, a process told it waited long for the file
    # (SQLite's busy wait is not fair): no retried call, no fallback to a per-process limit.
    said = [line for err in errors for line in err.splitlines()
            if line.strip() and "busy for" not in line]
    assert not said, said[0]
    assert busiest <= LIMIT
    # Two windows' worth got through (the window moves on), not just the first burst.
    assert len(arrivals) >= 2 * LIMIT - 2


def test_a_40007_seen_by_one_process_holds_every_process(server, tmp_path):
    server.script(PHONE_STATUS, {"code": 40007, "msg": "Too many requests"})
    with workers(5, server, tmp_path) as procs:
        with _client(server, host_budget(tmp_path), QuickMinuteClient,
                     rate_limit_retries=0) as client:
            with pytest.raises(GeelarkRateLimited):
                client.phone_status(["p1"])
        (refused,) = server.arrivals(PHONE_STATUS)
        _go(procs, "once")
        results = _results(procs)
    assert [r["error"] for r in results] == [None] * 5, results
    later = server.arrivals(PHONE_STATUS)[1:]
    assert len(later) == 5
    # None went before the pause was lifted, and all went as soon as it was.
    assert min(later) >= refused + PAUSE, [round(t - refused, 2) for t in later]
    assert max(later) < refused + PAUSE + 2.0


def test_a_40014_seen_by_one_process_makes_another_fail_fast(server, tmp_path):
    server.script(PHONE_LIST, {"code": 40014, "msg": "locked for two hours"})
    with workers(1, server, tmp_path) as procs:
        with _client(server, host_budget(tmp_path)) as client:
            with pytest.raises(GeelarkLocked):
                client.list_phones()
        _go(procs, "once")
        (result,) = _results(procs)
    assert result["error"] == "GeelarkLocked" and result["calls"] == 0
    assert result["seconds"] < 2.0
    assert server.count(PHONE_STATUS) == 0, "a locked API is not called at all"


# ------------------------------------------------------------------------- the budget itself

def test_the_window_is_shared_per_endpoint_and_a_call_counts_a_second_longer(tmp_path):
    t = FakeTime()
    path = tmp_path / "b.sqlite3"
    one, two = (HostApiBudget(path, 3, 60.0, clock=t.clock, sleep=t.sleep) for _ in range(2))
    for _ in range(3):
        one.acquire("/a")
        t.now += 10
    two.acquire("/b")                 # another endpoint has its own window
    assert t.sleeps == []
    assert two.acquire("/a") >= 1061  # the call at 1000 is counted until 1000 + 60 + 1
    assert 1061 <= t.now < 1061.1
    one.acquire("/a")
    assert 1071 <= t.now < 1071.1


def test_a_pause_holds_the_other_budget_on_the_file(tmp_path):
    t = FakeTime()
    path = tmp_path / "b.sqlite3"
    one, two = (HostApiBudget(path, 100, clock=t.clock, sleep=t.sleep) for _ in range(2))
    one.pause("/a", 30)
    two.acquire("/b")
    assert t.sleeps == []
    two.acquire("/a")
    assert 1030 <= t.now < 1030.1


def test_a_lock_out_fails_even_a_caller_already_waiting(tmp_path):
    t = FakeTime()
    path = tmp_path / "b.sqlite3"
    one = HostApiBudget(path, 1, clock=t.clock, sleep=t.sleep)
    one.acquire("/a")

    def sleep_while_locked_out(seconds: float) -> None:
        one.lock_out(LOCK_SECONDS)   # another process sees 40014 while we wait for a slot
        t.sleep(seconds)

    two = HostApiBudget(path, 1, clock=t.clock, sleep=sleep_while_locked_out)
    with pytest.raises(GeelarkLocked) as caught:
        two.acquire("/a")
    assert 0 < caught.value.retry_after <= LOCK_SECONDS
    assert 0 < two.locked_for() <= LOCK_SECONDS
    assert _calls_in_file(path) == 0, "the first call left the window; no new one was counted"


def test_the_env_var_only_lowers_the_limit(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(CALLS_PER_MINUTE_ENV, "12")
    assert HostApiBudget(tmp_path / "b").max_calls == 12
    assert HostApiBudget(tmp_path / "b", 5).max_calls == 5      # the lower of the two
    for ignored in ("500", "0", "lots"):
        monkeypatch.setenv(CALLS_PER_MINUTE_ENV, ignored)
        assert HostApiBudget(tmp_path / "b").max_calls == 190
    assert caplog.text.count(CALLS_PER_MINUTE_ENV) == 3


def test_the_file_is_private_and_its_folder_made(tmp_path):
    budget = host_budget(tmp_path / "state" / "host")
    assert budget.path == tmp_path / "state" / "host" / DB_FILENAME
    assert not budget.path.parent.exists(), "nothing is opened before the first call"
    budget.acquire("/a")
    for name in (DB_FILENAME, DB_FILENAME + "-wal", DB_FILENAME + "-shm"):
        assert stat.S_IMODE((budget.path.parent / name).stat().st_mode) == 0o600, name
    assert _calls_in_file(budget.path) == 1


def test_the_threads_of_a_process_share_it_too(tmp_path):
    budget = HostApiBudget(tmp_path / "b.sqlite3", 5, 0.4, margin=0.0)
    stamps: list[float] = []
    threads = [threading.Thread(target=lambda: [stamps.append(budget.acquire("/x"))
                                                for _ in range(3)]) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(stamps) == 18
    assert busiest_window(sorted(stamps), 0.4) <= 5


def test_it_pickles_as_its_settings_and_the_copy_shares_the_file(tmp_path):
    budget = HostApiBudget(tmp_path / "b.sqlite3", 7, 30.0)
    budget.acquire("/a")
    copy = pickle.loads(pickle.dumps(budget))
    assert (copy.path, copy.max_calls, copy.window) == (budget.path, 7, 30.0)
    copy.lock_out(100)
    assert budget.locked_for() > 90


def test_a_forked_child_opens_its_own_connection(tmp_path):
    budget = HostApiBudget(tmp_path / "b.sqlite3", 10)
    budget.acquire("/a")
    inherited = budget._local.conn
    pid = os.fork()
    if pid == 0:
        try:
            budget.acquire("/a")
            os._exit(0 if budget._local.conn is not inherited else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    budget.acquire("/a")               # the parent's connection still works
    assert _calls_in_file(budget.path) == 3


def test_a_corrupt_file_is_named_kept_and_the_process_limits_itself(tmp_path, caplog):
    path = tmp_path / DB_FILENAME
    junk = b"this is not a database, whatever it is\n" * 100
    path.write_bytes(junk)
    t = FakeTime()
    budget = HostApiBudget(path, 2, clock=t.clock, sleep=t.sleep)
    with caplog.at_level(logging.WARNING, logger="postdeck.geelark"):
        for _ in range(3):
            budget.acquire("/a")
        budget.pause("/b", 5)
        assert budget.locked_for() == 0
    assert t.sleeps and t.now >= 1060, "the in-process fallback still limits"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0].getMessage()
    assert path.read_bytes() == junk


def test_an_unusable_folder_falls_back_instead_of_failing(tmp_path, caplog):
    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("a file where the state folder should be")
    budget = host_budget(not_a_folder)
    with caplog.at_level(logging.WARNING, logger="postdeck.geelark"):
        budget.acquire("/a")
        budget.lock_out(60)
        assert budget.locked_for() > 0
    assert "cannot be used" in caplog.text and str(budget.path) in caplog.text


def test_the_geelark_backend_uses_the_host_budget(tmp_path, monkeypatch):
    from engine.devices.real import make_real_backend
    monkeypatch.setenv("GEELARK_APP_ID", TEST_APP_ID)
    monkeypatch.setenv("GEELARK_API_KEY", TEST_API_KEY)
    ctx = SimpleNamespace(settings=SimpleNamespace(flow="instagram_reel", appium_capabilities={}),
                          state_dir=tmp_path / "campaign", host_state_dir=tmp_path / "host",
                          root=tmp_path)
    limiter = make_real_backend(ctx, "geelark").provider.client.limiter
    assert isinstance(limiter, HostApiBudget)
    assert limiter.path == tmp_path / "host" / DB_FILENAME
