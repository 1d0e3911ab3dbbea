"""Seeding rules and the daily-limit validation (DESIGN.md, "Seeding" and "campaign.json")."""
from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from engine import columns as C
from engine.campaigns import Account
from engine.context import PostingContext
from engine.problems import InputError
from engine.settings import load_settings, validate_daily_limit
from engine.tracker import job_id_for

from helpers import (Clock, T0, accounts, by_id, make_campaign, make_store, row, snapshot, videos,
                     write_progress)


def seeded(added: list[dict]) -> list[tuple[str, str]]:
    return [(j["account"], j["job_id"]) for j in added]


def test_round_robin_one_video_per_account_per_slot(tmp_path):
    store = make_store(tmp_path, max_posts_per_account_per_day=2)
    vids = videos(tmp_path, [f"v{i}.mp4" for i in range(10)])
    added = store.seed(vids, accounts("a", "b", "c"), "camp")
    assert seeded(added) == [("a", "v0.mp4_camp"), ("b", "v1.mp4_camp"), ("c", "v2.mp4_camp"),
                             ("a", "v3.mp4_camp"), ("b", "v4.mp4_camp"), ("c", "v5.mp4_camp")]
    assert [j["job_id"] for j in store.jobs()] == [j for _, j in seeded(added)]


def test_counts_are_kept_in_memory_within_one_pass(tmp_path):
    # Limit 2, plenty of videos: no account gets more than 2 in one pass.
    store = make_store(tmp_path, max_posts_per_account_per_day=2)
    added = store.seed(videos(tmp_path, [f"v{i}.mp4" for i in range(50)]), accounts("a", "b"), "c")
    assert Counter(j["account"] for j in added) == {"a": 2, "b": 2}
    assert store.seed(videos(tmp_path, [f"v{i}.mp4" for i in range(50)]), accounts("a", "b"),
                      "c") == []                     # a second pass adds nothing


def test_fewer_videos_than_slots(tmp_path):
    store = make_store(tmp_path, max_posts_per_account_per_day=4)
    added = store.seed(videos(tmp_path, ["x.mp4", "y.mp4", "z.mp4"]), accounts("a", "b"), "c")
    assert seeded(added) == [("a", "x.mp4_c"), ("b", "y.mp4_c"), ("a", "z.mp4_c")]


def test_seeded_row_fields(tmp_path):
    store = make_store(tmp_path, max_attempts=5)
    store.seed(videos(tmp_path, ["v.mp4"]), [Account("a", "phone-9")], "camp")
    job = store.job("v.mp4_camp")
    assert job["account"] == "a" and job["phone_id"] == "phone-9"
    assert job["video_path"] == str(tmp_path / "v.mp4") and job["caption"] == "cap v.mp4"
    assert (job["status"], job["attempts"], job["max_attempts"], job["pass_number"]) == \
        ("pending", "0", "5", "1")
    assert job["claim_id"] == job["worker_id"] == ""
    assert job_id_for("v.mp4", "camp") == "v.mp4_camp"


@pytest.mark.parametrize("status", [C.PENDING, C.CLAIMED, C.SUCCESS])
def test_open_or_successful_job_blocks_reseeding_the_account(tmp_path, status):
    store = make_store(tmp_path, [row("old", "a", status, claim_id="c" if status == C.CLAIMED
                                      else "")], max_posts_per_account_per_day=2)
    added = store.seed(videos(tmp_path, ["v1.mp4", "v2.mp4", "v3.mp4"]), accounts("a", "b"), "c")
    assert seeded(added) == [("b", "v1.mp4_c"), ("b", "v2.mp4_c")]


@pytest.mark.parametrize("status", [C.FAILED, C.RETRYING, C.SKIPPED])
def test_failed_jobs_do_not_block_reseeding_the_account(tmp_path, status):
    store = make_store(tmp_path, [row("old", "a", status, error="adb timeout",
                                      error_type="adb_timeout", error_category="infrastructure")],
                       max_posts_per_account_per_day=2)
    added = store.seed(videos(tmp_path, ["v1.mp4", "v2.mp4"]), accounts("a"), "c")
    assert seeded(added) == [("a", "v1.mp4_c"), ("a", "v2.mp4_c")]


def test_an_unknown_outcome_uses_a_slot(tmp_path):
    store = make_store(tmp_path, [row("old", "a", C.FAILED, error_type="outcome_unknown",
                                      error_category="unknown")], max_posts_per_account_per_day=2)
    added = store.seed(videos(tmp_path, ["v1.mp4", "v2.mp4"]), accounts("a"), "c")
    assert seeded(added) == [("a", "v1.mp4_c")]


def test_videos_already_in_the_file_are_not_added_again(tmp_path):
    # Whatever their status (a failed video is retried, not reseeded): a second row would be a
    # duplicate job_id, i.e. a corrupt file.
    store = make_store(tmp_path, [row("v1.mp4_c", "a", C.FAILED, error_type="corrupted_video",
                                      error_category="content")],
                       max_posts_per_account_per_day=2)
    added = store.seed(videos(tmp_path, ["v1.mp4", "v2.mp4"]), accounts("a"), "c")
    assert seeded(added) == [("a", "v2.mp4_c")]
    store.validate()


