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


def _env(tmp_path: Path, *devices: dict[str, str]) -> dict[str, str]:
    """Stand-in adb whose successive `adb devices` tables are `devices` (the last repeats)."""
    scenario = tmp_path / "adb-scenario.json"
    scenario.write_text(json.dumps({"devices": list(devices)}))
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


def test_geelark_backend_starts_connects_and_posts(tmp_path, monkeypatch):
    """The geelark composition in one process: the phone is started through a local Geelark
    server that checks every signature, reached with adb connect + glogin (stand-in adb), and
    posted to through a real Appium server with the fake driver."""
    require_npm_appium()
    from engine.devices.adb import Adb
    from engine.devices.base import PostRequest, WorkerSlot
    from engine.devices.geelark import GeelarkClient, GeelarkPhones, KeyAuth
    from engine.devices.real import RealBackend
    from geelark_fake_server import FakeGeelark

    # not connected at first; `adb connect` makes it a device
    for key, value in _env(tmp_path, {}, {}, {}, {"10.1.2.3:25219": "device"}).items():
        monkeypatch.setenv(key, value)
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    with FakeGeelark() as server:
        server.add_phone("p-1", "farm-01")
        client = GeelarkClient(KeyAuth(server.app_id, server.api_key), base_url=server.url,
                               sleep=lambda s: None)
        backend = RealBackend("geelark", GeelarkPhones(client, poll_interval=0.0), Adb(),
                              tmp_path / "appium", "instagram_reel",
                              {"appium:automationName": FAKE_AUTOMATION,
                               "appium:startScreen": "home"})
        slot = WorkerSlot.for_index(0, tmp_path / "logs")
        assert backend.list_phones() == ["farm-01"]
        published = []
        try:
            backend.prepare("farm-01", slot)
            backend.post(PostRequest("clip.mp4_c", "alice", "farm-01", video, "hello 🎬"), slot,
                         lambda: published.append(True))
        finally:
            backend.shutdown(slot)
        assert published == [True]
        assert server.phones["p-1"].status == 0, "the phone was started through the API"
        assert server.count("/open/v1/phone/start") == 1
    calls = [json.loads(line) for line in (tmp_path / "adb.log").read_text().splitlines()]
    assert ["connect", "10.1.2.3:25219"] in calls
    glogin = [c for c in calls if "glogin" in c]
    assert glogin and glogin[0][-1] == "8c1da4" and glogin[0][1] == "10.1.2.3:25219"
    assert any("push" in c for c in calls)
