"""The headless CLI in real processes (`python -m console --no-ui ...`): listing, status, seeding,
the day reset, retrying, and exit codes (DESIGN.md, "CLI")."""
from __future__ import annotations

import json

import pytest

from engine import columns as C
from engine.context import PostingContext
from engine.tracker import HEADER_ONLY, ProgressStore

from helpers import make_campaign, progress_bytes, row, run_cli, snapshot, write_progress

ACCOUNTS = [("acc_a", "P1"), ("acc_b", "P2"), ("acc_c", "P2")]


@pytest.fixture
def env(tmp_path):
    base = tmp_path / "campaigns"
    root = make_campaign(base, "demo", accounts=ACCOUNTS, videos=8,
                         settings={"max_posts_per_account_per_day": 2, "timezone": "UTC"})
    make_campaign(base, "other", videos=1, settings={"enabled": False, "backend": "adb"})

    def cli(*args):
        return run_cli(*args, cwd=tmp_path, campaigns_dir=base)

    return base, root, cli


def store_of(root) -> ProgressStore:
    return ProgressStore.for_context(PostingContext.for_campaign_dir(root, root.parent))


# --- listing ------------------------------------------------------------------------------------
def test_list_campaigns(env):
    base, root, cli = env
    res = cli("--no-ui", "--list-campaigns")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith("demo") and "3 accounts" in lines[0] and "limit 2" in lines[0]
    assert lines[1].startswith("other") and "disabled" in lines[1]


def test_list_campaigns_json(env):
    base, root, cli = env
    write_progress(root / "progress.csv", [row("x", "acc_a", C.SUCCESS), row("y", "acc_b")])
    res = cli("--no-ui", "--list-campaigns", "--json")
    assert res.returncode == 0, res.stderr
    listed = {c["name"]: c for c in json.loads(res.stdout)}
    demo = listed["demo"]
    assert demo["path"] == str(root) and demo["enabled"] is True and demo["error"] is None
    assert (demo["accounts"], demo["phones"], demo["videos"], demo["daily_limit"]) == (3, 2, 8, 2)
    assert demo["counts"] == {**dict.fromkeys(C.STATUSES, 0), "success": 1, "pending": 1}
    assert demo["total"] == 2 and demo["running"] is False and demo["supervisor_pid"] is None
    assert listed["other"]["enabled"] is False and listed["other"]["backend"] == "adb"


def test_list_campaigns_with_a_campaigns_dir_flag_and_a_missing_one(env, tmp_path):
    base, root, cli = env
    res = run_cli("--no-ui", "--campaigns-dir", str(base), "--list-campaigns", "--json",
                  cwd=tmp_path)
    assert res.returncode == 0 and len(json.loads(res.stdout)) == 2
    res = cli("--no-ui", "--campaigns-dir", str(tmp_path / "nope"), "--list-campaigns")
    assert res.returncode == 1 and "does not exist" in res.stderr


# --- status -------------------------------------------------------------------------------------
def test_status_json_keys(env):
    base, root, cli = env
    write_progress(root / "progress.csv", [
        row("s1", "acc_a", C.SUCCESS, phone_id="P1"),
        row("f1", "acc_b", C.FAILED, error="account suspended", error_type="suspended",
            error_category="account", phone_id="P2", completed_at="2025-06-15T10:00:00+00:00")])
    res = cli("--no-ui", "--campaign", "demo", "--status", "--json")
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)
    for key in ("campaign", "progress_file", "running", "supervisor_pid", "daily_limit", "counts",
                "workers", "accounts"):
        assert key in status, key
    assert status["campaign"] == "demo"
    assert status["progress_file"] == str(root / "progress.csv")
    assert status["running"] is False and status["supervisor_pid"] is None
    assert status["daily_limit"] == 2
    assert status["counts"] == {**dict.fromkeys(C.STATUSES, 0), "success": 1, "failed": 1}
    assert status["workers"] == []
    accounts = {a["account"]: a for a in status["accounts"]}
    assert list(accounts) == ["acc_a", "acc_b", "acc_c"]
    for a in accounts.values():
        assert set(a) >= {"account", "phone", "state", "posts_today", "limit", "waiting",
                          "cooldown_until", "last_error"}
    assert (accounts["acc_a"]["posts_today"], accounts["acc_a"]["limit"]) == (1, 2)
    assert accounts["acc_b"]["state"] == "BLOCKED"
    assert accounts["acc_b"]["last_error"] == "account suspended"
    assert accounts["acc_c"]["phone"] == "P2" and accounts["acc_c"]["state"] == "AVAILABLE"


def test_status_text_and_missing_file(env):
    base, root, cli = env
    res = cli("--no-ui", "--campaign", "demo", "--status")
    assert res.returncode == 0, res.stderr
    assert "campaign 'demo': idle; daily limit 2" in res.stdout
    assert "acc_b" in res.stdout and "AVAILABLE" in res.stdout
    assert not (root / "progress.csv").exists()          # looking creates nothing


def test_unknown_campaign(env):
    base, root, cli = env
    res = cli("--no-ui", "--campaign", "nope", "--status")
    assert res.returncode == 1 and "See --list-campaigns" in res.stderr
    assert res.stdout == ""


