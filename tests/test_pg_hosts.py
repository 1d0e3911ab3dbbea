"""Several hosts on one PostgreSQL store, as real processes: two supervisors (POSTDECK_HOST=a and
b), each with its own copy of the campaign folder, finish one day together; a host killed
outright is taken over once its leases expire; a worker stopped past its lease does not post;
a server restart mid-run is ridden out. The invariants are checked on the database after each
test (conftest.py's pg_url)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from conftest import REPO, fast_sim, write_campaign
from engine.rules import parse_time
from pg_helpers import db_rows

LIMIT = 2
ACCOUNTS = [("a1", "p1"), ("a2", "p2"), ("a3", "p3"), ("a4", "p4")]


def host_folder(top: Path, host: str, videos: int = 8, sim: dict | None = None,
                **settings) -> Path:
    """Host `host`'s own copy of campaign 'farm': its campaigns folder and host state."""
    root = write_campaign(top / host / "campaigns" / "farm", ACCOUNTS, videos, settings={
        "max_posts_per_account_per_day": LIMIT, "simulation": sim or fast_sim(),
        "lease_seconds": 6, **settings})
    return root.parent


def host_env(url: str, host: str, extra: dict | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "POSTDECK_STORE": url,
           "POSTDECK_HOST": host, **(extra or {})}
    env.pop("POSTDECK_CAMPAIGNS_DIR", None)
    env.pop("POSTDECK_STATE_DIR", None)
    return env


def start_run(url: str, host: str, campaigns: Path, workers: int = 2,
              env: dict | None = None) -> subprocess.Popen:
    """`postdeck --no-ui --run` for host `host`, in a session of its own (so a test can kill
    every process of the host at once)."""
    return subprocess.Popen([sys.executable, "-m", "console", "--no-ui", "--campaign", "farm",
                             "--campaigns-dir", str(campaigns), "--run", "--workers",
                             str(workers)], env=host_env(url, host, env), cwd=campaigns,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def cli(url: str, host: str, campaigns: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", "--no-ui", "--campaign", "farm",
                           "--campaigns-dir", str(campaigns), *args], env=host_env(url, host),
                          cwd=campaigns, capture_output=True, text=True, timeout=120)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = predicate()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def statuses(url: str) -> dict[str, int]:
    got: dict[str, int] = {}
    for r in db_rows(url):
        if r["day_no"] == 1:
            got[r["status"]] = got.get(r["status"], 0) + 1
    return got


