"""Taking over the earlier system's farm and its habits, through the CLI."""
from __future__ import annotations

import pytest

from pathlib import Path

from conftest import fast_sim, postdeck, write_campaign


def cli(campaigns_dir: Path, campaign: str, *args: str, **kw):
    return postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", campaign,
                    *args, **kw)


def test_workers_never_outnumber_phones(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", [("a", "p1"), ("b", "p2"), ("d", "p3"),
                                               ("e", "p1")], 8,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    res = cli(campaigns_dir, "c", "--run", "--workers", "60")
    assert res.returncode == 0, res.stderr
    lines = [l for l in res.stdout.splitlines() if "worker(s), not 60" in l]
    assert len(lines) == 1 and "starting 3 worker(s)" in lines[0], res.stdout
    logs = sorted(p.name for p in (root / ".postdeck" / "logs").glob("worker-*.log"))
    assert logs == ["worker-0.log", "worker-1.log", "worker-2.log"]
    assert "success 4" in res.stdout


def test_status_shows_a_long_multi_line_error_on_one_line_and_json_keeps_it(campaigns_dir):
    error = "element not found: share\n" + "  at step 4 of the flow " * 20 + "\nend"
    write_campaign(campaigns_dir / "c", ["a"], 2, {
        "max_posts_per_account_per_day": 1,
        "simulation": fast_sim(failures={"a": error})})
    assert cli(campaigns_dir, "c", "--run", "--max-passes", "1").returncode == 0
    text = cli(campaigns_dir, "c", "--status").stdout
    (line,) = [l for l in text.splitlines() if "last error:" in l]
    assert line.endswith("…") and len(line.split("last error: ")[1]) <= 80, line
    import json
    status = json.loads(cli(campaigns_dir, "c", "--status", "--json").stdout)
    kept = status["accounts"][0]["last_error"]
    assert kept.startswith("element not found: share\n") and kept.count("at step 4") > 10


def test_accounts_limits_seeding_and_the_run_to_those_accounts(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a", "b", "d"], 9,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    res = cli(campaigns_dir, "c", "--seed-only", "--accounts", "a,b")
    assert res.returncode == 0 and "for 2 account(s)" in res.stdout, res.stdout
    res = cli(campaigns_dir, "c", "--run", "--workers", "2", "--accounts", "d")
    assert res.returncode == 0, res.stderr
    import csv
    rows = list(csv.DictReader(open(root / "progress.csv")))
    done = {r["account"]: r["status"] for r in rows}
    assert done == {"a": "pending", "b": "pending", "d": "success"}, done


# --- a campaign folder the earlier system wrote --------------------------------------------------
import csv as _csv
import json as _json

from engine import columns as C
from engine.campaigns import video_name

from helpers import earlier_campaign, tree_snapshot


def successes(root: Path) -> list[str]:
    """Every success in every progress file of the folder, by video file name."""
    out = []
    for path in sorted(root.glob("*progress*.csv")):
        for r in _csv.reader(open(path, newline="", encoding="utf-8")):
            if len(r) > C.STATUS and r[C.STATUS] == C.SUCCESS:
                out.append(video_name(r[C.VIDEO_PATH]))
    return out


# The earlier system's archives post more per account and day than postdeck's limit allows:
# that history is its, not postdeck's, so the fixture's limit check does not apply.
@pytest.mark.unsafe_on_purpose
def test_a_day_on_a_taken_over_campaign_posts_nothing_the_earlier_system_posted(campaigns_dir):
    root = campaigns_dir / "old"
    facts = earlier_campaign(root)
    before = successes(root)
    already = {v for vs in facts["archives"].values() for v in vs} | set(facts["ledger_videos"])
    res = cli(campaigns_dir, "old", "--import-ledger", str(facts["ledger"]))
    assert res.returncode == 0 and "imported 3 new ledger entries" in res.stdout, res
    again = cli(campaigns_dir, "old", "--import-ledger", str(facts["ledger"]))
    assert again.returncode == 0 and "nothing new" in again.stdout, again.stdout
    status = _json.loads(cli(campaigns_dir, "old", "--status", "--json").stdout)
    assert status["captions_without_video"] == 40 - 24
    listed = _json.loads(postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir),
                                  "--list-campaigns", "--json").stdout)
    assert listed[0]["captions_without_video"] == 16 and listed[0]["videos"] == 24
    (root / "campaign.json").write_text(_json.dumps({"max_posts_per_account_per_day": 4,
                                                     "simulation": fast_sim()}))
    res = cli(campaigns_dir, "old", "--run", "--workers", "2")
    assert res.returncode == 0, res.stderr
    new = [v for v in successes(root) if v not in before]
    assert len(new) == 24 - len(already) and not set(new) & already, (new, already)
    assert len(successes(root)) == len(set(successes(root))), "a video posted twice"
    # the ledger was built once from the archives' successes, marked as imported
    ledger = list(_csv.DictReader(open(root / "posted.csv", encoding="utf-8")))
    imported = [e for e in ledger if e["posted_at"].startswith("imported:")]
    assert {video_name(e["video_path"]) for e in imported} == already
    assert len(ledger) == len(imported) + len(new)


