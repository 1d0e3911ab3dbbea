"""The `adb` backend end to end through the CLI: a stand-in adb on PATH, a real Appium server from
npm started by the worker itself, and the fake Android driver walking the real reel flow."""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from engine import columns as C
from engine.context import PostingContext
from engine.tracker import ProgressStore

from appium_fixtures import FAKE_AUTOMATION, free_port, require_npm_appium
from conftest import postdeck, write_campaign

FAKE_ADB_DIR = Path(__file__).resolve().parent / "fake_adb"

pytestmark = pytest.mark.appium


def _env(tmp_path: Path, devices: dict[str, str]) -> dict[str, str]:
    scenario = tmp_path / "adb-scenario.json"
    scenario.write_text(json.dumps({"devices": [devices]}))
    return {"PATH": f"{FAKE_ADB_DIR}{os.pathsep}{os.environ['PATH']}",
            "FAKE_ADB_SCENARIO": str(scenario), "FAKE_ADB_LOG": str(tmp_path / "adb.log"),
            "POSTDECK_APPIUM_BASE_PORT": str(free_port()),
            "POSTDECK_SYSTEM_PORT_BASE": "9700"}


def test_adb_backend_posts_through_a_real_appium_server(campaigns_dir, tmp_path):
    require_npm_appium()
    settings = {"backend": "adb", "appium_capabilities": {
        "appium:automationName": FAKE_AUTOMATION, "appium:startScreen": "home"}}
    root = write_campaign(campaigns_dir / "c", [("alice", "emulator-5554")], 2,
                          {**settings, "max_posts_per_account_per_day": 2})
    env = _env(tmp_path, {"emulator-5554": "device"})
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", "--run",
                   "--phones", "emulator-5554", env=env, timeout=240)
    assert res.returncode == 0, res.stderr + res.stdout
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    rows = ProgressStore.for_context(ctx).read().rows
    assert Counter(r[C.STATUS] for r in rows) == {"success": 2}, [r[C.ERROR] for r in rows]
    calls = [json.loads(line) for line in (tmp_path / "adb.log").read_text().splitlines()]
    pushes = [c for c in calls if "push" in c]
    assert len(pushes) == 2 and all("emulator-5554" in c for c in pushes)
    assert any("rm" in " ".join(c) for c in calls), "the pushed video is removed afterwards"
    log = (ctx.logs_dir / "worker-0.log").read_text()
    assert "publishing" in log


def test_unknown_phone_refused_before_any_worker(campaigns_dir, tmp_path):
    root = write_campaign(campaigns_dir / "c", [("alice", "emulator-5554")], 1, {"backend": "adb"})
    env = _env(tmp_path, {"emulator-5554": "device"})
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", "--run",
                   "--phones", "emulator-9999", env=env)
    assert res.returncode == 1
    assert "emulator-9999 not found in the adb backend" in res.stderr
    assert not (root / ".postdeck" / "workers").exists()


def test_account_error_screen_blocks_the_account(campaigns_dir, tmp_path):
    require_npm_appium()
    settings = {"backend": "adb", "appium_capabilities": {
        "appium:automationName": FAKE_AUTOMATION, "appium:startScreen": "suspended"}}
    root = write_campaign(campaigns_dir / "c", [("alice", "emulator-5554")], 1, settings)
    env = _env(tmp_path, {"emulator-5554": "device"})
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c", "--run",
                   env=env, timeout=240)
    assert res.returncode == 0, res.stderr
    ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
    (row,) = ProgressStore.for_context(ctx).read().rows
    assert (row[C.STATUS], row[C.ERROR_TYPE], row[C.ATTEMPTS]) == (C.FAILED, "suspended", "1")
