"""The account-safety promises under an operator's habits and damaged files, through the CLI with
real processes: a torn ledger line, a renamed campaign folder, several resets in one day, two
campaigns sharing accounts, a stale heartbeat. Each of these broke the product once."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil

from engine import columns as C
from engine.campaigns import video_name
from engine.context import PostingContext
from engine.tracker import ProgressStore

from conftest import fast_sim, postdeck, write_campaign
from helpers import age_one_day, assert_daily_limits


def cli(campaigns_dir: Path, campaign: str, *args: str, **kw) -> subprocess.CompletedProcess:
    return postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", campaign,
                    *args, **kw)


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, (res.stdout, res.stderr)
    return res


def posted_names(*roots: Path) -> Counter:
    """Video file name -> successes, over every progress file of the folders (archives too)."""
    names: Counter = Counter()
    for root in roots:
        for path in Path(root).glob("*progress*.csv"):
            for r in ProgressStore(path, root / "posted.csv",
                                   PostingContext.for_campaign_dir(root).settings).read().rows:
                if r[C.STATUS] == C.SUCCESS:
                    names[video_name(r[C.VIDEO_PATH])] += 1
    return names


def one_account_campaign(campaigns_dir: Path, name: str = "c", videos: int = 4) -> Path:
    return write_campaign(campaigns_dir / name, ["a"], videos,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})


# --- 1. a torn ledger line -----------------------------------------------------------------------
def test_a_torn_ledger_line_never_loses_an_entry_over_three_days(campaigns_dir, tmp_path):
    root = one_account_campaign(campaigns_dir)
    ok(cli(campaigns_dir, "c", "--run"))
    ledger = root / "posted.csv"
    whole = ledger.read_bytes()
    ledger.write_bytes(whole[:-12])          # the last write was cut off mid-line
    age_one_day(root)
    ok(cli(campaigns_dir, "c", "--reset-day", "--force-reseed", "--run"))
    store = ProgressStore.for_context(PostingContext.for_campaign_dir(root, campaigns_dir))
    book = store.read_ledger()
    assert [video_name(e["video_path"]) for e in book.entries] == ["v001.mp4"]
    assert [d.line for d in book.damaged] == [2]
    status = json.loads(ok(cli(campaigns_dir, "c", "--status", "--json")).stdout)
    assert any("posted.csv, line 2" in w for w in status["warnings"]), status["warnings"]
    assert "warning: " in ok(cli(campaigns_dir, "c", "--status")).stdout
    # The operator tidies the archives away: the ledger alone must now guard both videos.
    backup = tmp_path / "backup"
    backup.mkdir()
    for archive in root.glob("progress_*.csv"):
        shutil.move(str(archive), backup / archive.name)
    age_one_day(root)
    ok(cli(campaigns_dir, "c", "--reset-day", "--force-reseed", "--run"))
    names = posted_names(root, backup)
    assert names == {"v000.mp4": 1, "v001.mp4": 1, "v002.mp4": 1}, names
    assert ledger.read_bytes().startswith(whole[:-12]), "the ledger was rewritten"


# --- 2. a renamed campaign folder ----------------------------------------------------------------
def test_a_renamed_campaign_folder_keeps_its_ledger(campaigns_dir, tmp_path):
    one_account_campaign(campaigns_dir, "x")
    ok(cli(campaigns_dir, "x", "--run"))
    (campaigns_dir / "x").rename(campaigns_dir / "y")
    root = campaigns_dir / "y"
    age_one_day(root)
    ok(cli(campaigns_dir, "y", "--reset-day"))
    aside = tmp_path / "aside"
    aside.mkdir()
    for archive in root.glob("progress_*.csv"):   # only the ledger may guard now
        shutil.move(str(archive), aside / archive.name)
    seeded = ProgressStore.for_context(PostingContext.for_campaign_dir(root, campaigns_dir))
    ok(cli(campaigns_dir, "y", "--seed-only"))
    assert [video_name(r[C.VIDEO_PATH]) for r in seeded.read().rows] == ["v001.mp4"]
    ok(cli(campaigns_dir, "y", "--run"))
    assert posted_names(root, aside) == {"v000.mp4": 1, "v001.mp4": 1}


def test_jobs_seeded_before_a_rename_post_the_campaigns_own_videos(campaigns_dir):
    write_campaign(campaigns_dir / "x", ["a", "b"], 4,
                   {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    ok(cli(campaigns_dir, "x", "--seed-only"))
    (campaigns_dir / "x").rename(campaigns_dir / "y")
    root = campaigns_dir / "y"
    ok(cli(campaigns_dir, "y", "--seed-only"))    # no second row for a video of the old name
    ok(cli(campaigns_dir, "y", "--run"))
    rows = ProgressStore.for_context(PostingContext.for_campaign_dir(root, campaigns_dir)).read().rows
    assert Counter(r[C.STATUS] for r in rows) == {"success": 2}
    assert posted_names(root) == {"v000.mp4": 1, "v001.mp4": 1}


def test_a_progress_row_naming_a_file_outside_the_campaign_is_never_posted(campaigns_dir):
    root = one_account_campaign(campaigns_dir)
    ok(cli(campaigns_dir, "c", "--seed-only"))
    path = root / "progress.csv"
    path.write_text(path.read_text().replace(str(root / "videos" / "v000.mp4"),
                                             "../../../../etc/passwd"))
    ok(cli(campaigns_dir, "c", "--run"))
    (row,) = ProgressStore.for_context(PostingContext.for_campaign_dir(root, campaigns_dir)).read().rows
    assert row[C.STATUS] == C.FAILED and row[C.ERROR_TYPE] == "video_missing", row
    assert "nothing was pushed" in row[C.ERROR]
    assert not (root / "posted.csv").exists()


# --- 3. the limit is per account and calendar day ------------------------------------------------
def test_three_resets_in_one_day_post_once_per_account(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a", "b", "d"], 12,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    for _ in range(3):
        ok(cli(campaigns_dir, "c", "--reset-day", "--force-reseed", "--run", "--workers", "2"))
    used = assert_daily_limits([root], 1)
    assert sorted(a for a, _ in used) == ["a", "b", "d"]
    status = json.loads(ok(cli(campaigns_dir, "c", "--status", "--json")).stdout)
    assert {a["account"]: (a["state"], a["posts_today"]) for a in status["accounts"]} == {
        "a": ("LIMIT", 1), "b": ("LIMIT", 1), "d": ("LIMIT", 1)}
    # a calendar day later the accounts post again
    age_one_day(root)
    ok(cli(campaigns_dir, "c", "--reset-day", "--force-reseed", "--run"))
    assert sum(posted_names(root).values()) == 6
    assert_daily_limits([root], 1)


def test_a_limit_of_two_holds_across_resets(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a", "b"], 12,
                          {"max_posts_per_account_per_day": 2, "simulation": fast_sim()})
    ok(cli(campaigns_dir, "c", "--seed-only"))
    ok(cli(campaigns_dir, "c", "--run"))
    ok(cli(campaigns_dir, "c", "--reset-day", "--force-reseed", "--run"))
    used = assert_daily_limits([root], 2)
    assert set(used.values()) == {2}


def test_two_campaigns_running_at_once_share_each_accounts_limit(campaigns_dir):
    # same accounts, different phones: only the account rule can keep them apart
    for name, suffix in (("c1", "p"), ("c2", "q")):
        write_campaign(campaigns_dir / name, [("a", f"a-{suffix}"), ("b", f"b-{suffix}")], 6,
                       {"max_posts_per_account_per_day": 1,
                        "simulation": fast_sim(post_seconds=0.3)})
    procs = [subprocess.Popen([sys.executable, "-m", "console", "--no-ui", "--campaigns-dir",
                               str(campaigns_dir), "--campaign", name, "--run", "--workers", "2"],
                              cwd=campaigns_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=_env())
             for name in ("c1", "c2")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    used = assert_daily_limits([campaigns_dir / "c1", campaigns_dir / "c2"], 1)
    assert sorted(a for a, _ in used) == ["a", "b"]


def test_a_campaign_outside_the_campaigns_folder_counts_too(campaigns_dir, tmp_path):
    outside = write_campaign(tmp_path / "elsewhere" / "o", ["a"], 3,
                             {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    inside = one_account_campaign(campaigns_dir, "c")
    ok(cli(campaigns_dir, str(outside), "--run"))
    res = ok(cli(campaigns_dir, "c", "--run"))
    assert "success 0" in res.stdout, res.stdout
    status = json.loads(ok(cli(campaigns_dir, "c", "--status", "--json")).stdout)
    (acc,) = status["accounts"]
    assert (acc["state"], acc["posts_today"]) == ("LIMIT", 1)
    assert_daily_limits([outside, inside], 1)


def _env() -> dict:
    import os
    from conftest import REPO
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("POSTDECK_CAMPAIGNS_DIR", None)
    return env


# --- 4. --stop-all signals only this campaign's live workers -------------------------------------
def _stranger() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _heartbeat(root: Path, proc: subprocess.Popen, age_s: float) -> None:
    folder = root / ".postdeck" / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "worker-0.json").write_text(json.dumps({
        "worker_id": "0", "pid": proc.pid, "create_time": psutil.Process(proc.pid).create_time(),
        "phone": "a", "appium_port": 4723, "system_ports": "8200-8209", "state": "posting",
        "job_id": "", "account": "", "run_id": "old", "at": time.time() - age_s}))


def test_stop_all_never_kills_the_process_of_an_ancient_heartbeat(campaigns_dir):
    root = one_account_campaign(campaigns_dir)
    stranger = _stranger()
    try:
        _heartbeat(root, stranger, age_s=7 * 86400)
        res = ok(cli(campaigns_dir, "c", "--stop-all"))
        time.sleep(0.3)
        assert stranger.poll() is None, "a process named by a week-old heartbeat was killed"
        assert "left alone" in res.stdout and str(stranger.pid) in res.stdout
    finally:
        stranger.kill()
        stranger.wait()


def test_stop_all_never_kills_a_process_that_is_not_a_worker_of_the_campaign(campaigns_dir):
    root = one_account_campaign(campaigns_dir)
    stranger = _stranger()
    try:
        _heartbeat(root, stranger, age_s=0)    # fresh, same pid and start time: still not ours
        ok(cli(campaigns_dir, "c", "--stop-all"))
        time.sleep(0.3)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


# --- found by the adversarial pass --------------------------------------------------------------
def test_a_job_seeded_before_its_video_reached_the_ledger_is_skipped_not_posted(campaigns_dir,
                                                                                 tmp_path):
    root = write_campaign(campaigns_dir / "c", ["a", "b"], 4,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    ok(cli(campaigns_dir, "c", "--seed-only"))
    master = tmp_path / "all_posted_videos.txt"
    master.write_text("a|v000.mp4|2024-05-01 10:00\nb|v001.mp4|rebuilt\n")
    ok(cli(campaigns_dir, "c", "--import-ledger", str(master)))
    ok(cli(campaigns_dir, "c", "--run", "--workers", "2"))
    rows = ProgressStore.for_context(PostingContext.for_campaign_dir(root, campaigns_dir)).read().rows
    assert {video_name(r[C.VIDEO_PATH]): r[C.STATUS] for r in rows} == {
        "v000.mp4": "skipped", "v001.mp4": "skipped"}
    assert posted_names(root) == {}


def test_a_claim_left_publishing_by_a_crash_is_an_unknown_outcome_after_the_reset(campaigns_dir):
    import os
    import signal
    root = write_campaign(campaigns_dir / "c", ["a"], 3, {
        "max_posts_per_account_per_day": 2, "simulation": fast_sim(post_seconds=5.0)})
    proc = subprocess.Popen([sys.executable, "-m", "console", "--no-ui", "--campaigns-dir",
                             str(campaigns_dir), "--campaign", "c", "--run"], env=_env(),
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    progress = root / "progress.csv"
    deadline = time.time() + 30
    while time.time() < deadline and not (progress.exists()
                                          and ",publishing," in progress.read_text()):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)       # the host lost everything mid-publish
    proc.wait()
    time.sleep(0.3)
    ok(cli(campaigns_dir, "c", "--reset-day"))
    (archive,) = root.glob("progress_*.csv")
    archived = ProgressStore(archive, root / "posted.csv",
                             PostingContext.for_campaign_dir(root).settings).read().rows
    assert [(r[C.STATUS], r[C.ERROR_TYPE]) for r in archived if "v000" in r[C.JOB_ID]] == [
        ("failed", "outcome_unknown")]
    (root / "campaign.json").write_text(json.dumps({"max_posts_per_account_per_day": 2,
                                                    "simulation": fast_sim()}))
    ok(cli(campaigns_dir, "c", "--seed-only"))
    seeded = [video_name(r[C.VIDEO_PATH]) for r in ProgressStore.for_context(
        PostingContext.for_campaign_dir(root, campaigns_dir)).read().rows]
    assert "v000.mp4" not in seeded and seeded, seeded


def test_a_campaign_set_aside_in_a_hidden_or_nested_folder_still_counts(campaigns_dir):
    one_account_campaign(campaigns_dir, "c1")
    ok(cli(campaigns_dir, "c1", "--run"))
    (campaigns_dir / "old").mkdir()
    (campaigns_dir / "c1").rename(campaigns_dir / "old" / "c1")
    one_account_campaign(campaigns_dir, "c2")
    assert "success 0" in ok(cli(campaigns_dir, "c2", "--run")).stdout
    (campaigns_dir / "old" / "c1").rename(campaigns_dir / ".c1-retired")
    one_account_campaign(campaigns_dir, "c3")
    assert "success 0" in ok(cli(campaigns_dir, "c3", "--run")).stdout


def test_naive_times_of_an_earlier_archive_count_in_the_campaigns_zone(campaigns_dir):
    """The earlier system wrote naive local times: they are read in the campaign's time zone,
    so the count does not depend on the TZ of the shell that runs postdeck."""
    from datetime import datetime
    from zoneinfo import ZoneInfo
    zone = "Pacific/Kiritimati"          # UTC+14: far from the host's UTC
    root = write_campaign(campaigns_dir / "c", ["a"], 3, {
        "timezone": zone, "max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    local_now = datetime.now(ZoneInfo(zone)).replace(tzinfo=None, microsecond=0)
    (root / "progress_backup_old.csv").write_text(
        "job_id,account,video_path,caption,status,worker_id,claimed_at,completed_at,error\n"
        f"old1,a,C:\\\\vids\\\\x.mp4,x,success,1,{local_now.isoformat()},{local_now.isoformat()},\n")
    for tz in ("UTC", "America/Los_Angeles"):
        status = json.loads(ok(cli(campaigns_dir, "c", "--status", "--json",
                                   env={"TZ": tz})).stdout)
        assert status["accounts"][0]["state"] == "LIMIT", (tz, status["accounts"])
    assert "success 0" in ok(cli(campaigns_dir, "c", "--run")).stdout
