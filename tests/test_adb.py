"""engine.devices.adb driven through the stand-in executable tests/fake_adb/adb."""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest

from engine.devices.adb import (
    MEDIA_DIR, SCAN_ACTION, Adb, AdbError, LocalAdbPhones, parse_devices,
)
from engine.errors import CONTENT, INFRASTRUCTURE, classify

FAKE_DIR = Path(__file__).parent / "fake_adb"
SERIAL = "10.0.0.5:5555"


class FakeAdb:
    def __init__(self, tmp_path: Path):
        self.log = tmp_path / "adb.log"
        self.scenario_path = tmp_path / "scenario.json"

    def scenario(self, **scenario) -> None:
        self.scenario_path.write_text(json.dumps(scenario))

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def commands(self) -> list[str]:
        """The adb sub-command of each call, ignoring `-s SERIAL`."""
        return [(c[2] if c[:1] == ["-s"] else c[0]) for c in self.calls()]


def _python_only_dir(tmp_path: Path) -> str:
    """A folder holding only python3, which the fake's `#!/usr/bin/env python3` needs."""
    bindir = tmp_path / "bin"
    if not bindir.exists():
        bindir.mkdir()
        (bindir / "python3").symlink_to(os.path.realpath(sys.executable))
    return str(bindir)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    assert os.access(FAKE_DIR / "adb", os.X_OK), "tests/fake_adb/adb must be executable"
    # A direct python3 too: the fake's `#!/usr/bin/env python3` through a pyenv shim is slow.
    python_dir = _python_only_dir(tmp_path)
    monkeypatch.setenv("PATH", os.pathsep.join([str(FAKE_DIR), python_dir,
                                                os.environ.get("PATH", "")]))
    fake = FakeAdb(tmp_path)
    monkeypatch.setenv("FAKE_ADB_LOG", str(fake.log))
    monkeypatch.setenv("FAKE_ADB_SCENARIO", str(fake.scenario_path))
    return fake


@pytest.fixture
def adb(fake, fake_time):
    return Adb(timeout=10, clock=fake_time.clock, sleep=fake_time.sleep)


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    return path


# ------------------------------------------------------------------------------ finding adb

def test_adb_is_taken_from_path(adb):
    assert Path(adb.executable()) == FAKE_DIR / "adb"


