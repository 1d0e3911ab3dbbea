"""History across days (engine/history.py) on real campaign folders: archives named as the day
reset names them, today's file, the earlier system's files, damaged ones, time zones, and the
per-file cache (checked by what the history says after a change, never by timing)."""
from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine import columns as C
from engine.context import PostingContext
from engine.history import HistoryReader, history
from engine.progress_csv import serialize
from helpers import progress_bytes

# 2025-06-15 12:00:00 UTC, a Sunday
NOW = datetime(2025, 6, 15, 12, tzinfo=timezone.utc).timestamp()


def utc(day: int, hour: int = 10, minute: int = 0) -> str:
    """A June 2025 time as postdeck writes it (now_iso: milliseconds, +00:00)."""
    return datetime(2025, 6, day, hour, minute, tzinfo=timezone.utc).isoformat(
        timespec="milliseconds")


_ids = iter(range(1_000_000))


def row(status: str, account: str = "acc1", completed_at: str = "", error_type: str = "",
        job_id: str | None = None) -> list[str]:
    r = [""] * C.WIDTH
    r[C.JOB_ID] = job_id or f"v{next(_ids):06d}.mp4_spring"
    r[C.ACCOUNT] = account
    r[C.VIDEO_PATH] = f"videos/{r[C.JOB_ID]}"
    r[C.CAPTION] = "a caption, with a comma and \"quotes\"\nand a second line 🎬"
    r[C.STATUS] = status
    r[C.ATTEMPTS], r[C.MAX_ATTEMPTS], r[C.PASS_NUMBER] = "1", "3", "1"
    r[C.COMPLETED_AT] = completed_at
    if status in (C.FAILED, C.RETRYING):
        r[C.ERROR] = f"boom ({error_type or 'untyped'})"
        r[C.ERROR_TYPE] = error_type
    return r


def ok(day: int, account: str = "acc1", hour: int = 10) -> list[str]:
    return row(C.SUCCESS, account, utc(day, hour))


def failed(day: int, error_type: str, account: str = "acc1", hour: int = 10) -> list[str]:
    return row(C.FAILED, account, utc(day, hour), error_type)


def campaign(tmp_path: Path, tz: str = "UTC", files: dict[str, list[list[str]]] | None = None,
             name: str = "spring") -> PostingContext:
    """A campaign folder holding the given progress files (name -> rows)."""
    root = tmp_path / "campaigns" / name
    root.mkdir(parents=True)
    (root / "accounts.txt").write_text("acc1,phone-1\nacc2,phone-2\n")
    (root / "campaign.json").write_text(json.dumps({"timezone": tz}))
    for file, rows in (files or {}).items():
        (root / file).write_bytes(serialize(rows))
    return PostingContext.for_campaign_dir(root, tmp_path / "campaigns")


def by_date(h: dict) -> dict[str, tuple[int, int, int]]:
    """The days that hold something, as (success, failed, unknown)."""
    return {d["date"]: (d["success"], d["failed"], d["unknown"]) for d in h["days"]
            if d["success"] or d["failed"] or d["unknown"]}


