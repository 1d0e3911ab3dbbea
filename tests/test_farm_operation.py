"""A real farm's economics and rhythm, through the CLI on the simulated backend: phones on only
while they work, the posting window, the gap between posts on a phone, staggered starts,
evidence of every failed attempt, and alerts to a command and a webhook."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine import columns as C
from engine.context import PostingContext
from engine.evidence import read_evidence
from engine.rules import parse_time

import test_runs as runs
from conftest import REPO, fast_sim, postdeck, write_campaign

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def status(campaigns_dir: Path, name: str = "c") -> dict:
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", name,
                   "--status", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def run(campaigns_dir: Path, *extra: str, name: str = "c", timeout: float = 120):
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", name, "--run",
                   *extra, timeout=timeout)
    assert res.returncode == 0, res.stderr + res.stdout
    return res


def spans_by_phone(ctx: PostingContext) -> dict[str, list[tuple[float, float]]]:
    """(claimed_at, completed_at) of every finished job, per phone, in claim order."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in runs.rows_of(ctx):
        if r[C.COMPLETED_AT]:
            out[r[C.PHONE_ID]].append((parse_time(r[C.CLAIMED_AT]), parse_time(r[C.COMPLETED_AT])))
    return {p: sorted(s) for p, s in out.items()}


# --- phones on only while they work ----------------------------------------------------------------
def test_phones_are_off_after_the_run_and_on_time_matches_the_work(campaigns_dir):
    """With a gap between posts, a phone is stopped after every job: its on-time is its boots and
    its posts, and nothing is left on at the end."""
    boot, post, jobs_per_phone = 0.4, 0.6, 3
    sim = fast_sim(boot_seconds=boot, post_seconds=post)
    accounts = [(f"a{p}{i}", f"phone{p}") for p in range(2) for i in range(jobs_per_phone)]
    root = write_campaign(campaigns_dir / "c", accounts, len(accounts),
                          {"simulation": sim, "min_gap_seconds": 1.0})
    run(campaigns_dir, "--workers", "2")
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    runs.assert_invariants(ctx)
    st = status(campaigns_dir)
    assert st["counts"]["success"] == len(accounts)
    phones = {p["phone"]: p for p in st["phones"]}
    assert set(phones) == {"phone0", "phone1"}
    needed = jobs_per_phone * (boot + post)
    for phone in phones.values():
        assert phone["state"] == "off" and phone["worker_id"] is None, phone
        assert needed * 0.8 <= phone["on_seconds_today"] <= needed * 1.2, (phone, needed)


def test_back_to_back_jobs_keep_the_phone_on(campaigns_dir):
    """keep_phone_on_seconds: the next job on the same phone is due at once, so the phone is not
    booted again: its on-time is one boot plus the posts, well under a boot per job."""
    boot, post, jobs = 0.8, 0.3, 4
    sim = fast_sim(boot_seconds=boot, post_seconds=post)
    root = write_campaign(campaigns_dir / "c", [(f"a{i}", "phone0") for i in range(jobs)], jobs,
                          {"simulation": sim, "keep_phone_on_seconds": 30})
    run(campaigns_dir, "--workers", "1")
    phone, = status(campaigns_dir)["phones"]
    assert phone["state"] == "off"
    assert phone["on_seconds_today"] < (boot + jobs * post) * 1.2 < jobs * (boot + post)
    log = (PostingContext.for_campaign_dir(root, campaigns_dir).logs_dir
           / "worker-0.log").read_text()
    assert log.count("keeping phone phone0 on") == jobs - 1


def test_min_gap_holds_between_claims_of_a_phone(campaigns_dir):
    gap = 1.5
    sim = fast_sim(boot_seconds=0.05, post_seconds=0.1)
    accounts = [(f"a{i}", "phone0") for i in range(3)] + [(f"b{i}", "phone1") for i in range(3)]
    root = write_campaign(campaigns_dir / "c", accounts, 6,
                          {"simulation": sim, "min_gap_seconds": gap})
    run(campaigns_dir, "--workers", "2")
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    runs.assert_invariants(ctx)
    spans = spans_by_phone(ctx)
    assert {p: len(s) for p, s in spans.items()} == {"phone0": 3, "phone1": 3}
    for phone, s in spans.items():
        for (_, ended), (claimed, _) in zip(s, s[1:]):
            # times are written to the millisecond
            assert claimed - ended >= gap - 0.002, (phone, ended, claimed)