# --- seeding ---------------------------------------------------------------------------------------
def test_seed_only(env):
    base, root, cli = env
    res = cli("--no-ui", "--campaign", "demo", "--seed-only")
    assert res.returncode == 0, res.stderr
    assert "seeded 6 job(s) for 3 account(s)" in res.stdout
    jobs = store_of(root).jobs()
    assert [(j["account"], j["phone_id"]) for j in jobs] == [
        ("acc_a", "P1"), ("acc_b", "P2"), ("acc_c", "P2")] * 2
    assert all(j["job_id"].endswith("_demo") for j in jobs)
    before = snapshot(root / "progress.csv")
    res = cli("--no-ui", "--campaign", "demo", "--seed-only")
    assert res.returncode == 0 and "seeded 0 job(s)" in res.stdout
    assert snapshot(root / "progress.csv") == before


def test_seed_only_by_path(env, tmp_path):
    base, root, cli = env
    res = cli("--no-ui", "--campaign", str(root), "--seed-only")
    assert res.returncode == 0, res.stderr
    assert store_of(root).stats()["pending"] == 6


@pytest.mark.parametrize("action", [["--seed-only"], ["--status"], ["--retry-all-failed"], []])
def test_force_reseed_requires_reset_day(env, action):
    base, root, cli = env
    write_progress(root / "progress.csv", [row("x", "acc_a", C.SUCCESS)])
    before = snapshot(root / "progress.csv")
    res = cli("--no-ui", "--campaign", "demo", *action, "--force-reseed")
    if not action:
        assert res.returncode == 2                        # no action at all: usage
        return
    assert res.returncode == 1, res.stdout
    assert "requires --reset-day" in res.stderr
    assert snapshot(root / "progress.csv") == before
    assert list(root.glob("progress_*.csv")) == []


# --- the day reset ---------------------------------------------------------------------------------
def test_reset_day(env):
    base, root, cli = env
    write_progress(root / "progress.csv", [row("x", "acc_a", C.SUCCESS)])
    old = (root / "progress.csv").read_bytes()
    res = cli("--no-ui", "--campaign", "demo", "--reset-day")
    assert res.returncode == 0, res.stderr
    archives = sorted(root.glob("progress_*.csv"))
    assert len(archives) == 1 and archives[0].read_bytes() == old
    assert str(archives[0]) in res.stdout and "new day started" in res.stdout
    assert (root / "progress.csv").read_bytes() == HEADER_ONLY
    res = cli("--no-ui", "--campaign", "demo", "--reset-day")
    assert res.returncode == 0
    names = sorted(p.name for p in root.glob("progress_*.csv"))
    assert names == [archives[0].name, archives[0].name.replace(".csv", "_1.csv")]


def test_reset_day_force_reseed_and_seed_only_chains(env):
    base, root, cli = env
    write_progress(root / "progress.csv", [row("v000.mp4_demo", "acc_a", C.PENDING)])
    res = cli("--no-ui", "--campaign", "demo", "--reset-day", "--force-reseed")
    assert res.returncode == 0, res.stderr
    assert "seeded 6 job(s)" in res.stdout
    assert store_of(root).stats()["pending"] == 6
    res = cli("--no-ui", "--campaign", "demo", "--reset-day", "--seed-only")
    assert res.returncode == 0, res.stderr
    assert store_of(root).stats()["pending"] == 6
    assert len(list(root.glob("progress_*.csv"))) == 2


# --- retrying ---------------------------------------------------------------------------------------
def test_retry_all_failed(env):
    base, root, cli = env
    write_progress(root / "progress.csv", [
        row("i", "acc_a", C.FAILED, error="adb timeout", error_type="adb_timeout",
            error_category="infrastructure", attempts="3"),
        row("a", "acc_b", C.FAILED, error="suspended", error_type="suspended",
            error_category="account", attempts="1"),
        row("o", "acc_c", C.FAILED, error="lost", error_type="outcome_unknown",
            error_category="unknown", attempts="1")])
    res = cli("--no-ui", "--campaign", "demo", "--retry-all-failed")
    assert res.returncode == 0, res.stderr
    assert "1 failed job(s) put back" in res.stdout
    statuses = {j["job_id"]: j["status"] for j in store_of(root).jobs()}
    assert statuses == {"i": "retrying", "a": "failed", "o": "failed"}
    res = cli("--no-ui", "--campaign", "demo", "--retry-all-failed",
              "--retry-include-non-retryable")
    assert res.returncode == 0, res.stderr
    assert "2 failed job(s) put back" in res.stdout
    assert {j["status"] for j in store_of(root).jobs()} == {"retrying"}


# --- usage errors: exit 2 -------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ["--no-ui"],                                               # no action
    ["--status"],                                              # an action needs --no-ui
    ["--no-ui", "--status", "--seed-only"],                    # two actions
    ["--no-ui", "--run", "--stop"],
    ["--no-ui", "--seed-only", "--json"],                      # --json with status/list only
    ["--no-ui", "--run", "--workers", "0"],
    ["--no-ui", "--run", "--workers", "two"],
    ["--no-ui", "--run", "--max-passes", "0"],
    ["--no-ui", "--run", "--retry-delay", "-1"],
    ["--no-ui", "--status", "--detach"],                       # --detach goes with --run
    ["--no-ui", "--status", "--workers", "2"],                 # run options go with --run
    ["--no-ui", "--seed-only", "--phones", "a,b"],
    ["--no-ui", "--status", "--retry-include-non-retryable"],
    ["--no-ui", "--run", "--backend", "cloud"],
    ["--no-ui", "--status", "--bogus-flag"],
])
def test_usage_errors_exit_2(env, args):
    base, root, cli = env
    res = cli("--campaign", "demo", *args)
    assert res.returncode == 2, (args, res.stdout, res.stderr)
    assert "usage" in res.stderr
    assert not (root / "progress.csv").exists()
