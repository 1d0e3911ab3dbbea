"""Corrupt progress files are refused with the file and the line, and never changed; the earlier
system's 17- and 9-column files load unchanged (DESIGN.md, "The progress store")."""
from __future__ import annotations

import json

import pytest

from engine import columns as C
from engine.context import PostingContext
from console.words import CLI_WORDS
from engine.problems import Remedy
from engine.tracker import CorruptProgressFile, HEADER_ONLY, ProgressStore

from helpers import (accounts, make_campaign, make_store, progress_bytes, row, run_cli,
                     snapshot, videos)

GOOD = progress_bytes([row("j1", "acc_a"), row("j2", "acc_b", caption='two\nlines, "quoted"'),
                       row("j3", "acc_c")])
HEADER = GOOD.split(b"\n", 1)[0] + b"\n"
J1 = GOOD.split(b"\n")[1] + b"\n"


def _replace_status(data: bytes, job: bytes, status: bytes) -> bytes:
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(job + b","):
            lines[i] = line.replace(b",pending,", b"," + status + b",", 1)
    return b"\n".join(lines)


# name -> (bytes, line the message must name, words the message must hold)
CORRUPT = {
    "zero_bytes": (b"", 1, "empty"),
    "wrong_header": (GOOD.replace(b"job_id,account", b"id,account", 1), 1, "header"),
    "bom_header": (b"\xef\xbb\xbf" + GOOD, 1, "header"),
    "too_few_fields": (HEADER + J1 + b"j9,acc_z,/v.mp4,cap,pending\n", 3, "5 fields"),
    "too_many_fields": (HEADER + J1.replace(b"\n", b",extra\n"), 2, f"{C.WIDTH + 1} fields"),
    "truncated_last_line": (GOOD[:-25], 5, "fields"),
    "truncated_in_quotes": (GOOD[:GOOD.index(b"two") + 3], 3, "cut off"),
    "unknown_status": (_replace_status(GOOD, b"j3", b"done"), 5, "unknown status 'done'"),
    "duplicate_job_id": (GOOD + J1, 6, "'j1' twice (first on line 2)"),
    "bad_utf8": (GOOD.replace(b"caption of j3", b"caption \xff\xfe of j3"), 5, "UTF-8"),
}


@pytest.fixture(params=sorted(CORRUPT))
def corrupt(request, tmp_path):
    data, line, words = CORRUPT[request.param]
    store = make_store(tmp_path / "camp")
    store.path.write_bytes(data)
    return store, line, words


def assert_refusal(exc: CorruptProgressFile, store: ProgressStore, line: int, words: str):
    text = str(exc)
    assert exc.path == store.path and exc.line == line
    assert text.startswith(f"{store.path}, line {line}: "), text
    assert words in text
    assert "inspect it" in text and Remedy.RESET_DAY in exc.remedies
    assert "--reset-day" in exc.explain(CLI_WORDS)      # the CLI names its flag
    assert "\n" not in text.replace(str(store.path), "")


API_CALLS = {
    "read": lambda s: s.read(),
    "jobs": lambda s: s.jobs(),
    "job": lambda s: s.job("j1"),
    "stats": lambda s: s.stats(),
    "validate": lambda s: s.validate(),
    "next_chance": lambda s: s.next_chance(),
    "claim": lambda s: s.claim("w1"),
    "set_phase": lambda s: s.set_phase("j1", "c", "preparing"),
    "complete": lambda s: s.complete("j1", "c"),
    "fail": lambda s: s.fail("j1", "c", "adb timeout"),
    "release": lambda s: s.release("j1", "c"),
    "recover_stale": lambda s: s.recover_stale([]),
    "retry_all_failed": lambda s: s.retry_all_failed(True),
    "seed": lambda s: s.seed(videos(s.path.parent, ["n.mp4"]), accounts("new"), "camp"),
}


def test_every_store_call_refuses_and_leaves_the_file_alone(corrupt):
    store, line, words = corrupt
    before = snapshot(store.path)
    for name, call in API_CALLS.items():
        with pytest.raises(CorruptProgressFile) as exc:
            call(store)
        assert_refusal(exc.value, store, line, words)
        assert snapshot(store.path) == before, f"{name} changed the file"
    assert not store.ledger_path.exists()


def test_reset_day_archives_a_corrupt_file_byte_for_byte(corrupt):
    store, _, _ = corrupt
    data = store.path.read_bytes()
    archive = store.reset_day("20250615")
    assert archive == store.path.with_name("progress_20250615.csv")
    assert archive.read_bytes() == data
    assert store.path.read_bytes() == HEADER_ONLY
    assert store.stats()["total"] == 0