def test_status_shows_when_an_account_waits_on_its_phones_gap(campaigns_dir):
    sim = fast_sim(boot_seconds=0.05, post_seconds=0.1)
    root = write_campaign(campaigns_dir / "c", [("a0", "phone0"), ("a1", "phone0")], 2,
                          {"simulation": sim, "min_gap_seconds": 600})
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "--no-ui", "--campaigns-dir", str(campaigns_dir),
         "--campaign", "c", "--run"], env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        st = runs.wait_for(lambda: (s := status(campaigns_dir))["counts"]["success"] == 1 and s,
                           timeout=30, what="the first post")
        waiting = [a for a in st["accounts"] if a["waiting"]]
        assert [a["account"] for a in waiting] == ["a1"]
        until = datetime.fromisoformat(waiting[0]["gap_until"]).timestamp()
        assert 550 < until - time.time() <= 600
        assert st["counts"]["claimed"] == 0
    finally:
        postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", "--stop")
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert runs.rows_of(PostingContext.for_campaign_dir(root, campaigns_dir))


def test_stagger_spaces_the_worker_starts(campaigns_dir):
    stagger = 3.0
    sim = fast_sim(boot_seconds=0.05, post_seconds=0.1)
    root = write_campaign(campaigns_dir / "c", [("a0", "phone0"), ("a1", "phone1")], 2,
                          {"simulation": sim, "stagger_seconds": stagger})
    # each worker bound to its phone, so each makes one of the two claims
    run(campaigns_dir, "--workers", "2", "--phones", "phone0,phone1")
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    claims = {r[C.WORKER_ID]: parse_time(r[C.CLAIMED_AT]) for r in runs.rows_of(ctx)}
    assert set(claims) == {"0", "1"}
    # a spawned worker takes up to a second to start (more for the first, cold one), so the
    # claims are a little less than the stagger apart; without it they are a fraction of a second
    assert claims["1"] - claims["0"] >= stagger - 1.0, claims


def test_a_killed_workers_phone_is_turned_off(campaigns_dir, tmp_path):
    sim = fast_sim(boot_seconds=0.1, post_seconds=4.0)
    alerts = tmp_path / "alerts.jsonl"
    root = write_campaign(campaigns_dir / "c", [("a0", "phone0")], 1, {
        "simulation": sim,
        "notify": {"command": [sys.executable, str(_appender(tmp_path)), str(alerts)],
                   "events": ["worker_crashed"]}})
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    sup = runs.start_detached(campaigns_dir, "c", "--workers", "1")
    on = runs.wait_for(lambda: next((p for p in status(campaigns_dir)["phones"]
                                     if p["state"] == "on"), None), timeout=30,
                       what="the phone on")
    pid = next(hb["pid"] for hb in status(campaigns_dir)["workers"] if hb["phone"])
    os.kill(pid, signal.SIGKILL)
    runs.wait_for(lambda: status(campaigns_dir)["phones"][0]["state"] == "off", timeout=30,
                  what="the dead worker's phone off")
    runs.wait_exit(sup, timeout=60)
    assert on["phone"] == "phone0"
    crashed = [json.loads(line) for line in alerts.read_text().splitlines()]
    assert [e["event"] for e in crashed] == ["worker_crashed"]
    assert crashed[0]["phones_turned_off"] == ["phone0"] and crashed[0]["exit_code"] == -9
    assert "turned off phone(s) left on: phone0" in (ctx.logs_dir / "supervisor.log").read_text()


# --- the posting window -----------------------------------------------------------------------------
def _zone_where_it_is_morning() -> str:
    """A fixed-offset zone where the wall clock now reads between 02:00 and 14:00, so a window
    from 22:00 is closed now and opens later the same local day."""
    hour = datetime.now(timezone.utc).hour
    offset = (8 - hour + 12) % 24 - 12        # local hour 8, within a few hours
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


