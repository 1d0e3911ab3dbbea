"""recover_stale, release, retry_all_failed, and the stale write of a worker whose claim was
recovered (DESIGN.md, "Runs" and "The progress store")."""
from __future__ import annotations

import pytest

from engine import columns as C
from engine.errors import PostError
from engine.rules import now_iso
from engine.tracker import ClaimLost, RetryPolicy

from helpers import T0, Clock, by_id, make_store, row, snapshot


def claimed(store, worker="w1", phase="claimed"):
    job = store.claim(worker)
    assert job is not None
    if phase != "claimed":
        store.set_phase(job["job_id"], job["claim_id"], "preparing")
    if phase == "publishing":
        store.set_phase(job["job_id"], job["claim_id"], "publishing")
    return job


# --- recover_stale ------------------------------------------------------------------------------
@pytest.mark.parametrize("phase", ["claimed", "preparing"])
def test_lost_before_publishing_is_claimable_again_at_once(tmp_path, phase):
    clock = Clock()
    store = make_store(tmp_path, [row("j1", "acc_a")], clock=clock)
    job = claimed(store, "w1", phase)
    clock.advance(30)
    recovered = store.recover_stale(live_workers=[])
    assert [r["job_id"] for r in recovered] == ["j1"]
    j = store.job("j1")
    assert j["status"] == C.RETRYING and j["retry_at"] == "" and j["phase"] == ""
    assert j["attempts"] == "1"                       # the attempt counts
    assert (j["error_type"], j["error_category"]) == ("worker_lost", "infrastructure")
    assert f"worker w1 was lost in phase {phase}" in j["error"]
    assert j["completed_at"] == now_iso(T0 + 30)
    again = store.claim("w2")                          # no wait
    assert again["job_id"] == "j1" and again["claim_id"] != job["claim_id"]
    assert again["attempts"] == "2"


def test_a_job_that_keeps_killing_its_worker_ends_after_max_attempts(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a", max_attempts="3")],
                       cooldown_after_consecutive=99)
    for attempt in (1, 2, 3):
        job = claimed(store, f"w{attempt}", "preparing")
        assert job["attempts"] == str(attempt)
        store.recover_stale(live_workers=[])
    j = store.job("j1")
    assert j["status"] == C.FAILED and j["attempts"] == "3"
    assert store.claim("w9") is None


def test_lost_while_publishing_is_an_unknown_outcome(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a"), row("j2", "acc_a")],
                       max_posts_per_account_per_day=1)
    claimed(store, "w1", "publishing")
    store.recover_stale(live_workers=[])
    j = store.job("j1")
    assert j["status"] == C.FAILED
    assert (j["error_type"], j["error_category"]) == ("outcome_unknown", "unknown")
    assert "publishing" in j["error"] and "check the account" in j["error"]
    assert store.claim("w2") is None                   # it used the only slot of the day
    assert store.retry_all_failed() == 0               # never retried automatically
    assert store.job("j1")["status"] == C.FAILED
    assert store.ledger() == []


