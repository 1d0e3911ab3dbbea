"""The day reset: archive naming, byte-for-byte archives, the campaign's time zone, and refusal
while a run or a worker is alive (DESIGN.md, "Day reset")."""
from __future__ import annotations

import json
import os
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from filelock import FileLock

from engine import columns as C
from engine import operations
from engine.context import PostingContext
from engine.problems import Refused
from engine.runstate import create_time_of, write_heartbeat
from engine.tracker import HEADER_ONLY

from helpers import make_campaign, make_store, progress_bytes, row, snapshot


def test_reset_archives_and_starts_a_header_only_day(tmp_path):
    store = make_store(tmp_path, [row("j1", "a", C.SUCCESS), row("j2", "b")])
    old = store.path.read_bytes()
    archive = store.reset_day("20250615")
    assert archive == tmp_path / "progress_20250615.csv"
    assert archive.read_bytes() == old
    assert store.path.read_bytes() == HEADER_ONLY
    assert HEADER_ONLY == (",".join(C.COLUMNS) + "\n").encode()
    assert store.jobs() == []


def test_archive_names_take_suffixes_and_nothing_is_overwritten(tmp_path):
    store = make_store(tmp_path)
    days = []
    for i in range(4):
        data = progress_bytes([row(f"day{i}", "a")])
        store.path.write_bytes(data)
        days.append((store.reset_day("20250615"), data))
    assert [a.name for a, _ in days] == ["progress_20250615.csv", "progress_20250615_1.csv",
                                         "progress_20250615_2.csv", "progress_20250615_3.csv"]
    for archive, data in days:
        assert archive.read_bytes() == data
    other = store.reset_day("20250616")                 # a header-only day is archived too
    assert other.name == "progress_20250616.csv" and other.read_bytes() == HEADER_ONLY


def test_reset_without_a_progress_file(tmp_path):
    store = make_store(tmp_path)
    assert store.reset_day("20250615") is None
    assert store.path.read_bytes() == HEADER_ONLY
    assert list(tmp_path.glob("progress_*.csv")) == []


def test_a_refusing_guard_changes_nothing(tmp_path):
    store = make_store(tmp_path, [row("j1", "a")])
    before = snapshot(store.path)

    def guard():
        raise Refused("workers alive")

    with pytest.raises(Refused):
        store.reset_day("20250615", guard=guard)
    assert snapshot(store.path) == before
    assert list(tmp_path.glob("progress_*.csv")) == []


def test_reset_keeps_the_ledger(tmp_path):
    store = make_store(tmp_path, [row("j1", "a")])
    job = store.claim("w1")
    store.complete("j1", job["claim_id"])
    ledger = store.ledger_path.read_bytes()
    store.reset_day("20250615")
    assert store.ledger_path.read_bytes() == ledger


@pytest.mark.parametrize("tz", ["Pacific/Kiritimati", "Pacific/Pago_Pago", "UTC"])
def test_archive_date_is_in_the_campaign_time_zone(tmp_path, tz):
    # Kiritimati (UTC+14) and Pago Pago (UTC-11) are 25 hours apart: their dates always differ,
    # so a date taken in the wrong zone cannot pass for both.
    root = make_campaign(tmp_path / "campaigns", "camp", settings={"timezone": tz})
    ctx = PostingContext.for_campaign_dir(root, tmp_path / "campaigns")
    (root / "progress.csv").write_bytes(progress_bytes([row("j1", "a")]))
    before = datetime.now(ZoneInfo(tz)).strftime("%Y%m%d")
    archive = operations.reset_day(ctx)
    after = datetime.now(ZoneInfo(tz)).strftime("%Y%m%d")
    assert archive.name in (f"progress_{before}.csv", f"progress_{after}.csv")


def test_time_zones_give_different_dates(tmp_path):
    names = set()
    for tz in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):
        root = make_campaign(tmp_path / tz.replace("/", "_"), "camp", settings={"timezone": tz})
        names.add(PostingContext.for_campaign_dir(root).today())
    assert len(names) == 2


def test_reset_refused_while_the_run_lock_is_held(tmp_path):
    root = make_campaign(tmp_path, "camp", settings={})
    ctx = PostingContext.for_campaign_dir(root, tmp_path)
    (root / "progress.csv").write_bytes(progress_bytes([row("j1", "a")]))
    before = snapshot(root / "progress.csv")
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    (ctx.state_dir / "run.json").write_text(json.dumps({
        "pid": 424242, "create_time": 0, "run_id": "r", "started_at": 0, "workers": 2}))
    lock = FileLock(str(ctx.run_lock_file), timeout=0)
    lock.acquire()
    try:
        with pytest.raises(Refused, match="supervisor pid 424242"):
            operations.reset_day(ctx)
    finally:
        lock.release()
    assert snapshot(root / "progress.csv") == before
    assert list(root.glob("progress_*.csv")) == []
    assert operations.reset_day(ctx) is not None        # free again


def test_reset_refused_while_a_worker_is_alive(tmp_path):
    root = make_campaign(tmp_path, "camp", settings={})
    ctx = PostingContext.for_campaign_dir(root, tmp_path)
    (root / "progress.csv").write_bytes(progress_bytes([row("j1", "a")]))
    before = snapshot(root / "progress.csv")
    pid = os.getpid()   # this test process stands in for a worker that outlived its supervisor
    write_heartbeat(ctx.heartbeats_dir, worker_id="0", pid=pid, create_time=create_time_of(pid),
                    phone=None, appium_port=4723, system_ports="8200-8209", state="posting",
                    job_id="j1", account="a", at=time.time(), run_id="r")
    with pytest.raises(Refused, match=f"pids {pid}"):
        operations.reset_day(ctx)
    assert snapshot(root / "progress.csv") == before
    assert list(root.glob("progress_*.csv")) == []
