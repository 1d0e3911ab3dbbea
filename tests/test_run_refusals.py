"""A run that cannot work says so before any worker starts (exit 1, one message, nothing
written), a run whose every worker died exits 1, and a run whose remaining work is due only
after today ends by itself. Through the CLI, with real processes."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from filelock import FileLock

from engine import columns as C
from engine.context import PostingContext
from engine.rules import now_iso
from engine.tracker import ProgressStore

from conftest import REPO, fast_sim, postdeck, write_campaign
from helpers import one_message as refused, row, tree_snapshot as snapshot, write_progress


FAKE_ADB = REPO / "tests" / "fake_adb"


def run(campaigns_dir: Path, *args: str, env: dict | None = None, timeout: float = 120):
    return postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", "--run",
                    *args, env=env, timeout=timeout)


def no_credentials_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: "" for k in ("GEELARK_APP_ID", "GEELARK_API_KEY", "GEELARK_TOKEN")}
    env["GEELARK_CREDENTIALS_FILE"] = str(tmp_path / "no-such-credentials.json")
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def campaign(campaigns_dir):
    return write_campaign(campaigns_dir / "c", ["a", "b"], 4,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})


def set_backend(root: Path, **settings) -> None:
    data = json.loads((root / "campaign.json").read_text())
    data.update(settings)
    (root / "campaign.json").write_text(json.dumps(data))


def test_geelark_without_credentials_is_refused_before_anything_is_written(
        campaigns_dir, campaign, tmp_path):
    set_backend(campaign, backend="geelark")
    before = snapshot(campaigns_dir)
    refused(run(campaigns_dir, env=no_credentials_env(tmp_path)), "geelark backend cannot run",
            "credentials")
    assert snapshot(campaigns_dir) == before


def test_a_missing_adb_is_refused_at_once_not_per_job(campaigns_dir, campaign, tmp_path):
    set_backend(campaign, backend="adb")
    empty = tmp_path / "bin"
    empty.mkdir()
    before = snapshot(campaigns_dir)
    started = time.monotonic()
    refused(run(campaigns_dir, env={"PATH": str(empty)}), "adb not found")
    refused(run(campaigns_dir, "--phones", "x", env={"PATH": str(empty)}), "adb not found")
    assert time.monotonic() - started < 20
    assert snapshot(campaigns_dir) == before


def test_a_flow_that_does_not_exist_is_refused(campaigns_dir, campaign):
    set_backend(campaign, backend="adb", flow="no_such_flow")
    before = snapshot(campaigns_dir)
    refused(run(campaigns_dir), "campaign.json", "no_such_flow")
    assert snapshot(campaigns_dir) == before


def test_a_geelark_host_that_refuses_connections_is_refused(campaigns_dir, campaign, tmp_path):
    set_backend(campaign, backend="geelark")
    env = no_credentials_env(tmp_path, GEELARK_APP_ID="app", GEELARK_API_KEY="key-secret-123",
                             GEELARK_BASE_URL=f"http://127.0.0.1:{free_port()}",
                             PATH=f"{FAKE_ADB}{os.pathsep}{os.environ['PATH']}")
    before = snapshot(campaigns_dir)
    message = refused(run(campaigns_dir, env=env, timeout=60), "geelark backend cannot run",
                      "ConnectError")
    assert "key-secret-123" not in message
    assert snapshot(campaigns_dir) == before


def test_a_run_whose_every_worker_dies_at_start_exits_1(campaigns_dir, campaign):
    # Something that is not a postdeck run holds phone a's lock (no owner file beside it), so
    # the check passes and the bound worker finds its phone taken.
    phones = campaigns_dir / ".postdeck" / "phones"
    phones.mkdir(parents=True)
    with FileLock(str(phones / "a.lock")):
        res = run(campaigns_dir, "--workers", "1", "--phones", "a")
    refused(res, "every worker died", "held by another process")


def test_an_account_name_too_long_for_a_file_name_still_runs(campaigns_dir):
    long_name = "acc_" + "x" * 300
    root = write_campaign(campaigns_dir / "c", [long_name, long_name[:-1]], 4,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    res = run(campaigns_dir, "--workers", "2")
    assert res.returncode == 0, res.stderr
    rows = ProgressStore.for_context(PostingContext.for_campaign_dir(root, campaigns_dir)).read().rows
    assert sorted(r[C.STATUS] for r in rows) == ["success", "success"]


def test_a_run_ends_when_its_only_work_is_due_after_today(campaigns_dir):
    campaign = write_campaign(campaigns_dir / "c", ["a"], 1,
                              {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    now = time.time()
    write_progress(campaign / "progress.csv", [
        row("v000.mp4_c", "a", C.RETRYING, retry_at=now_iso(now + 2 * 86400), attempts="1",
            error="network error", error_type="network", error_category="infrastructure",
            completed_at=now_iso(now - 60), video_path=str(campaign / "videos" / "v000.mp4"))])
    res = run(campaigns_dir, "--max-passes", "5", timeout=60)
    assert res.returncode == 0, res.stderr
    reset = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c",
                     "--reset-day")
    assert reset.returncode == 0, reset.stderr


def test_a_run_ends_when_every_account_rests_past_midnight(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a"], 3, {
        "max_posts_per_account_per_day": 1, "cooldown_after_consecutive": 1,
        "cooldown_minutes": 2 * 1440,
        "simulation": fast_sim(failures={"a": "network error while uploading"})})
    res = run(campaigns_dir, "--retry-delay", "0", timeout=60)
    assert res.returncode == 0, res.stderr
    status = json.loads(postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign",
                                 "c", "--status", "--json").stdout)
    assert status["accounts"][0]["state"] == "COOLDOWN"
    assert ProgressStore.for_context(PostingContext.for_campaign_dir(root, campaigns_dir)).stats()[
        "retrying"] == 1


# --- a full disk ---------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs of our own (root only): what a full disk does, for real."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
            capture_output=True).returncode != 0:
        pytest.skip("needs root to mount a small tmpfs")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError:
            pass


def test_a_full_disk_refuses_the_run_and_a_reset_changes_nothing(small_disk):
    campaigns = small_disk / "campaigns"
    root = write_campaign(campaigns / "c", ["a"], 2,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    assert postdeck("--no-ui", "--campaigns-dir", str(campaigns), "--campaign", "c",
                    "--seed-only").returncode == 0
    fill(small_disk)
    before = snapshot(root)
    refused(run(campaigns), "disk is full")
    assert snapshot(root) == before
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns), "--campaign", "c", "--reset-day")
    refused(res, "progress.csv", "nothing was changed")
    # The reset took the run lock (an empty file in .postdeck/, as every reset does); the
    # campaign's own files are as they were, and no archive was left behind.
    after = {k: v for k, v in snapshot(root).items() if not k.startswith(".postdeck")}
    assert after == before, "a failed reset left something behind"