# --- counting across days -------------------------------------------------------------------------
def test_counts_every_archive_and_todays_file_on_the_day_of_completed_at(tmp_path):
    ctx = campaign(tmp_path, files={
        "progress_20250612.csv": [ok(12), ok(12, "acc2"), failed(12, "adb_timeout"),
                                  row(C.PENDING), row(C.SKIPPED, completed_at=utc(12))],
        "progress_20250613.csv": [ok(13), failed(13, "suspended", "acc2"),
                                  failed(13, "outcome_unknown")],
        # a second reset on the 13th, and a job that ended after midnight in the 13th's file
        "progress_20250613_1.csv": [ok(13, "acc2"), ok(14, hour=0)],
        "progress.csv": [ok(15), ok(15, "acc2"), failed(15, "adb_timeout"),
                         row(C.RETRYING, completed_at=utc(15), error_type="adb_timeout"),
                         row(C.CLAIMED)],
    })
    h = history(ctx, now=NOW)

    assert set(h) == {"days", "errors_by_type", "accounts", "success_rate", "warnings"}
    assert len(h["days"]) == 30
    assert h["days"][0] == {"date": "2025-05-17", "success": 0, "failed": 0, "unknown": 0}
    assert h["days"][-1]["date"] == "2025-06-15"
    dates = [d["date"] for d in h["days"]]
    assert dates == sorted(dates) and len(set(dates)) == 30      # every day, oldest first
    assert by_date(h) == {"2025-06-12": (2, 1, 0), "2025-06-13": (2, 1, 1),
                          "2025-06-14": (1, 0, 0), "2025-06-15": (2, 1, 0)}
    assert h["errors_by_type"] == {"adb_timeout": 2, "outcome_unknown": 1, "suspended": 1}
    assert list(h["errors_by_type"]) == ["adb_timeout", "outcome_unknown", "suspended"]
    assert h["accounts"] == [{"account": "acc1", "success": 4, "failed": 3},
                             {"account": "acc2", "success": 3, "failed": 1}]
    assert h["success_rate"] == round(7 / 11, 4)
    assert h["warnings"] == []
    assert json.loads(json.dumps(h)) == h


def test_the_window_is_the_last_n_days_and_nothing_outside_it_counts(tmp_path):
    ctx = campaign(tmp_path, files={
        "progress_20250501.csv": [row(C.SUCCESS, completed_at="2025-05-01T10:00:00.000+00:00")],
        "progress_20250614.csv": [ok(14), failed(14, "network")],
        "progress.csv": [ok(15), ok(16)],     # a clock that ran ahead: not a day of the window
    })
    h = history(ctx, now=NOW, days=2)
    assert [d["date"] for d in h["days"]] == ["2025-06-14", "2025-06-15"]
    assert by_date(h) == {"2025-06-14": (1, 1, 0), "2025-06-15": (1, 0, 0)}
    assert h["errors_by_type"] == {"network": 1}
    assert h["accounts"] == [{"account": "acc1", "success": 2, "failed": 1}]
    assert by_date(history(ctx, now=NOW)) == {"2025-06-14": (1, 1, 0), "2025-06-15": (1, 0, 0)}
    with pytest.raises(ValueError):
        history(ctx, now=NOW, days=0)


def test_an_empty_campaign_has_every_day_at_zero_and_no_rate(tmp_path):
    h = history(campaign(tmp_path), now=NOW, days=7)
    assert [d["date"] for d in h["days"]] == [f"2025-06-{d:02d}" for d in range(9, 16)]
    assert by_date(h) == {}
    assert h["errors_by_type"] == {} and h["accounts"] == [] and h["success_rate"] is None
    assert h["warnings"] == []


def test_unknown_outcomes_count_apart_from_failures_and_untyped_failures_as_unknown_type(
        tmp_path):
    ctx = campaign(tmp_path, files={"progress.csv": [
        ok(15), failed(15, "outcome_unknown"), failed(15, "outcome_unknown", "acc2"),
        failed(15, ""), failed(15, "caption_rejected")]})
    h = history(ctx, now=NOW)
    assert by_date(h) == {"2025-06-15": (1, 2, 2)}
    assert h["errors_by_type"] == {"outcome_unknown": 2, "caption_rejected": 1, "unknown": 1}
    assert h["accounts"] == [{"account": "acc1", "success": 1, "failed": 3},
                             {"account": "acc2", "success": 0, "failed": 1}]
    assert h["success_rate"] == 0.2