def test_a_cached_good_file_that_turns_corrupt_is_refused(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    assert store.stats()["pending"] == 1                 # parsed and cached
    store.path.write_bytes(GOOD + J1)
    with pytest.raises(CorruptProgressFile):
        store.claim("w1")


def test_header_only_is_a_valid_empty_day(tmp_path):
    store = make_store(tmp_path)
    store.path.write_bytes(HEADER_ONLY)
    assert store.stats()["total"] == 0 and store.claim("w1") is None


def test_crlf_file_of_the_earlier_system_parses(tmp_path):
    store = make_store(tmp_path)
    store.path.write_bytes(GOOD.replace(b"\n", b"\r\n"))
    assert [j["job_id"] for j in store.jobs()] == ["j1", "j2", "j3"]
    assert store.job("j2")["caption"] == 'two\r\nlines, "quoted"'


# --- the earlier system's files ----------------------------------------------------------------
@pytest.mark.parametrize("width", [17, 9])
def test_earlier_system_files_load_unchanged_and_can_be_claimed(tmp_path, width):
    old = [row("j1", "acc_a", C.SUCCESS, worker_id="3", claimed_at="2025-06-15T09:00:00",
               completed_at="2025-06-15T09:05:00"),
           row("j2", "acc_b", C.PENDING, caption='Hi, "you"\nnext line 🎬'),
           row("j3", "acc_c", C.FAILED, error="adb timeout", attempts="3",
               error_type="adb_timeout" if width == 17 else "",
               error_category="infrastructure" if width == 17 else "")]
    store = make_store(tmp_path, max_posts_per_account_per_day=2)
    store.path.write_bytes(progress_bytes(old, C.COLUMNS[:width], lineterminator="\r\n"))
    jobs = store.jobs()
    assert [j["job_id"] for j in jobs] == ["j1", "j2", "j3"]
    for job, r in zip(jobs, old):
        for i, column in enumerate(C.COLUMNS):
            assert job[column] == (r[i] if i < width else ""), (job["job_id"], column)
    assert store.stats() == {**dict.fromkeys(C.STATUSES, 0), "success": 1, "pending": 1,
                             "failed": 1, "total": 3}
    job = store.claim("w1")
    assert job["job_id"] == "j2" and job["phone_id"] == "acc_b" and job["claim_id"]
    store.complete("j2", job["claim_id"])
    after = store.jobs()
    assert store.path.read_text().splitlines()[0] == ",".join(C.COLUMNS)   # written in full
    for before, now in zip(jobs, after):
        if before["job_id"] != "j2":
            assert before == now
    assert after[1]["caption"] == 'Hi, "you"\nnext line 🎬'
    assert store.retry_all_failed() == 1                  # the old failure is retryable


# --- the CLI refuses too -----------------------------------------------------------------------
CLI_CASES = ["zero_bytes", "wrong_header", "too_few_fields", "truncated_last_line",
             "truncated_in_quotes", "unknown_status", "duplicate_job_id", "bad_utf8"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_refuses_a_corrupt_file(tmp_path, case):
    data, line, words = CORRUPT[case]
    root = make_campaign(tmp_path / "campaigns", "camp", accounts=["acc_a", "acc_b"], videos=3,
                         settings={"max_posts_per_account_per_day": 2})
    progress = root / "progress.csv"
    progress.write_bytes(data)
    before = snapshot(progress)
    actions = [["--status"], ["--seed-only"], ["--retry-all-failed"]]
    if case == "duplicate_job_id":
        actions += [["--status", "--json"], ["--retry-all-failed", "--retry-include-non-retryable"],
                    ["--run", "--workers", "1"]]
    for action in actions:
        res = run_cli("--no-ui", "--campaign", "camp", *action, cwd=tmp_path,
                      campaigns_dir=tmp_path / "campaigns")
        assert res.returncode == 1, (action, res.stdout, res.stderr)
        err = res.stderr.strip()
        assert len(err.splitlines()) == 1, err
        assert f"{progress}, line {line}: " in err and words in err, err
        assert "inspect it" in err and "--reset-day" in err
        assert res.stdout == ""
        assert snapshot(progress) == before, action
    assert not (root / "posted.csv").exists()


def test_cli_reset_day_archives_a_corrupt_file(tmp_path):
    data = CORRUPT["duplicate_job_id"][0]
    root = make_campaign(tmp_path / "campaigns", "camp", videos=2, settings={})
    (root / "progress.csv").write_bytes(data)
    res = run_cli("--no-ui", "--campaign", "camp", "--reset-day", cwd=tmp_path,
                  campaigns_dir=tmp_path / "campaigns")
    assert res.returncode == 0, res.stderr
    archives = list(root.glob("progress_*.csv"))
    assert len(archives) == 1 and archives[0].read_bytes() == data
    assert (root / "progress.csv").read_bytes() == HEADER_ONLY
    res = run_cli("--no-ui", "--campaign", "camp", "--status", "--json", cwd=tmp_path,
                  campaigns_dir=tmp_path / "campaigns")
    assert res.returncode == 0 and json.loads(res.stdout)["total"] == 0


def test_legacy_cli_refuses_a_corrupt_file(tmp_path):
    (tmp_path / "accounts.txt").write_text("acc_a\n")
    (tmp_path / "scheduler_state.json").write_text('{"videos": []}')
    progress = tmp_path / "parallel_progress.csv"
    progress.write_bytes(CORRUPT["unknown_status"][0])
    before = snapshot(progress)
    for action in (["--status"], ["--seed-only"], ["--retry-all-failed"]):
        res = run_cli("--no-ui", *action, cwd=tmp_path)
        assert res.returncode == 1, res.stderr
        assert f"{progress}, line 5: " in res.stderr and "--reset-day" in res.stderr
        assert snapshot(progress) == before


def test_status_via_context_refuses(tmp_path):
    root = make_campaign(tmp_path, "camp", settings={})
    (root / "progress.csv").write_bytes(b"")
    ctx = PostingContext.for_campaign_dir(root, tmp_path)
    from engine.status import campaign_status
    with pytest.raises(CorruptProgressFile):
        campaign_status(ctx)