def test_a_closed_window_claims_nothing_and_the_run_waits_until_stopped(campaigns_dir):
    zone = _zone_where_it_is_morning()
    root = write_campaign(campaigns_dir / "c", ["a0", "a1"], 2, {
        "simulation": fast_sim(), "timezone": zone, "posting_window": "22:00-23:30"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "console", "--no-ui", "--campaigns-dir", str(campaigns_dir),
         "--campaign", "c", "--run", "--workers", "2"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        runs.wait_for(lambda: status(campaigns_dir)["running"], timeout=30, what="the run")
        deadline = time.time() + 10
        while time.time() < deadline:
            st = status(campaigns_dir)
            assert st["counts"]["claimed"] == st["counts"]["success"] == 0, st["counts"]
            assert proc.poll() is None, "the run must wait, not end"
            time.sleep(1)
        window = st["posting_window"]
        assert window["open"] is False and window["window"] == "22:00-23:30"
        opens = datetime.fromisoformat(window["opens_at"])
        assert (opens.hour, opens.minute) == (22, 0) and opens.timestamp() > time.time()
        assert {w["state"] for w in st["workers"]} == {"waiting"}
    finally:
        stop = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c",
                        "--stop")
        out, err = proc.communicate(timeout=30)
    assert stop.returncode == 0, stop.stderr
    assert proc.returncode == 0, err
    assert "is closed; the run waits until it opens at" in out + err
    assert opens.isoformat() in out + err
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    assert {r[C.STATUS] for r in runs.rows_of(ctx)} == {C.PENDING}


# --- evidence ---------------------------------------------------------------------------------------
def test_every_failed_attempt_leaves_its_evidence(campaigns_dir):
    sim = fast_sim(failures={"flaky": "network error while uploading"})
    root = write_campaign(campaigns_dir / "c", ["flaky", "fine"], 2,
                          {"simulation": sim, "max_attempts": 3})
    run(campaigns_dir, "--workers", "1", "--retry-delay", "0", "--max-passes", "3")
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    rows = {r[C.ACCOUNT]: r for r in runs.rows_of(ctx)}
    failed = rows["flaky"]
    assert failed[C.STATUS] == C.FAILED and failed[C.ATTEMPTS] == "3"
    attempts = read_evidence(ctx.state_dir, failed[C.JOB_ID])
    assert [a.attempt for a in attempts] == [1, 2, 3]
    for a in attempts:
        assert sorted(a.files) == ["page.xml", "screen.png", "step.txt"]
        assert (a.folder / "screen.png").read_bytes().startswith(PNG_SIGNATURE)
        assert "network error while uploading" in (a.folder / "page.xml").read_text()
        assert a.step and a.error == "network error while uploading" and a.at
    assert read_evidence(ctx.state_dir, rows["fine"][C.JOB_ID]) == []


def test_old_evidence_is_pruned_at_run_start_and_nothing_else(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a0"], 1,
                          {"simulation": fast_sim(), "evidence_days": 2})
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    old = ctx.state_dir / "evidence" / "gone_c" / "1"
    recent = ctx.state_dir / "evidence" / "kept_c" / "1"
    for folder in (old, recent):
        folder.mkdir(parents=True)
        (folder / "step.txt").write_text("step: share\n")
    three_days_ago = time.time() - 3 * 86400
    os.utime(old / "step.txt", (three_days_ago, three_days_ago))
    run(campaigns_dir)
    assert not old.exists() and (recent / "step.txt").exists()
    assert (root / "accounts.txt").exists() and (root / "videos").is_dir()


# --- alerts -----------------------------------------------------------------------------------------
def _appender(tmp_path: Path) -> Path:
    """A notify command: appends the JSON object it reads on stdin to the file it is given."""
    script = tmp_path / "append_alert.py"
    script.write_text("import sys\nline = sys.stdin.read()\n"
                      "open(sys.argv[1], 'a').write(line if line.endswith('\\n') else line + '\\n')\n")
    return script


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_run_ended_reaches_the_command_and_the_webhook_with_the_counts(campaigns_dir, tmp_path,
                                                                       webhook):
    alerts = tmp_path / "alerts.jsonl"
    token = "s3cr3t-t0ken"
    url = f"http://127.0.0.1:{webhook.server_address[1]}/hook/{token}?key={token}"
    sim = fast_sim(failures={"bad": "account suspended"})
    root = write_campaign(campaigns_dir / "c", ["good", "bad", "other"], 3, {
        "simulation": sim,
        "notify": {"command": [sys.executable, str(_appender(tmp_path)), str(alerts)],
                   "webhook": url}})
    run(campaigns_dir, "--workers", "2")
    events = [json.loads(line) for line in alerts.read_text().splitlines()]
    names = [e["event"] for e in events]
    assert names[0] == "run_started" and names[-1] == "run_ended"
    assert names.count("account_blocked") == 1
    blocked = next(e for e in events if e["event"] == "account_blocked")
    assert blocked["account"] == "bad" and blocked["error_type"] == "suspended"
    ended = events[-1]
    final = status(campaigns_dir)["counts"]
    assert {k: ended["counts"][k] for k in final} == final
    assert ended["counts"]["success"] == 2 and ended["counts"]["failed"] == 1
    runs.wait_for(lambda: len(webhook.received) == len(events), timeout=15,
                  what="the webhook's events")
    assert [body for _, _, body in webhook.received] == events
    assert all(ctype == "application/json" for _, ctype, _ in webhook.received)
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    for log in ctx.logs_dir.glob("*.log"):
        assert token not in log.read_text(), log


def test_a_hanging_notifier_does_not_delay_the_run(campaigns_dir, tmp_path):
    """A command that never returns: the posts go at the pace they go without it, and the run
    ends soon after its last post (the notifier gets a few seconds to finish, no more)."""
    hang = tmp_path / "hang.py"
    hang.write_text("import time\ntime.sleep(120)\n")
    sim = fast_sim(post_seconds=0.2)
    root = write_campaign(campaigns_dir / "c", [f"a{i}" for i in range(4)], 4, {
        "simulation": sim, "notify": {"command": [sys.executable, str(hang)]}})
    started = time.time()
    run(campaigns_dir, "--workers", "1")
    took = time.time() - started
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    spans = spans_by_phone(ctx)
    assert sum(len(s) for s in spans.values()) == 4
    first = min(s[0][0] for s in spans.values())
    last = max(s[-1][1] for s in spans.values())
    assert last - first < 10, "posting waited on the notifier"
    assert took < 40, f"the run took {took:.0f}s with a notifier that hangs for 120s"
    assert "notif" in (ctx.logs_dir / "supervisor.log").read_text().lower()


def test_phones_left_on_by_a_killed_run_are_turned_off_by_the_next(campaigns_dir):
    """SIGKILL to the supervisor and its worker leaves the phone recorded on (it still bills);
    the next run of the campaign turns it off before it starts any worker."""
    sim = fast_sim(boot_seconds=0.1, post_seconds=5.0)
    root = write_campaign(campaigns_dir / "c", [("a0", "phone0"), ("a1", "phone0")], 2,
                          {"simulation": sim, "max_posts_per_account_per_day": 1})
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    sup = runs.start_detached(campaigns_dir, "c", "--workers", "1")
    runs.wait_for(lambda: status(campaigns_dir)["phones"][0]["state"] == "on", timeout=30,
                  what="the phone on")
    worker = next(hb["pid"] for hb in status(campaigns_dir)["workers"])
    os.kill(sup, signal.SIGKILL)
    os.kill(worker, signal.SIGKILL)
    runs.wait_exit(sup, timeout=10)
    runs.wait_for(lambda: not status(campaigns_dir)["workers"], timeout=60, what="no workers")
    assert status(campaigns_dir)["phones"][0]["state"] == "on"
    run(campaigns_dir, "--workers", "1", "--retry-delay", "0")
    assert status(campaigns_dir)["phones"][0]["state"] == "off"
    log = (ctx.logs_dir / "supervisor.log").read_text()
    assert "turned off phone(s) left on: phone0" in log
    runs.assert_invariants(ctx)


def test_a_video_that_does_not_decode_fails_before_its_phone_starts(campaigns_dir):
    sim = fast_sim(boot_seconds=0.2, post_seconds=0.2)
    root = write_campaign(campaigns_dir / "c", [("good", "phone0"), ("bad", "phone1")], 2,
                          {"simulation": sim, "check_videos": True}, real_videos=True)
    (root / "videos" / "v001.mp4").write_bytes(b"<html>not a video</html>")
    run(campaigns_dir, "--workers", "2")
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    rows = {r[C.ACCOUNT]: r for r in runs.rows_of(ctx)}
    assert rows["good"][C.STATUS] == C.SUCCESS
    bad = rows["bad"]
    assert (bad[C.STATUS], bad[C.ERROR_TYPE], bad[C.ERROR_CATEGORY], bad[C.ATTEMPTS]) == (
        C.FAILED, "corrupted_video", "content", "1")
    assert "v001.mp4 is not a video file" in bad[C.ERROR]
    phones = {p["phone"]: p for p in status(campaigns_dir)["phones"]}
    assert phones["phone1"]["on_seconds_today"] == 0, "the phone was never started"
    assert phones["phone0"]["on_seconds_today"] > 0
    attempt, = read_evidence(ctx.state_dir, bad[C.JOB_ID])
    assert attempt.step == "check_video" and attempt.files == ["step.txt"]
