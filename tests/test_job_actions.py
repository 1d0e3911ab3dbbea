"""The operator's actions on one job: retry it, skip it, move it to the front. Through the store's
public API on real files (JobStore: retry_job, skip_job, move_to_front, JobRefused) and through
the CLI as a real process (--retry-job, --skip-job, --front-job), refusals included: a refusal
names the job, says what to do, exits 1 and changes nothing."""
from __future__ import annotations

import pytest

from engine import columns as C
from engine.context import PostingContext
from engine.store import JobRefused, JobStore
from engine.tracker import ProgressStore

from helpers import (by_id, make_campaign, make_store, one_message, row, run_cli, snapshot,
                     write_progress)


def failed(job_id: str, account: str, error_type: str, category: str, **fields) -> list[str]:
    return row(job_id, account, C.FAILED, error=f"{error_type} happened", error_type=error_type,
               error_category=category, attempts="3", pass_number="3",
               completed_at="2025-06-15T11:00:00.000+00:00", **fields)


INFRA = ("adb_timeout", "infrastructure")
ACCOUNT = ("suspended", "account")
CONTENT = ("corrupted_video", "content")
UNKNOWN_OUTCOME = ("outcome_unknown", "unknown")


def refused(call, reason: str) -> JobRefused:
    with pytest.raises(JobRefused) as info:
        call()
    assert info.value.reason == reason, info.value
    return info.value