# --- which day a row falls on ---------------------------------------------------------------------
def test_days_are_the_campaigns_calendar_days(tmp_path):
    """New York is UTC-4 in June, Tokyo UTC+9: the same instants fall on other dates; naive
    times (the earlier system's) are read in the campaign's zone."""
    rows = [row(C.SUCCESS, completed_at="2025-06-14T14:59:59.999+00:00"),  # 23:59:59.999 JST
            row(C.SUCCESS, completed_at="2025-06-14T15:00:00.000+00:00"),  # 00:00 JST, 11:00 NY
            row(C.SUCCESS, completed_at="2025-06-15T03:59:00+00:00"),      # 23:59 NY on the 14th
            row(C.SUCCESS, completed_at="2025-06-15T04:00:00.000+00:00"),  # 00:00 NY
            row(C.SUCCESS, completed_at="2025-06-14T23:30:00"),            # naive: local time
            row(C.FAILED, completed_at="2025-06-15T09:00:00+09:00", error_type="network"),
            row(C.SUCCESS, completed_at="2025-06-14T02:00:00.000+00:00")]   # 22:00 NY, 13th
    new_york = campaign(tmp_path / "ny", "America/New_York", {"progress_20250614.csv": rows})
    tokyo = campaign(tmp_path / "tokyo", "Asia/Tokyo", {"progress_20250614.csv": rows})
    utc_ctx = campaign(tmp_path / "utc", "UTC", {"progress_20250614.csv": rows})

    assert by_date(history(new_york, now=NOW)) == {"2025-06-13": (1, 0, 0),
                                                   "2025-06-14": (4, 1, 0),
                                                   "2025-06-15": (1, 0, 0)}
    assert by_date(history(tokyo, now=NOW)) == {"2025-06-14": (3, 0, 0),
                                                "2025-06-15": (3, 1, 0)}
    assert by_date(history(utc_ctx, now=NOW)) == {"2025-06-14": (4, 0, 0),
                                                  "2025-06-15": (2, 1, 0)}


def test_today_is_the_campaigns_today(tmp_path):
    """At 2025-06-15 02:00 UTC it is still the 14th in New York: the window ends there."""
    ctx = campaign(tmp_path, "America/New_York",
                   {"progress.csv": [row(C.SUCCESS, completed_at="2025-06-15T01:00:00+00:00")]})
    h = history(ctx, now=NOW - 10 * 3600, days=3)
    assert [d["date"] for d in h["days"]] == ["2025-06-12", "2025-06-13", "2025-06-14"]
    assert by_date(h) == {"2025-06-14": (1, 0, 0)}


def test_rows_without_a_readable_time_fall_on_their_files_day(tmp_path):
    undated = lambda: row(C.SUCCESS, completed_at="")   # noqa: E731
    garbled = lambda: row(C.FAILED, completed_at="yesterday-ish", error_type="network")  # noqa
    ctx = campaign(tmp_path, files={
        "progress_20250610.csv": [undated(), garbled()],
        "progress_20250611_2.csv": [undated()],
        "progress_backup_old.csv": [undated(), undated()],    # no date in its name: its mtime
        "progress.csv": [undated(), garbled()],
    })
    june_8 = datetime(2025, 6, 8, 9, tzinfo=timezone.utc).timestamp()
    os.utime(ctx.root / "progress_backup_old.csv", (june_8, june_8))
    h = history(ctx, now=NOW)
    assert by_date(h) == {"2025-06-08": (2, 0, 0), "2025-06-10": (1, 1, 0),
                          "2025-06-11": (1, 0, 0), "2025-06-15": (1, 1, 0)}
    # the undated rows of today's file move with today, from the same cached tallies
    assert by_date(history(ctx, now=NOW + 86400)) == {
        "2025-06-08": (2, 0, 0), "2025-06-10": (1, 1, 0), "2025-06-11": (1, 0, 0),
        "2025-06-16": (1, 1, 0)}