def test_explicit_adb_path_needs_no_path(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", _python_only_dir(tmp_path))
    fake.scenario(devices=[{"A": "device"}])
    assert Adb(FAKE_DIR / "adb").devices() == {"A": "device"}


def test_missing_adb_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", _python_only_dir(tmp_path))
    with pytest.raises(AdbError) as caught:
        Adb().devices()
    assert caught.value.error_type == "adb_missing" and "not found on PATH" in str(caught.value)


def test_arguments_never_reach_a_host_shell(adb, fake, tmp_path):
    target = tmp_path / "pwned"
    adb.run(["shell", "echo"], serial=f"x; touch {target}")
    assert fake.calls() == [["-s", f"x; touch {target}", "shell", "echo"]]
    assert not target.exists()


# ------------------------------------------------------------------------------ devices

def test_list_devices_parses_states_and_properties(adb, fake):
    fake.scenario(rules=[{"args": ["devices", "-l"], "stdout": (
        "* daemon not running; starting now at tcp:5037\n"
        "* daemon started successfully\n"
        "List of devices attached\n"
        "0123456789ABCDEF       device usb:1-1 product:redfin model:Pixel_5 device:redfin "
        "transport_id:1\n"
        "10.0.0.5:5555          offline transport_id:2\n"
        "R58M123ABC             unauthorized usb:1-2 transport_id:3\n"
        "ZY22DEV                no permissions (missing udev rules? user is in the plugdev "
        "group); see [http://developer.android.com/tools/device.html] usb:1-3 transport_id:4\n"
        "\n")}])
    devices = adb.list_devices()
    assert [(d.serial, d.state) for d in devices] == [
        ("0123456789ABCDEF", "device"), ("10.0.0.5:5555", "offline"),
        ("R58M123ABC", "unauthorized"), ("ZY22DEV", "no permissions")]
    assert devices[0].properties["model"] == "Pixel_5"
    assert devices[3].properties == {"usb": "1-3", "transport_id": "4"}
    assert fake.calls() == [["devices", "-l"]]


def test_parse_devices_plain_output():
    assert [(d.serial, d.state) for d in parse_devices(
        "List of devices attached\nemulator-5554\tdevice\n10.1.1.1:5555\toffline\n\n")] == \
        [("emulator-5554", "device"), ("10.1.1.1:5555", "offline")]


def test_local_phones_are_the_serials(fake):
    fake.scenario(devices=[{"b-serial": "device", "a-serial": "offline", "c": "unauthorized"}])
    assert LocalAdbPhones(Adb()).list_phones() == ["a-serial", "b-serial", "c"]


def test_ensure_ready_waits_for_the_device(fake, fake_time):
    fake.scenario(devices=[{"P": "offline"}, {"P": "offline"}, {"P": "device"}])
    phones = LocalAdbPhones(Adb(clock=fake_time.clock, sleep=fake_time.sleep))
    assert phones.ensure_ready("P", timeout=10) == "P"
    assert fake_time.sleeps == [1.0, 1.0]


def test_ensure_ready_gives_up_on_unauthorized_at_once(fake, fake_time):
    fake.scenario(devices=[{"P": "unauthorized"}])
    phones = LocalAdbPhones(Adb(clock=fake_time.clock, sleep=fake_time.sleep))
    with pytest.raises(AdbError) as caught:
        phones.ensure_ready("P", timeout=10)
    assert caught.value.error_type == "device_unauthorized" and fake_time.sleeps == []


def test_ensure_ready_times_out_offline(fake, fake_time):
    fake.scenario(devices=[{}])
    phones = LocalAdbPhones(Adb(clock=fake_time.clock, sleep=fake_time.sleep))
    with pytest.raises(AdbError) as caught:
        phones.ensure_ready("P", timeout=3)
    assert caught.value.error_type == "device_offline" and "not found" in str(caught.value)


# ------------------------------------------------------------------------------ connect

def test_connect_waits_until_the_device_is_online(adb, fake, fake_time):
    fake.scenario(devices=[{}, {}, {SERIAL: "offline"}, {SERIAL: "offline"}, {SERIAL: "device"}])
    assert adb.connect("10.0.0.5", 5555, timeout=30) == SERIAL
    assert fake.commands() == ["devices", "devices", "connect", "devices", "devices", "devices"]
    assert ["connect", SERIAL] in fake.calls()
    assert fake_time.sleeps == [1.0, 1.0, 1.0]


def test_connect_again_when_adb_dropped_the_device(adb, fake):
    fake.scenario(devices=[{}, {}, {}, {SERIAL: "device"}])
    adb.connect("10.0.0.5", 5555, timeout=30)
    assert fake.commands().count("connect") == 2


def test_connect_clears_a_stale_offline_entry_first(adb, fake):
    fake.scenario(devices=[{SERIAL: "offline"}, {}, {SERIAL: "device"}])
    adb.connect("10.0.0.5", 5555, timeout=30)
    assert fake.commands() == ["devices", "disconnect", "devices", "connect", "devices"]


def test_connect_unauthorized_fails_fast(adb, fake, fake_time):
    fake.scenario(devices=[{}, {}, {SERIAL: "unauthorized"}])
    with pytest.raises(AdbError) as caught:
        adb.connect("10.0.0.5", 5555, timeout=30)
    assert caught.value.error_type == "device_unauthorized"
    assert fake_time.sleeps == [1.0]


def test_connect_refused_carries_adbs_words(adb, fake, fake_time):
    fake.scenario(devices=[{}], rules=[{"args": ["connect", "*"], "exit": 1, "stdout":
                  "failed to connect to '10.0.0.5:5555': Connection refused\n"}])
    with pytest.raises(AdbError) as caught:
        adb.connect("10.0.0.5", 5555, timeout=3)
    assert caught.value.error_type == "adb_connect_failed"
    assert "Connection refused" in str(caught.value)
    # Tried again each second until the deadline (at 0, 1 and 2 s of 3).
    assert fake.commands().count("connect") == 3
    assert sum(fake_time.sleeps) == pytest.approx(3.0)


def test_connect_still_offline_at_the_deadline(adb, fake):
    fake.scenario(devices=[{}, {SERIAL: "offline"}])
    with pytest.raises(AdbError) as caught:
        adb.connect("10.0.0.5", 5555, timeout=5)
    assert caught.value.error_type == "device_offline"
    assert "offline after 5s" in str(caught.value)
    assert classify(caught.value).category == INFRASTRUCTURE


# ------------------------------------------------------------------------------ glogin

def test_glogin_passes_the_password_to_adb_only(adb, fake, caplog):
    caplog.set_level(logging.DEBUG)
    adb.glogin(SERIAL, "8c1da4")
    assert fake.calls() == [["-s", SERIAL, "shell", "glogin", "8c1da4"]]
    assert "8c1da4" not in caplog.text and "glogin ***" in caplog.text


def test_glogin_failure_hides_the_password(adb, fake, caplog):
    caplog.set_level(logging.DEBUG)
    fake.scenario(rules=[{"args": ["-s", "*", "shell", "glogin", "*"], "exit": 1,
                          "stdout": "login failed: invalid password 8c1da4\n"}])
    with pytest.raises(AdbError) as caught:
        adb.glogin(SERIAL, "8c1da4")
    assert caught.value.error_type == "glogin_failed"
    assert "invalid password ***" in str(caught.value)
    assert "8c1da4" not in str(caught.value) + caplog.text + caught.value.stderr


def test_glogin_on_an_offline_device(adb, fake):
    fake.scenario(devices=[{SERIAL: "offline"}])
    with pytest.raises(AdbError) as caught:
        adb.glogin(SERIAL, "pw")
    assert caught.value.error_type == "device_offline"


# ------------------------------------------------------------------------------ media

def test_push_media_pushes_into_dcim_and_scans(adb, fake, video):
    remote = adb.push_media("S1", video)
    assert remote == f"{MEDIA_DIR}/clip.mp4"
    assert fake.calls() == [
        ["-s", "S1", "push", str(video), remote],
        ["-s", "S1", "shell", "am", "broadcast", "-a", SCAN_ACTION, "-d", f"file://{remote}"]]


def test_remote_names_with_spaces_are_quoted_for_the_device_shell(adb, fake, video):
    remote = adb.push_media("S1", video, name="my clip's.mp4")
    adb.remove_media("S1", remote)
    calls = fake.calls()
    assert calls[0][-1] == "/sdcard/DCIM/Camera/my clip's.mp4"     # push: not shell-parsed
    assert calls[1][-1] == "file:///sdcard/DCIM/Camera/my%20clip%27s.mp4"
    assert calls[2] == ["-s", "S1", "shell", "rm", "-f",
                        "'/sdcard/DCIM/Camera/my clip'\"'\"'s.mp4'"]
    assert calls[3][3:5] == ["am", "broadcast"]


def test_push_failure_carries_adbs_stderr(adb, fake, video):
    fake.scenario(rules=[{"args": ["-s", "*", "push", "**"], "exit": 1, "stderr":
                          "adb: error: failed to copy 'clip.mp4' to '/sdcard/DCIM/Camera/clip.mp4'"
                          ": remote couldn't create file: No space left on device\n"}])
    with pytest.raises(AdbError) as caught:
        adb.push_media("S1", video)
    assert caught.value.error_type == "device_storage_full"
    assert "remote couldn't create file: No space left on device" in str(caught.value)
    assert "S1" in str(caught.value)
    assert fake.commands() == ["push"]   # no scan after a failed push


@pytest.mark.parametrize("table, words", [({"S1": "offline"}, "device offline"),
                                          ({}, "device 'S1' not found")])
def test_push_to_an_unusable_device(adb, fake, video, table, words):
    fake.scenario(devices=[table])
    with pytest.raises(AdbError) as caught:
        adb.push("S1", video, f"{MEDIA_DIR}/clip.mp4")
    assert caught.value.error_type == "device_offline" and words in str(caught.value)
    assert classify(caught.value).error_type == "device_offline"


def test_missing_local_video_is_a_content_error(adb, fake, tmp_path):
    with pytest.raises(AdbError) as caught:
        adb.push_media("S1", tmp_path / "gone.mp4")
    assert caught.value.category == CONTENT and caught.value.error_type == "video_missing"
    assert fake.calls() == []


def test_a_hanging_command_times_out(fake, video):
    fake.scenario(rules=[{"args": ["-s", "*", "push", "**"], "sleep": 30}])
    started = time.monotonic()
    with pytest.raises(AdbError) as caught:
        Adb(timeout=5).push("S1", video, f"{MEDIA_DIR}/clip.mp4", timeout=0.5)
    assert time.monotonic() - started < 5
    assert caught.value.error_type == "adb_timeout"
    assert "timed out after 0.5s" in str(caught.value)
    assert classify(caught.value).retryable


def test_failed_shell_command_reports_its_output(adb, fake):
    fake.scenario(rules=[{"args": ["-s", "S1", "shell", "**"], "exit": 1,
                          "stderr": "rm: /sdcard/x: Read-only file system\n"}])
    with pytest.raises(AdbError) as caught:
        adb.remove("S1", "/sdcard/x")
    assert caught.value.error_type == "adb_permission_denied"
    assert "Read-only file system" in str(caught.value)
