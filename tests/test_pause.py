"""Pause and resume a real run: the workers finish their job, turn their phones off and wait;
the same run goes on after the resume."""
from __future__ import annotations

import time

import pytest

from engine import columns as C
from engine.context import PostingContext
from engine.pause import pause, paused, resume
from engine.problems import Refused
from engine.runstate import read_run_info

import test_runs as runs
from conftest import fast_sim, write_campaign
from test_farm_operation import status


def test_pause_waits_with_phones_off_and_resume_goes_on_with_the_same_run(campaigns_dir):
    sim = fast_sim(boot_seconds=0.1, post_seconds=1.0)
    accounts = [(f"a{i}", f"phone{i % 2}") for i in range(6)]
    root = write_campaign(campaigns_dir / "c", accounts, 6, {"simulation": sim})
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    sup = runs.start_detached(campaigns_dir, "c", "--workers", "2")
    run_id = runs.wait_for(lambda: read_run_info(ctx), what="the run").run_id
    runs.wait_for(lambda: status(campaigns_dir)["counts"]["success"] >= 1, timeout=30,
                  what="a first post")
    pause(ctx, by="tester")
    st = runs.wait_for(lambda: (s := status(campaigns_dir)) and s["workers"] and all(
        w["state"] == "paused" for w in s["workers"]) and s, timeout=30, what="paused workers")
    assert st["paused"]["by"] == "tester" and st["counts"]["claimed"] == 0
    assert all(p["state"] == "off" for p in st["phones"]), st["phones"]
    done = st["counts"]["success"]
    time.sleep(3)
    again = status(campaigns_dir)
    assert again["counts"]["success"] == done and again["running"], "nothing posts while paused"
    with pytest.raises(Refused, match="paused already"):
        pause(ctx)
    resume(ctx)
    assert paused(ctx) is None
    runs.wait_exit(sup, timeout=60)
    assert read_run_info(ctx).run_id == run_id, "the same run went on"
    rows = runs.rows_of(ctx)
    assert {r[C.STATUS] for r in rows} == {C.SUCCESS}
    runs.assert_invariants(ctx)


def test_pause_and_resume_are_refused_when_they_mean_nothing(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a0"], 1, {"simulation": fast_sim()})
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    with pytest.raises(Refused, match="no run is going"):
        pause(ctx)
    with pytest.raises(Refused, match="not paused"):
        resume(ctx)
    assert not (ctx.state_dir / "paused.json").exists()


def test_pause_and_resume_from_the_cli(campaigns_dir):
    from conftest import postdeck
    sim = fast_sim(boot_seconds=0.05, post_seconds=1.0)
    root = write_campaign(campaigns_dir / "c", [f"a{i}" for i in range(4)], 4, {"simulation": sim})
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)

    def cli(*args):
        return postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", *args)

    refused = cli("--resume")
    assert refused.returncode == 1 and "not paused" in refused.stderr, refused.stderr
    refused = cli("--pause")
    assert refused.returncode == 1 and "no run is going" in refused.stderr
    sup = runs.start_detached(campaigns_dir, "c", "--workers", "1")
    runs.wait_for(lambda: status(campaigns_dir)["running"], what="the run")
    said = cli("--pause")
    assert said.returncode == 0 and "paused" in said.stdout, said.stderr
    runs.wait_for(lambda: status(campaigns_dir)["paused"], what="paused in the status")
    text = cli("--status")
    assert text.returncode == 0
    assert cli("--pause").returncode == 1
    said = cli("--resume")
    assert said.returncode == 0 and "resumed" in said.stdout
    runs.wait_exit(sup, timeout=60)
    assert {r[C.STATUS] for r in runs.rows_of(ctx)} == {C.SUCCESS}


def test_history_json_from_the_cli(campaigns_dir):
    import json
    from conftest import postdeck
    root = write_campaign(campaigns_dir / "c", ["good", "bad"], 2, {"simulation": fast_sim(
        failures={"bad": "account suspended"})})
    base = ("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c")
    assert postdeck(*base, "--run").returncode == 0
    res = postdeck(*base, "--history", "--json")
    assert res.returncode == 0, res.stderr
    h = json.loads(res.stdout)
    assert set(h) >= {"days", "errors_by_type", "accounts"} and len(h["days"]) == 30
    assert (h["days"][-1]["success"], h["days"][-1]["failed"]) == (1, 1)
    assert h["errors_by_type"] == {"suspended": 1}
    assert {a["account"]: (a["success"], a["failed"]) for a in h["accounts"]} == {
        "good": (1, 0), "bad": (0, 1)}
    usage = postdeck(*base, "--seed-only", "--json")
    assert usage.returncode == 2 and "--history" in usage.stderr
    assert root.exists()