def test_live_workers_keep_their_claims(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a"), row("j2", "acc_b")])
    claimed(store, "w1")
    claimed(store, "w2")
    before = snapshot(store.path)
    assert store.recover_stale(live_workers=["w1", "w2"]) == []
    assert snapshot(store.path) == before               # nothing to do: no write
    recovered = store.recover_stale(live_workers=["w1"])
    assert [r["job_id"] for r in recovered] == ["j2"]
    assert by_id(store)["j1"]["status"] == C.CLAIMED


def test_claims_of_another_run_are_recovered_even_with_a_live_worker_id(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a"), row("j2", "acc_b")])
    store.run_id = "old-run"
    claimed(store, "w1")
    store.run_id = "new-run"
    claimed(store, "w2")
    recovered = store.recover_stale(live_workers=["w1", "w2"], run_id="new-run")
    assert [r["job_id"] for r in recovered] == ["j1"]
    assert by_id(store)["j2"]["status"] == C.CLAIMED


def test_stop_all_gives_the_attempt_back(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a"), row("j2", "acc_b"), row("j3", "acc_c")])
    claimed(store, "w1", "preparing")
    claimed(store, "w2", "publishing")
    j3 = store.claim("w3")
    store.fail("j3", j3["claim_id"], "connection refused")    # retrying, attempts 1
    store.clock.advance(60)
    j3 = store.claim("w3")                                     # attempts 2
    store.recover_stale(live_workers=[], counted=False)
    jobs = by_id(store)
    assert (jobs["j1"]["status"], jobs["j1"]["attempts"]) == (C.PENDING, "0")
    assert jobs["j2"]["error_type"] == "outcome_unknown"      # the post may be public
    assert (jobs["j3"]["status"], jobs["j3"]["attempts"]) == (C.RETRYING, "1")
    assert "stopped by the operator" in jobs["j2"]["error"]


def test_release(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a"), row("j2", "acc_b")])
    a = claimed(store, "w1", "preparing")
    b = claimed(store, "w2", "publishing")
    store.release("j1", a["claim_id"])
    store.release("j2", b["claim_id"])
    jobs = by_id(store)
    assert (jobs["j1"]["status"], jobs["j1"]["attempts"], jobs["j1"]["phase"]) == \
        (C.PENDING, "0", "")
    assert (jobs["j2"]["status"], jobs["j2"]["error_type"]) == (C.FAILED, "outcome_unknown")
    with pytest.raises(ClaimLost):
        store.release("j1", a["claim_id"])


# --- the stale write ---------------------------------------------------------------------------
def test_a_recovered_worker_cannot_overwrite_the_job(tmp_path):
    clock = Clock()
    store_a = make_store(tmp_path, [row("j1", "acc_a")], clock=clock)       # worker A's store
    store_b = make_store(tmp_path, clock=clock)                              # worker B's store
    sup = make_store(tmp_path, clock=clock)                                  # the supervisor's
    old = store_a.claim("wA")
    store_a.set_phase("j1", old["claim_id"], "preparing")
    sup.recover_stale(live_workers=["wB"])              # A's heartbeat was lost

    def stale_writes():
        before = snapshot(store_a.path)
        ledger_before = store_a.ledger()
        for write in (lambda: store_a.set_phase("j1", old["claim_id"], "publishing"),
                      lambda: store_a.complete("j1", old["claim_id"], "vid"),
                      lambda: store_a.fail("j1", old["claim_id"], "adb timeout"),
                      lambda: store_a.release("j1", old["claim_id"])):
            with pytest.raises(ClaimLost):
                write()
            assert snapshot(store_a.path) == before
        assert store_a.ledger() == ledger_before

    stale_writes()                                      # recovered, not yet re-claimed
    new = store_b.claim("wB")
    assert new["job_id"] == "j1" and new["worker_id"] == "wB"
    store_b.set_phase("j1", new["claim_id"], "publishing")
    stale_writes()                                      # re-claimed by B
    j = store_b.job("j1")
    assert (j["status"], j["worker_id"], j["claim_id"], j["phase"]) == \
        (C.CLAIMED, "wB", new["claim_id"], "publishing")
    store_b.complete("j1", new["claim_id"], "vid-B")
    stale_writes()                                      # and finished by B
    assert [e["job_id"] for e in store_b.ledger()] == ["j1"]
    assert store_b.job("j1")["video_id"] == "vid-B"


# --- retry_all_failed ----------------------------------------------------------------------------
def failed(job_id, account, error_type, category, **kw):
    return row(job_id, account, C.FAILED, error=f"{error_type} happened", error_type=error_type,
               error_category=category, attempts=kw.pop("attempts", "3"),
               completed_at=now_iso(T0 - 3600), **kw)


FAILED_ROWS = [
    failed("infra", "acc_1", "adb_timeout", "infrastructure"),
    failed("unk", "acc_2", "unknown", "unknown", attempts="2"),
    failed("acct", "acc_3", "suspended", "account", attempts="1"),
    failed("cont", "acc_4", "corrupted_video", "content", attempts="1"),
    failed("outc", "acc_5", "outcome_unknown", "unknown", attempts="1"),
    row("ok", "acc_6", C.SUCCESS),
    row("pend", "acc_7"),
]


def test_retry_all_failed_retryable_only(tmp_path):
    store = make_store(tmp_path, FAILED_ROWS, cooldown_after_consecutive=99)
    assert store.retry_all_failed() == 2
    jobs = by_id(store)
    for jid in ("infra", "unk"):
        assert (jobs[jid]["status"], jobs[jid]["attempts"], jobs[jid]["retry_at"]) == \
            (C.RETRYING, "0", "")
    for jid in ("acct", "cont", "outc"):
        assert jobs[jid]["status"] == C.FAILED
    assert (jobs["ok"]["status"], jobs["pend"]["status"]) == (C.SUCCESS, C.PENDING)
    claimed_now = {store.claim(f"w{i}")["job_id"] for i in range(3)}
    assert claimed_now == {"pend", "infra", "unk"}        # due at once


def test_retry_all_failed_including_non_retryable(tmp_path):
    store = make_store(tmp_path, FAILED_ROWS, cooldown_after_consecutive=99)
    assert store.retry_all_failed(include_non_retryable=True) == 5
    assert {j["job_id"] for j in store.jobs() if j["status"] == C.RETRYING} == \
        {"infra", "unk", "acct", "cont", "outc"}
    assert {store.claim(f"w{i}") is not None for i in range(6)} == {True}   # acc_3 unblocked


def test_retry_all_failed_with_nothing_failed_writes_nothing(tmp_path):
    store = make_store(tmp_path, [row("ok", "acc_1", C.SUCCESS), row("p", "acc_2")])
    before = snapshot(store.path)
    assert store.retry_all_failed(True) == 0
    assert snapshot(store.path) == before


def test_retry_all_failed_never_retries_a_posted_video(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")], max_posts_per_account_per_day=1)
    job = store.claim("w1")
    store.complete("j1", job["claim_id"])
    # The progress row was lost (e.g. an old day file was restored); the ledger still guards.
    from helpers import write_progress
    write_progress(store.path, [failed("j1", "acc_a", "outcome_unknown", "unknown")])
    assert store.retry_all_failed(include_non_retryable=True) == 0


def test_a_retried_job_gets_its_full_attempts_again(tmp_path):
    clock = Clock()
    store = make_store(tmp_path, [row("j1", "acc_a", max_attempts="3")], clock=clock,
                       retry=RetryPolicy(retry_delay_s=10, max_passes=3),
                       cooldown_after_consecutive=99)

    def run_until_failed():
        attempts = 0
        while (job := store.claim("w1")) is not None or store.job("j1")["status"] == C.RETRYING:
            if job is None:
                clock.advance(10)
                continue
            attempts += 1
            store.fail("j1", job["claim_id"], PostError("adb timed out", "adb_timeout"))
        return attempts

    assert run_until_failed() == 3
    assert store.job("j1")["status"] == C.FAILED
    assert store.retry_all_failed() == 1
    assert run_until_failed() == 3                      # fresh attempts, not one last try