def test_the_earlier_systems_files_and_legacy_mode(tmp_path):
    """17-column CRLF files with naive local times, 9-column ones without an error type, and
    legacy mode's parallel_progress archives."""
    root = tmp_path / "farm"
    root.mkdir()
    earlier = [row(C.SUCCESS, completed_at="2025-06-13T22:30:00"),
               row(C.FAILED, completed_at="2025-06-13T22:40:00", error_type="adb_timeout")]
    (root / "parallel_progress_20250613.csv").write_bytes(
        progress_bytes(earlier, C.COLUMNS[:17], "\r\n"))
    (root / "parallel_progress_20250612.csv").write_bytes(
        progress_bytes([row(C.FAILED, completed_at="2025-06-12T08:00:00")], C.COLUMNS[:9]))
    (root / "parallel_progress.csv").write_bytes(serialize([ok(15)]))
    ctx = PostingContext.for_legacy(root)
    h = history(ctx, now=NOW)
    assert by_date(h) == {"2025-06-12": (0, 1, 0), "2025-06-13": (1, 1, 0),
                          "2025-06-15": (1, 0, 0)}
    assert h["errors_by_type"] == {"adb_timeout": 1, "unknown": 1}
    assert h["warnings"] == []


# --- damaged files --------------------------------------------------------------------------------
def test_a_damaged_archive_is_counted_as_far_as_it_reads_and_named(tmp_path):
    ctx = campaign(tmp_path, files={
        "progress_20250613.csv": [ok(13), ok(13, "acc2")],
        "progress.csv": [ok(15)],
    })
    good = serialize([ok(14), failed(14, "network"), ok(14, "acc2")]).decode()
    lines = good.split("\n")
    # a row whose status is garbage and a row cut off mid-write, between readable rows
    damaged = "\n".join(lines[:3] + ["x.mp4,acc1,v,c,exploded" + "," * 16]
                        + lines[3:]) + 'y.mp4,acc1,"cut off'
    (ctx.root / "progress_20250614.csv").write_text(damaged)
    (ctx.root / "progress_20250612.csv").write_bytes(b"\xff\xfe not a progress file \x00")
    (ctx.root / "progress_20250611.csv").write_bytes(b"")
    (ctx.root / "progress_20250610.csv").mkdir()          # cannot be read at all
    (ctx.root / "progress_20250609.csv").write_bytes(
        serialize([ok(9)]) + b"z.mp4,acc1,\xff\xfe,c,success" + b"," * 16 + b"\n")

    h = history(ctx, now=NOW)

    assert by_date(h) == {"2025-06-09": (2, 0, 0), "2025-06-13": (2, 0, 0),
                          "2025-06-14": (2, 1, 0), "2025-06-15": (1, 0, 0)}
    warnings = h["warnings"]
    assert len(warnings) == 5, warnings
    by_file = {w.split(" ")[0].rstrip(","): w for w in warnings}
    assert set(by_file) == {"progress_20250609.csv", "progress_20250610.csv",
                            "progress_20250611.csv", "progress_20250612.csv",
                            "progress_20250614.csv"}
    assert by_file["progress_20250614.csv"] == (
        "progress_20250614.csv, line 4, has an unknown status 'exploded'; the history counts "
        "the 3 outcome(s) that could still be read")
    assert "not UTF-8" in by_file["progress_20250609.csv"]
    assert "counts the 2 outcome(s)" in by_file["progress_20250609.csv"]
    assert "empty" in by_file["progress_20250611.csv"]
    assert "could not be read" in by_file["progress_20250610.csv"]
    assert "nothing in it could be counted" in by_file["progress_20250612.csv"]
    assert "The file is left" not in " ".join(warnings)      # the store's words, not the history's
    # the warnings stay while the files stay as they are (from the cache)
    assert history(ctx, now=NOW)["warnings"] == warnings


def test_a_damaged_current_file_does_not_stop_the_history(tmp_path):
    ctx = campaign(tmp_path, files={"progress_20250614.csv": [ok(14)]})
    # a torn write: the last row ends inside its completed_at ("...,success,,,2025-0")
    ctx.progress_file.write_bytes(serialize([ok(15), ok(15, "acc2")])[:-40])
    h = history(ctx, now=NOW)
    # the torn row's status is still there: it counts, on the file's day (today)
    assert by_date(h) == {"2025-06-14": (1, 0, 0), "2025-06-15": (2, 0, 0)}
    assert len(h["warnings"]) == 1 and h["warnings"][0].startswith(
        "progress.csv, line 4, has a row with 8 fields")