# --- the interface ---------------------------------------------------------------------------------
def test_the_actions_are_part_of_the_store_interface(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    assert isinstance(store, JobStore)
    for name in ("retry_job", "skip_job", "move_to_front"):
        assert callable(getattr(JobStore, name, None)), name


# --- retry one job ----------------------------------------------------------------------------------
def test_retry_puts_a_failed_job_back_due_now_with_fresh_attempts(tmp_path):
    store = make_store(tmp_path, [failed("j1", "acc_a", *INFRA, retry_at="2025-06-16T00:00:00"),
                                  row("j2", "acc_b")])
    job = store.retry_job("j1")
    assert (job["status"], job["retry_at"], job["attempts"], job["pass_number"]) == (
        C.RETRYING, "", "0", "1")
    assert by_id(ProgressStore(store.path, store.ledger_path, store.settings))["j1"] == job
    assert store.claim("w1")["job_id"] == "j2"          # pending first, as always
    assert store.claim("w2")["job_id"] == "j1"          # then the retry, due at once


@pytest.mark.parametrize("kind", [ACCOUNT, CONTENT, UNKNOWN_OUTCOME])
def test_a_risky_retry_needs_the_operators_consent(tmp_path, kind):
    store = make_store(tmp_path, [failed("j1", "acc_a", *kind)])
    before = snapshot(store.path)
    exc = refused(lambda: store.retry_job("j1"), JobRefused.NEEDS_CONSENT)
    assert exc.job_id == "j1" and "j1" in str(exc)
    if kind == UNKNOWN_OUTCOME:
        assert "may already be public" in str(exc) and "twice" in str(exc)
    assert snapshot(store.path) == before
    assert store.retry_job("j1", include_non_retryable=True)["status"] == C.RETRYING


def test_retry_of_an_unknown_id_is_refused_and_creates_nothing(tmp_path):
    store = make_store(tmp_path)                       # no progress file yet
    exc = refused(lambda: store.retry_job("nope"), JobRefused.UNKNOWN_JOB)
    assert "'nope'" in str(exc) and str(store.path) in str(exc)
    assert sorted(p.name for p in tmp_path.iterdir()) == []   # not even the lock file


@pytest.mark.parametrize("status, reason", [
    (C.PENDING, JobRefused.STATUS), (C.RETRYING, JobRefused.STATUS),
    (C.SUCCESS, JobRefused.POSTED), (C.SKIPPED, JobRefused.STATUS)])
def test_retry_only_starts_from_failed(tmp_path, status, reason):
    store = make_store(tmp_path, [row("j1", "acc_a", status)])
    before = snapshot(store.path)
    exc = refused(lambda: store.retry_job("j1", include_non_retryable=True), reason)
    assert "j1" in str(exc)
    assert ("posted" if status == C.SUCCESS else status) in str(exc)
    assert snapshot(store.path) == before


def test_retry_of_a_claimed_job_is_refused_and_the_claim_goes_on(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    job = store.claim("w7")
    before = snapshot(store.path)
    exc = refused(lambda: store.retry_job("j1", include_non_retryable=True), JobRefused.CLAIMED)
    assert "worker w7" in str(exc) and "a worker holds it" in str(exc)
    assert snapshot(store.path) == before
    store.complete("j1", job["claim_id"])                  # the worker's lease still holds
    assert store.job("j1")["status"] == C.SUCCESS


def test_a_video_in_the_ledger_is_never_retried(tmp_path):
    store = make_store(tmp_path, [failed("j1", "acc_a", *UNKNOWN_OUTCOME)])
    store.import_posts([("imported:x", "acc_a", "/elsewhere/j1.mp4", "")])
    before = snapshot(store.path)
    exc = refused(lambda: store.retry_job("j1", include_non_retryable=True), JobRefused.POSTED)
    assert "ledger" in str(exc)
    assert snapshot(store.path) == before


# --- skip one job -----------------------------------------------------------------------------------
@pytest.mark.parametrize("rows", [[row("j1", "acc_a")],
                                  [row("j1", "acc_a", C.RETRYING, error="network")],
                                  [failed("j1", "acc_a", *INFRA)]])
def test_skip_takes_a_job_out_of_the_queue_for_good(tmp_path, rows):
    store = make_store(tmp_path, rows)
    job = store.skip_job("j1", "  wrong   caption\n")
    assert (job["status"], job["error"], job["error_type"]) == (C.SKIPPED, "wrong caption",
                                                                 "skipped")
    assert store.job("j1") == job
    assert store.claim("w1") is None


def test_skip_without_a_reason_says_the_operator_skipped_it(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    assert store.skip_job("j1", "")["error"] == "skipped by the operator"


def test_skip_of_a_claimed_job_is_refused_not_forced(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    job = store.claim("w1")
    before = snapshot(store.path)
    exc = refused(lambda: store.skip_job("j1", "no"), JobRefused.CLAIMED)
    assert "a worker holds it" in str(exc) and "stop the run or wait" in str(exc)
    assert snapshot(store.path) == before
    store.set_phase("j1", job["claim_id"], "preparing")    # the worker goes on undisturbed


@pytest.mark.parametrize("rows, reason, words", [
    # failures that hold their account back on purpose stay failed
    ([failed("j1", "acc_a", *UNKNOWN_OUTCOME)], JobRefused.STATUS, "unknown outcome"),
    ([failed("j1", "acc_a", *ACCOUNT)], JobRefused.STATUS, "blocked"),
    ([row("j1", "acc_a", C.SUCCESS)], JobRefused.POSTED, "posted"),
    ([row("j1", "acc_a", C.SKIPPED, error="earlier")], JobRefused.STATUS, "earlier"),
])
def test_skip_refusals_change_nothing(tmp_path, rows, reason, words):
    store = make_store(tmp_path, rows)
    before = snapshot(store.path)
    exc = refused(lambda: store.skip_job("j1", "x"), reason)
    assert words in str(exc) and "j1" in str(exc)
    assert snapshot(store.path) == before


def test_an_unknown_outcome_keeps_counting_after_a_refused_skip(tmp_path):
    """Why the skip is refused: skipped, the unknown outcome would free the account's slot."""
    store = make_store(tmp_path, [failed("j1", "acc_a", *UNKNOWN_OUTCOME), row("j2", "acc_a")],
                       timezone="UTC")
    refused(lambda: store.skip_job("j1", "x"), JobRefused.STATUS)
    assert store.claim("w1") is None                     # limit 1: the slot stays used


# --- move one job to the front ------------------------------------------------------------------------
def test_move_to_front_changes_the_claim_order_and_nothing_else(tmp_path):
    rows = [row(f"j{i}", f"acc_{i}") for i in range(4)]
    store = make_store(tmp_path, rows)
    lines = store.path.read_bytes().splitlines(keepends=True)
    job = store.move_to_front("j2")
    assert job["status"] == C.PENDING and job == dict(zip(C.COLUMNS, rows[2]))
    after = store.path.read_bytes().splitlines(keepends=True)
    assert after == [lines[0], lines[3], lines[1], lines[2], lines[4]]    # the row moved whole
    # the same store goes on from what it wrote: every id still finds its own row
    assert [store.job(f"j{i}")["account"] for i in range(4)] == [f"acc_{i}" for i in range(4)]
    assert store.skip_job("j0", "x")["job_id"] == "j0"
    assert store.job("j0")["status"] == C.SKIPPED and store.job("j2")["status"] == C.PENDING
    fresh = ProgressStore(store.path, store.ledger_path, store.settings)
    assert [fresh.claim(f"w{i}")["job_id"] for i in range(3)] == ["j2", "j1", "j3"]


def test_moving_the_first_job_writes_nothing(tmp_path):
    store = make_store(tmp_path, [row("j0", "acc_a"), row("j1", "acc_b")])
    before = snapshot(store.path)
    assert store.move_to_front("j0")["job_id"] == "j0"
    assert snapshot(store.path) == before


@pytest.mark.parametrize("status", [C.RETRYING, C.FAILED, C.SUCCESS, C.SKIPPED])
def test_only_a_pending_job_moves_to_the_front(tmp_path, status):
    store = make_store(tmp_path, [row("j0", "acc_a"), row("j1", "acc_b", status)])
    before = snapshot(store.path)
    exc = refused(lambda: store.move_to_front("j1"),
                  JobRefused.POSTED if status == C.SUCCESS else JobRefused.STATUS)
    assert "j1" in str(exc)
    assert snapshot(store.path) == before


def test_a_claimed_job_is_not_moved(tmp_path):
    store = make_store(tmp_path, [row("j0", "acc_a"), row("j1", "acc_b")])
    store.claim("w1", accounts=frozenset({"acc_b"}))
    before = snapshot(store.path)
    refused(lambda: store.move_to_front("j1"), JobRefused.CLAIMED)
    refused(lambda: store.move_to_front("j9"), JobRefused.UNKNOWN_JOB)
    assert snapshot(store.path) == before


# --- the CLI, as an operator runs it ------------------------------------------------------------------
@pytest.fixture
def demo(campaigns_dir, tmp_path):
    root = make_campaign(campaigns_dir, "demo", accounts=["acc_a", "acc_b", "acc_c"], videos=3,
                         settings={"timezone": "UTC"})
    progress = root / "progress.csv"

    def cli(*args):
        return run_cli("--no-ui", "--campaign", "demo", *args, cwd=tmp_path,
                       campaigns_dir=campaigns_dir)

    return root, progress, cli


def store_of(root) -> ProgressStore:
    return ProgressStore.for_context(PostingContext.for_campaign_dir(root, root.parent))


def test_cli_retry_job(demo):
    root, progress, cli = demo
    write_progress(progress, [failed("f1", "acc_a", *INFRA)])
    res = cli("--retry-job", "f1")
    assert res.returncode == 0, res.stderr
    assert "job f1 put back in the queue" in res.stdout and res.stderr == ""
    assert store_of(root).job("f1")["status"] == C.RETRYING


def test_cli_retry_of_an_unknown_id_is_refused(demo):
    root, progress, cli = demo
    write_progress(progress, [failed("f1", "acc_a", *INFRA)])
    before = snapshot(progress)
    one_message(cli("--retry-job", "typo"), "'typo'", str(progress))
    assert snapshot(progress) == before


def test_cli_retry_of_an_unknown_outcome_needs_the_flag(demo):
    root, progress, cli = demo
    write_progress(progress, [failed("u1", "acc_a", *UNKNOWN_OUTCOME)])
    before = snapshot(progress)
    one_message(cli("--retry-job", "u1"), "job u1", "post it twice",
                "--retry-include-non-retryable")
    assert snapshot(progress) == before
    res = cli("--retry-job", "u1", "--retry-include-non-retryable")
    assert res.returncode == 0, res.stderr
    assert store_of(root).job("u1")["status"] == C.RETRYING


def test_cli_skip_job_with_and_without_a_reason(demo):
    root, progress, cli = demo
    write_progress(progress, [row("p1", "acc_a"), row("p2", "acc_b")])
    res = cli("--skip-job", "p1", "--reason", "caption has a typo")
    assert res.returncode == 0, res.stderr
    assert "job p1 skipped (caption has a typo)" in res.stdout
    assert cli("--skip-job", "p2").returncode == 0
    jobs = by_id(store_of(root))
    assert (jobs["p1"]["status"], jobs["p1"]["error"]) == (C.SKIPPED, "caption has a typo")
    assert jobs["p2"]["error"] == "skipped by the operator"


def test_cli_skip_of_a_claimed_job_is_refused(demo):
    root, progress, cli = demo
    write_progress(progress, [row("p1", "acc_a")])
    store = store_of(root)
    job = store.claim("w1")
    before = snapshot(progress)
    one_message(cli("--skip-job", "p1"), "job p1", "a worker holds it", "--stop")
    assert snapshot(progress) == before
    store.complete("p1", job["claim_id"])        # a claim is not left behind


def test_cli_front_job_and_a_refused_move(demo):
    root, progress, cli = demo
    write_progress(progress, [row("p1", "acc_a"), row("p2", "acc_b"),
                              row("s1", "acc_c", C.SUCCESS)])
    res = cli("--front-job", "p2")
    assert res.returncode == 0, res.stderr
    assert "job p2 is first in the queue" in res.stdout
    assert [j["job_id"] for j in store_of(root).jobs()] == ["p2", "p1", "s1"]
    before = snapshot(progress)
    one_message(cli("--front-job", "s1"), "job s1", "posted")
    assert snapshot(progress) == before
    write_progress(progress, [row("p1", "acc_a"), row("r1", "acc_b", C.RETRYING)])
    before = snapshot(progress)
    one_message(cli("--front-job", "r1"), "job r1", "only a pending job")
    assert snapshot(progress) == before


@pytest.mark.parametrize("args", [
    ["--retry-job"],                                   # no id
    ["--retry-job", " "],                              # a blank id
    ["--skip-job", ""],
    ["--front-job", "a", "--skip-job", "b"],           # two actions
    ["--retry-job", "a", "--status"],
    ["--front-job", "a", "--reason", "x"],             # --reason goes with skip/disable
    ["--skip-job", "a", "--reason", "  "],             # a blank reason
    ["--skip-job", "a", "--retry-include-non-retryable"],
    ["--retry-job", "a", "--json"],
])
def test_cli_usage_errors_exit_2(demo, args):
    root, progress, cli = demo
    write_progress(progress, [row("a", "acc_a"), row("b", "acc_b")])
    before = snapshot(progress)
    res = cli(*args)
    assert res.returncode == 2, (args, res.stdout, res.stderr)
    assert "usage" in res.stderr
    assert snapshot(progress) == before


def test_cli_actions_wait_for_the_stores_lock_like_a_worker(demo):
    """While a worker holds the progress file's lock the action waits, then goes through."""
    import threading

    from filelock import FileLock
    root, progress, cli = demo
    write_progress(progress, [row("p1", "acc_a")])
    results = []
    with FileLock(str(progress) + ".lock"):
        t = threading.Thread(target=lambda: results.append(cli("--skip-job", "p1")))
        t.start()
        t.join(3.0)
        assert t.is_alive() and store_of(root).job("p1")["status"] == C.PENDING
    t.join(60)
    assert results and results[0].returncode == 0, results
    assert store_of(root).job("p1")["status"] == C.SKIPPED