# The earlier system's archives post more per account and day than postdeck's limit allows:
# that history is its, not postdeck's, so the fixture's limit check does not apply.
@pytest.mark.unsafe_on_purpose
def test_a_bad_line_in_the_ledger_to_import_changes_nothing(campaigns_dir):
    root = campaigns_dir / "old"
    facts = earlier_campaign(root)
    facts["ledger"].write_text(facts["ledger"].read_text() + "acc1 clip_0001.mp4 yesterday\n")
    before = tree_snapshot(campaigns_dir)
    res = cli(campaigns_dir, "old", "--import-ledger", str(facts["ledger"]))
    assert res.returncode == 1 and "line 7" in res.stderr and "account|video" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert tree_snapshot(campaigns_dir) == before


def test_the_shortcode_captions_format_gives_each_numbered_clip_its_posts_caption(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a", "b"], 0,
                          {"max_posts_per_account_per_day": 4, "simulation": fast_sim()})
    for name in ("Cx1A-1.mp4", "Cx1A-2.mp4", "Zq9.mp4", "orphan.mp4"):
        (root / "videos" / name).write_bytes(b"\0")
    (root / "captions.csv").write_text(
        'Text,Image/Video link 1 (shortcode)\n"first post",Cx1A\n'
        '"second",https://www.instagram.com/p/Zq9/\n"never shot",Nope7\n', encoding="utf-8")
    res = cli(campaigns_dir, "c", "--seed-only")
    assert res.returncode == 0, res.stderr
    rows = {video_name(r["video_path"]): r["caption"]
            for r in _csv.DictReader(open(root / "progress.csv", encoding="utf-8"))}
    assert rows == {"Cx1A-1.mp4": "first post", "Cx1A-2.mp4": "first post", "Zq9.mp4": "second"}
    status = _json.loads(cli(campaigns_dir, "c", "--status", "--json").stdout)
    assert status["captions_without_video"] == 1


def test_the_filename_caption_format_and_videos_dir(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a"], 0, {"simulation": fast_sim()})
    (root / "videos").rmdir()
    (root / "media" / "deep").mkdir(parents=True)
    (root / "media" / "deep" / "m1.mp4").write_bytes(b"\0")
    (root / "captions.csv").write_text("filename,caption\nm1.mp4,hello\n", encoding="utf-8")
    # no videos/: the first subfolder that holds videos, as the earlier system did
    assert cli(campaigns_dir, "c", "--seed-only").returncode == 0
    assert "media" in (root / "progress.csv").read_text()
    (root / "other").mkdir()
    (root / "other" / "o1.mp4").write_bytes(b"\0")
    (root / "campaign.json").write_text(_json.dumps({"videos_dir": "other",
                                                     "simulation": fast_sim()}))
    (root / "captions.csv").write_text("filename,caption\nm1.mp4,hello\no1.mp4,hi\n")
    status = _json.loads(cli(campaigns_dir, "c", "--status", "--json").stdout)
    assert status["captions_without_video"] == 1     # m1.mp4 is not in other/


def test_legacy_mode_reads_the_earlier_systems_scheduler_state(tmp_path):
    work = tmp_path / "farm"
    (work / "videos").mkdir(parents=True)
    for n in ("a.mp4", "b.mp4", "c.mp4", "d.mp4"):
        (work / "videos" / n).write_bytes(b"\0")
    (work / "scheduler_state.json").write_text(_json.dumps({
        "jobs": [{"id": "job-1", "video_path": "videos/a.mp4", "caption": "A", "status": "pending",
                  "attempts": 0, "max_attempts": 3},
                 {"id": "job-2", "video_path": "videos/b.mp4", "caption": "B", "status": "success"},
                 {"id": "job-3", "video_path": "videos/c.mp4", "caption": "C",
                  "status": "retrying"},
                 {"id": "job-4", "video_path": "videos/d.mp4", "caption": "D", "status": "failed"}],
        "accounts": [{"name": "acc1", "proxy": "x"}, {"name": "acc2"}]}))
    res = postdeck("--no-ui", "--seed-only", cwd=work)
    assert res.returncode == 0, res.stderr
    rows = list(_csv.DictReader(open(work / "parallel_progress.csv", encoding="utf-8")))
    assert [(r["job_id"], r["account"]) for r in rows] == [("job-1", "acc1"), ("job-3", "acc2")]