# --- the cache ------------------------------------------------------------------------------------
def test_a_changed_file_is_read_again_an_unchanged_one_is_not(tmp_path):
    ctx = campaign(tmp_path, files={
        "progress_20250613.csv": [ok(13), ok(13, "acc2")],
        "progress_20250614.csv": [ok(14)],
        "progress.csv": [ok(15)],
    })
    reader = HistoryReader()
    assert by_date(reader.history(ctx, now=NOW)) == {
        "2025-06-13": (2, 0, 0), "2025-06-14": (1, 0, 0), "2025-06-15": (1, 0, 0)}
    assert reader.reads == 3

    # An archive rewritten in place with the same size and its old mtime looks unchanged: its
    # old tallies are still shown, so it was not read again. (No writer does this; it shows
    # what the cache is keyed by.)
    archive = ctx.root / "progress_20250613.csv"
    st = archive.stat()
    data = archive.read_bytes()
    swapped = data.replace(b",success,", b",skipped,")
    assert len(swapped) == len(data) and swapped != data
    with open(archive, "r+b") as fh:
        fh.write(swapped)
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))
    # Today's file changes as a worker writes it (replaced whole, as the store writes it).
    tmp = ctx.progress_file.with_suffix(".tmp")
    tmp.write_bytes(serialize([ok(15), ok(15, "acc2"), failed(15, "outcome_unknown")]))
    os.replace(tmp, ctx.progress_file)

    h = reader.history(ctx, now=NOW)
    assert by_date(h) == {"2025-06-13": (2, 0, 0), "2025-06-14": (1, 0, 0),
                          "2025-06-15": (2, 0, 1)}
    assert reader.reads == 4          # today's file only

    # The archive's mtime moves: now it is read again, and its change shows.
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert by_date(reader.history(ctx, now=NOW)) == {"2025-06-14": (1, 0, 0),
                                                     "2025-06-15": (2, 0, 1)}
    assert reader.reads == 5


def test_the_cache_follows_archives_that_appear_and_go_and_keeps_other_campaigns(tmp_path):
    spring = campaign(tmp_path, files={"progress.csv": [ok(15)]})
    autumn = campaign(tmp_path, name="autumn", files={"progress_20250614.csv": [ok(14, "acc2")]})
    reader = HistoryReader()
    assert by_date(reader.history(spring, now=NOW)) == {"2025-06-15": (1, 0, 0)}
    assert by_date(reader.history(autumn, now=NOW)) == {"2025-06-14": (1, 0, 0)}
    assert reader.reads == 2

    # a day reset: today's rows move to an archive, a new day starts empty
    os.replace(spring.progress_file, spring.root / "progress_20250615.csv")
    spring.progress_file.write_bytes(serialize([]))
    assert by_date(reader.history(spring, now=NOW)) == {"2025-06-15": (1, 0, 0)}
    (spring.root / "progress_20250615.csv").unlink()
    assert by_date(reader.history(spring, now=NOW)) == {}
    # the other campaign's tallies were kept: nothing of it is read again
    reads = reader.reads
    assert by_date(reader.history(autumn, now=NOW)) == {"2025-06-14": (1, 0, 0)}
    assert reader.reads == reads


def test_a_change_of_time_zone_counts_again(tmp_path):
    rows = [row(C.SUCCESS, completed_at="2025-06-14T23:00:00.000+00:00")]
    utc_ctx = campaign(tmp_path, "UTC", {"progress_20250614.csv": rows})
    reader = HistoryReader()
    assert by_date(reader.history(utc_ctx, now=NOW)) == {"2025-06-14": (1, 0, 0)}
    (utc_ctx.root / "campaign.json").write_text(json.dumps({"timezone": "Europe/Berlin"}))
    berlin = PostingContext.for_campaign_dir(utc_ctx.root, tmp_path / "campaigns")
    assert by_date(reader.history(berlin, now=NOW)) == {"2025-06-15": (1, 0, 0)}