def test_two_hosts_finish_one_day_together(pg_url, tmp_path):
    sim = fast_sim(post_seconds=0.3)
    a, b = host_folder(tmp_path, "a", sim=sim), host_folder(tmp_path, "b", sim=sim)
    runs = [start_run(pg_url, "a", a), start_run(pg_url, "b", b)]
    results = [finish(p) for p in runs]
    for code, out, err in results:
        assert code == 0, (out, err)
    rows = [r for r in db_rows(pg_url) if r["day_no"] == 1]
    # 4 accounts at a limit of 2: 8 posts, seeded once although both hosts seeded
    assert len(rows) == 8
    assert {r["status"] for r in rows} == {"success"}
    assert {r["host"] for r in rows} == {"a", "b"}, "both hosts took part"
    # each host's status shows the other host's workers had leases; none is left behind
    status = cli(pg_url, "b", b, "--status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"store": "postgresql://postdeck@127.0.0.1' in status.stdout


def test_a_host_killed_outright_is_taken_over_when_its_leases_expire(pg_url, tmp_path):
    sim = fast_sim(post_seconds=1.0, boot_seconds=0.3)
    a, b = host_folder(tmp_path, "a", videos=8, sim=sim), host_folder(tmp_path, "b", sim=sim)
    host_a = start_run(pg_url, "a", a)
    wait_for(lambda: any(r["host"] == "a" and r["status"] == "claimed"
                         for r in db_rows(pg_url)), 60, "host a to claim a job")
    host_b = start_run(pg_url, "b", b, workers=1)
    time.sleep(0.5)
    killed_at = time.time()
    os.killpg(host_a.pid, signal.SIGKILL)           # every process of host a
    host_a.wait(10)
    held = [r for r in db_rows(pg_url) if r["host"] == "a" and r["status"] == "claimed"]
    code, out, err = finish(host_b, timeout=180)
    assert code == 0, (out, err)
    rows = {r["job_id"]: r for r in db_rows(pg_url) if r["day_no"] == 1}
    assert all(r["status"] in ("success", "failed") for r in rows.values()), rows
    for r in held:     # a's claims were recovered by b: by the rules, not guessed
        after = rows[r["job_id"]]
        if after["status"] == "failed":
            assert after["error_type"] == "outcome_unknown"     # it was publishing
        else:
            assert after["host"] == "b"
    log = (b / "farm" / ".postdeck" / "logs" / "supervisor.log").read_text()
    assert "lease of worker" in log and "on host a expired" in log
    assert time.time() - killed_at >= 6, "recovered before a's lease ran out"


def test_a_worker_stopped_past_its_lease_does_not_post(pg_url, tmp_path):
    """SIGSTOP host a (its worker in `preparing`, booting a slow phone) past the lease: host b
    recovers the claim and posts the job; a's worker, continued, must not post it too."""
    slow = fast_sim(boot_seconds=4.0, post_seconds=0.2)
    a = host_folder(tmp_path, "a", videos=1, sim=slow)
    b = host_folder(tmp_path, "b", videos=1, sim=fast_sim(post_seconds=0.2))
    host_a = start_run(pg_url, "a", a, workers=1)
    job = wait_for(lambda: next((r for r in db_rows(pg_url) if r["status"] == "claimed"
                                 and r["phase"] == "preparing"), None), 60,
                   "a's worker to be preparing")
    group = [psutil.Process(host_a.pid), *psutil.Process(host_a.pid).children(recursive=True)]
    for proc in group:
        proc.send_signal(signal.SIGSTOP)
    try:
        host_b = start_run(pg_url, "b", b, workers=1)
        code, out, err = finish(host_b, timeout=120)
        assert code == 0, (out, err)
        done = next(r for r in db_rows(pg_url) if r["job_id"] == job["job_id"])
        assert done["status"] == "success" and done["host"] == "b", done
    finally:
        # the worker first: its supervisor, continued, would kill it as hung before it tried
        for proc in group[1:]:
            proc.send_signal(signal.SIGCONT)
        worker_log = a / "farm" / ".postdeck" / "logs" / "worker-0.log"
        wait_for(lambda: "lost the claim" in worker_log.read_text(), 20,
                 "the continued worker to try its next write")
        group[0].send_signal(signal.SIGCONT)
    code, out, err = finish(host_a, timeout=60)
    log = (a / "farm" / ".postdeck" / "logs" / "worker-0.log").read_text()
    assert "lost the claim" in log, log
    assert f"success {job['job_id']}" not in log
    assert f"publishing {job['job_id']}" not in log
    rows = [r for r in db_rows(pg_url) if r["job_id"] == job["job_id"]]
    assert [r["status"] for r in rows] == ["success"]


def test_a_server_restart_mid_run_is_ridden_out(pg_url, pg_server, tmp_path):
    a = host_folder(tmp_path, "a", sim=fast_sim(post_seconds=0.4))
    run = start_run(pg_url, "a", a)
    wait_for(lambda: statuses(pg_url).get("success", 0) >= 1, 60, "a first post")
    pg_server.restart()                 # every connection drops
    code, out, err = finish(run, timeout=180)
    assert code == 0, (out, err)
    assert statuses(pg_url) == {"success": 8}


def test_reset_day_is_refused_while_another_host_holds_a_lease(pg_url, tmp_path):
    a = host_folder(tmp_path, "a", sim=fast_sim(post_seconds=2.0))
    b = host_folder(tmp_path, "b")
    run = start_run(pg_url, "a", a, workers=1)
    try:
        wait_for(lambda: statuses(pg_url).get("claimed"), 60, "a claim on host a")
        res = cli(pg_url, "b", b, "--reset-day")
        assert res.returncode == 1
        pids = [p.pid for p in psutil.Process(run.pid).children(recursive=True)]
        assert "host a (pids" in res.stderr, res.stderr
        assert any(str(pid) in res.stderr for pid in pids), (res.stderr, pids)
        assert res.stderr.count("\n") == 1
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(30)


def test_idle_workers_wake_on_another_hosts_change(pg_url, tmp_path):
    """Host b's worker waits while a's claims run; a's success (NOTIFY) wakes it at once, not at
    its next recheck: the day ends soon after a's last post."""
    a = host_folder(tmp_path, "a", videos=2, sim=fast_sim(post_seconds=1.5))
    b = host_folder(tmp_path, "b", videos=2)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("LISTEN postdeck_1")   # the campaign's channel: its first campaign
        host_a = start_run(pg_url, "a", a, workers=2)
        wait_for(lambda: statuses(pg_url).get("claimed", 0) == 2, 60, "a's two claims")
        host_b = start_run(pg_url, "b", b, workers=1)
        assert finish(host_a)[0] == 0
        got = list(conn.notifies(timeout=1, stop_after=1))
        assert got, "no NOTIFY on the campaign's channel"
        assert finish(host_b)[0] == 0
    # b's worker began waiting about when a's posts began (1.5 s each): its own recheck would
    # come some 3.5 s after a's last success; the NOTIFY wakes it at once. Log times are to the
    # second, hence the margin.
    last_post = max(parse_time(r["completed_at"]) for r in db_rows(pg_url))
    log = (b / "farm" / ".postdeck" / "logs" / "worker-0.log").read_text()
    left = next(line for line in log.splitlines() if "nothing more to do today" in line)
    left_at = time.mktime(time.strptime(left[:19], "%Y-%m-%d %H:%M:%S"))
    assert left_at - last_post < 2.5, "host b waited for its recheck, not the NOTIFY"


def test_a_dead_hosts_geelark_task_is_settled_by_another_host_asking_geelark(pg_url, tmp_path):
    """geelark-task: host a's worker created a task that is still running when every process of
    host a is killed; the task then completes. Host b, once a's lease expired, takes the claim
    over and asks Geelark: a success with its link, no second task, no unknown outcome."""
    from geelark_fake_server import FakeGeelark
    from test_geelark_task_cli import env_for
    with FakeGeelark() as geelark:
        geelark.add_phone("g-1", "farm-01")
        geelark.script_task(["waiting", "in_progress"])          # the last status sticks
        extra = env_for(geelark)
        settings = {"backend": "geelark-task", "task_poll_seconds": 0.1}
        folders = {}
        for host in "ab":
            folders[host] = write_campaign(
                tmp_path / host / "campaigns" / "farm", [("ann", "farm-01")], 1, settings={
                    "max_posts_per_account_per_day": LIMIT, "lease_seconds": 6,
                    **settings}).parent
        host_a = start_run(pg_url, "a", folders["a"], workers=1, env=extra)
        task = wait_for(lambda: next((r for r in db_rows(pg_url) if r["status"] == "claimed"
                                      and r["task_id"]), None), 60, "a task id in the database")
        os.killpg(host_a.pid, signal.SIGKILL)
        host_a.wait(10)
        geelark.release_task(task["task_id"], ["completed"])
        host_b = start_run(pg_url, "b", folders["b"], workers=1, env=extra)
        code, out, err = finish(host_b, timeout=120)
        assert code == 0, (out, err)
        done, = db_rows(pg_url)
        assert done["status"] == "success", done
        assert done["task_id"] == task["task_id"] and done["video_id"].startswith("https://")
        assert done["host"] == "b"
        assert len(geelark.created_tasks) == 1, "posted again"
        log = (folders["b"] / "farm" / ".postdeck" / "logs" / "supervisor.log").read_text()
        assert f"task {task['task_id']} of {task['job_id']} posted: success" in log


def test_two_supervisors_with_one_host_name_are_refused(pg_url, tmp_path):
    """The run lock is per campaign and host in the database too: a second host that was given
    the same POSTDECK_HOST (or one folder mounted on two hosts) does not start, so it cannot
    recover the first one's live claims as its own."""
    a = host_folder(tmp_path, "a", sim=fast_sim(post_seconds=2.0))
    twin = host_folder(tmp_path, "twin")
    run = start_run(pg_url, "a", a, workers=1)
    try:
        wait_for(lambda: statuses(pg_url).get("claimed"), 60, "a claim on host a")
        res = cli(pg_url, "a", twin, "--run")
        assert res.returncode == 1
        assert "another supervisor with this host name" in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
        assert statuses(pg_url).get("claimed") == 1, "the twin touched a's claim"
    finally:
        os.killpg(run.pid, signal.SIGTERM)
        run.wait(30)