def test_ledger_videos_are_never_reseeded(tmp_path):
    store = make_store(tmp_path)
    vids = videos(tmp_path, ["v1.mp4", "v2.mp4", "v3.mp4", "v4.mp4"])
    with open(store.ledger_path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(C.LEDGER_COLUMNS)
        w.writerow([ "2025-01-01T10:00:00+00:00", "x", "/elsewhere/v9.mp4", "v1.mp4_c"])  # by id
        w.writerow(["2025-01-01T10:00:00+00:00", "x", str(vids[1].path), "renamed"])       # by path
    added = store.seed(vids, accounts("a", "b", "d"), "c")
    assert seeded(added) == [("a", "v3.mp4_c"), ("b", "v4.mp4_c")]


def test_ledger_survives_a_day_reset_and_still_guards(tmp_path):
    clock = Clock()
    store = make_store(tmp_path, [row("v1.mp4_c", "a")], clock=clock)
    job = store.claim("w1")
    store.complete(job["job_id"], job["claim_id"])
    store.reset_day("20250615")
    vids = videos(tmp_path, ["v1.mp4", "v2.mp4"])
    # A reset starts a new file, not a new day: the account used its one slot today.
    assert store.seed(vids, accounts("a"), "c") == []
    clock.advance(86400)
    assert seeded(store.seed(vids, accounts("a"), "c")) == [("a", "v2.mp4_c")]


def test_unknown_outcomes_of_earlier_days_are_not_reseeded(tmp_path):
    store = make_store(tmp_path, [row("v1.mp4_c", "a", C.FAILED, error_type="outcome_unknown",
                                      error_category="unknown")])
    store.reset_day("20250614")
    added = store.seed(videos(tmp_path, ["v1.mp4", "v2.mp4"]), accounts("a"), "c")
    assert seeded(added) == [("a", "v2.mp4_c")]


def test_seed_on_a_missing_file_creates_it(tmp_path):
    store = make_store(tmp_path)
    assert not store.path.exists()
    store.seed(videos(tmp_path, ["v1.mp4"]), accounts("a"), "c")
    assert store.path.read_text().splitlines()[0] == ",".join(C.COLUMNS)


def test_nothing_to_seed_writes_nothing(tmp_path):
    store = make_store(tmp_path, [row("v1.mp4_c", "a", C.SUCCESS)])
    before = snapshot(store.path)
    assert store.seed(videos(tmp_path, ["v1.mp4"]), accounts("a", "b"), "c") == []
    assert snapshot(store.path) == before


def test_videos_without_a_caption_are_not_seeded(tmp_path):
    root = make_campaign(tmp_path, "camp", accounts=["a", "b", "d"],
                         videos=["v1.mp4", "v2.mp4", "v3.mp4"],
                         captions={"v1.mp4": "hello", "v2.mp4": "   "}, settings={})
    ctx = PostingContext.for_campaign_dir(root, tmp_path)
    campaign = ctx.load_campaign()
    assert [v.filename for v in campaign.videos] == ["v1.mp4"]
    from engine.operations import seed
    added = seed(ctx)
    assert seeded(added) == [("a", "v1.mp4_camp")]


# --- the daily limit ---------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1, 2, 3, 4])
def test_daily_limit_accepts_1_to_4(tmp_path, value):
    assert validate_daily_limit(value) == value
    (tmp_path / "campaign.json").write_text(json.dumps({"max_posts_per_account_per_day": value}))
    assert load_settings(tmp_path / "campaign.json").daily_limit == value


@pytest.mark.parametrize("value, shown", [(0, "0"), (5, "5"), (1.5, "1.5"), (True, "True"),
                                          ("2", "'2'"), (None, "None"), (-1, "-1"), (2.0, "2.0")])
def test_daily_limit_refuses_everything_else(tmp_path, value, shown):
    with pytest.raises(ValueError) as exc:
        validate_daily_limit(value)
    assert "from 1 to 4" in str(exc.value) and shown in str(exc.value)
    path = tmp_path / "campaign.json"
    path.write_text('{\n  "enabled": true,\n  "max_posts_per_account_per_day": '
                    + json.dumps(value) + '\n}\n')
    with pytest.raises(InputError) as exc:
        load_settings(path)
    err = exc.value
    assert err.path == path and err.line == 3
    assert str(err).startswith(f"{path}, line 3: ")
    assert "max_posts_per_account_per_day" in str(err) and "from 1 to 4" in str(err)


def test_context_with_daily_limit_validates(tmp_path):
    root = make_campaign(tmp_path, "camp", settings={})
    ctx = PostingContext.for_campaign_dir(root, tmp_path)
    assert ctx.with_daily_limit(3).daily_limit == 3
    with pytest.raises(ValueError):
        ctx.with_daily_limit(5)
    with pytest.raises(ValueError):
        ctx.with_daily_limit(True)


def test_seeding_respects_the_limit_read_from_campaign_json(tmp_path):
    root = make_campaign(tmp_path, "camp", accounts=["a", "b"], videos=9,
                         settings={"max_posts_per_account_per_day": 3})
    ctx = PostingContext.for_campaign_dir(root, tmp_path)
    from engine.operations import seed
    added = seed(ctx)
    assert Counter(j["account"] for j in added) == {"a": 3, "b": 3}
    assert seed(ctx) == []
    assert len(by_id(make_store(root))) == 6
