"""Claim rules, FIFO, the claim_id lease and phase order, through ProgressStore's public API on
real files with an injected clock (DESIGN.md, "Claim rules")."""
from __future__ import annotations

import re

import pytest

from engine import columns as C
from engine.rules import now_iso
from engine.tracker import ClaimLost, ProgressStore

from helpers import T0, Clock, by_id, make_store, row, snapshot, write_progress


def claim_ids(store: ProgressStore, worker: str = "w1", **kw) -> list[str]:
    """Claim until nothing is claimable; the job ids in claim order (each job completed at once
    so rule 2 does not stop the loop)."""
    out = []
    while (job := store.claim(worker, **kw)) is not None:
        out.append(job["job_id"])
        store.complete(job["job_id"], job["claim_id"])
    return out


# --- what a claim writes --------------------------------------------------------------------------
def test_claim_writes_the_lease_and_persists(tmp_path):
    clock = Clock()
    store = make_store(tmp_path, [row("j1", "acc_a", attempts="0")], clock=clock)
    store.run_id = "run-7"
    job = store.claim("w3")
    assert job is not None and job["job_id"] == "j1"
    assert re.fullmatch(r"[0-9a-f]{32}", job["claim_id"])
    fresh = ProgressStore(store.path, store.ledger_path, store.settings)  # another process' view
    on_disk = fresh.job("j1")
    assert on_disk == job.as_dict()
    assert on_disk["status"] == "claimed"
    assert on_disk["worker_id"] == "w3"
    assert on_disk["claimed_at"] == now_iso(T0)
    assert on_disk["phase"] == "claimed"
    assert on_disk["attempts"] == "1"
    assert on_disk["phone_id"] == "acc_a"          # no phone column: named like the account
    assert on_disk["run_id"] == "run-7"


def test_each_claim_gets_a_fresh_claim_id(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a"), row("j2", "acc_b")])
    a, b = store.claim("w1"), store.claim("w2")
    assert a["claim_id"] != b["claim_id"]


def test_nothing_to_claim_returns_none_and_writes_nothing(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a", C.SUCCESS)])
    before = snapshot(store.path)
    assert store.claim("w1") is None
    assert snapshot(store.path) == before


def test_claim_on_a_missing_file_is_an_empty_day(tmp_path):
    store = make_store(tmp_path)
    assert store.claim("w1") is None
    assert not store.path.exists()


# --- rule 1: pending, or retrying with retry_at passed ----------------------------------------------
@pytest.mark.parametrize("status", [C.SUCCESS, C.FAILED, C.SKIPPED])
def test_finished_jobs_are_never_claimed(tmp_path, status):
    store = make_store(tmp_path, [row("j1", "acc_a", status)])
    assert store.claim("w1") is None


def test_claimed_job_is_not_claimed_again(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    assert store.claim("w1")["job_id"] == "j1"
    assert store.claim("w2") is None


def test_retrying_waits_for_retry_at(tmp_path):
    clock = Clock()
    store = make_store(tmp_path, [row("j1", "acc_a", C.RETRYING, retry_at=now_iso(T0 + 60))],
                       clock=clock)
    assert store.claim("w1") is None
    clock.advance(59)
    assert store.claim("w1") is None
    clock.advance(1)                                # retry_at == now: due
    assert store.claim("w1")["job_id"] == "j1"


def test_retrying_without_retry_at_is_due_at_once(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a", C.RETRYING, retry_at="")])
    assert store.claim("w1")["job_id"] == "j1"


# --- rule 2: one claimed job per account ----------------------------------------------------------
def test_one_claimed_job_per_account(tmp_path):
    store = make_store(tmp_path, [row("a1", "acc_a"), row("a2", "acc_a"), row("b1", "acc_b")],
                       max_posts_per_account_per_day=4)
    first = store.claim("w1")
    assert first["job_id"] == "a1"
    assert store.claim("w2")["job_id"] == "b1"     # a2 skipped: acc_a is running
    assert store.claim("w3") is None
    store.complete("a1", first["claim_id"])
    assert store.claim("w3")["job_id"] == "a2"


def test_one_claimed_job_per_account_even_when_its_jobs_are_on_different_phones(tmp_path):
    # The account was moved to another phone between two seedings: the phone rule alone would
    # let a second worker post for it at the same time.
    store = make_store(tmp_path, [row("a1", "acc_a", phone_id="P1"),
                                  row("a2", "acc_a", phone_id="P2"),
                                  row("b1", "acc_b", phone_id="P3")],
                       max_posts_per_account_per_day=4)
    first = store.claim("w1")
    assert first["job_id"] == "a1"
    assert store.claim("w2", phone="P2") is None       # bound to a2's phone: still no
    assert store.claim("w1")["job_id"] == "b1"        # not even the same worker gets a2
    assert store.claim("w3") is None
    store.complete("a1", first["claim_id"])
    assert store.claim("w2", phone="P2")["job_id"] == "a2"


def test_a_claim_left_in_the_file_by_another_run_blocks_the_account(tmp_path):
    store = make_store(tmp_path, [row("a1", "acc_a", C.CLAIMED, worker_id="old", claim_id="x",
                                      phone_id="P1"),
                                  row("a2", "acc_a", phone_id="P2")], max_posts_per_account_per_day=4)
    assert store.claim("w1") is None


# --- rule 3: successes + claims + unknown outcomes < limit ------------------------------------------
@pytest.mark.parametrize("limit, earlier, claimable", [
    (1, [C.SUCCESS], False),
    (2, [C.SUCCESS], True),
    (2, [C.SUCCESS, C.SUCCESS], False),
    (2, [C.SUCCESS, "outcome_unknown"], False),
    (1, ["outcome_unknown"], False),
    (2, [C.SUCCESS, "infra_failed"], True),        # an ordinary failure uses no slot
    (1, ["infra_failed", "infra_failed"], True),
    (2, [C.SKIPPED, C.SKIPPED], True),
    (4, [C.SUCCESS, C.SUCCESS, C.SUCCESS], True),
    (4, [C.SUCCESS, C.SUCCESS, C.SUCCESS, C.SUCCESS], False),
])
def test_daily_limit_counts_successes_and_unknown_outcomes(tmp_path, limit, earlier, claimable):
    rows = []
    for i, kind in enumerate(earlier):
        if kind == "outcome_unknown":
            rows.append(row(f"e{i}", "acc_a", C.FAILED, error="lost while publishing",
                            error_type="outcome_unknown", error_category="unknown",
                            completed_at=now_iso(T0 - 7200)))
        elif kind == "infra_failed":
            rows.append(row(f"e{i}", "acc_a", C.FAILED, error="adb timeout",
                            error_type="adb_timeout", error_category="infrastructure",
                            attempts="3", completed_at=now_iso(T0 - 7200)))
        else:
            rows.append(row(f"e{i}", "acc_a", kind, completed_at=now_iso(T0 - 7200)))
    rows.append(row("new", "acc_a"))
    store = make_store(tmp_path, rows, max_posts_per_account_per_day=limit,
                       cooldown_after_consecutive=10)
    job = store.claim("w1")
    assert (job is not None and job["job_id"] == "new") is claimable


def test_a_running_claim_counts_toward_the_limit(tmp_path):
    # limit 2: one success + one claim on another job = full, even after the claim is released
    # to success.
    store = make_store(tmp_path, [row("a0", "acc_a", C.SUCCESS), row("a1", "acc_a"),
                                  row("a2", "acc_a")], max_posts_per_account_per_day=2)
    job = store.claim("w1")
    store.complete(job["job_id"], job["claim_id"])
    assert store.claim("w1") is None
    assert by_id(store)["a2"]["status"] == C.PENDING


# --- rule 4: BLOCKED and COOLDOWN ---------------------------------------------------------------------
@pytest.mark.parametrize("error_type", ["suspended", "disabled", "verification", "logged_out",
                                        "banned"])
def test_account_error_blocks_the_account(tmp_path, error_type):
    clock = Clock()
    store = make_store(tmp_path, [
        row("a0", "acc_a", C.FAILED, error=error_type, error_type=error_type,
            error_category="account", completed_at=now_iso(T0 - 86000)),
        row("a1", "acc_a"), row("b1", "acc_b")], clock=clock, max_posts_per_account_per_day=2)
    assert store.claim("w1")["job_id"] == "b1"
    clock.advance(7 * 86400)                        # time alone never unblocks
    assert store.claim("w2") is None


def test_content_error_does_not_block_the_account(tmp_path):
    store = make_store(tmp_path, [
        row("a0", "acc_a", C.FAILED, error="corrupt", error_type="corrupted_video",
            error_category="content", completed_at=now_iso(T0 - 10)),
        row("a1", "acc_a")], max_posts_per_account_per_day=2)
    assert store.claim("w1")["job_id"] == "a1"


def failures(account: str, n: int, at: float, error_type="adb_timeout",
             category="infrastructure", attempts: int = 1) -> list[list[str]]:
    return [row(f"{account}_f{i}", account, C.FAILED, error=f"{error_type} #{i}",
                error_type=error_type, error_category=category, attempts=str(attempts),
                completed_at=now_iso(at - i)) for i in range(n)]


def test_cooldown_after_consecutive_failures(tmp_path):
    clock = Clock()
    rows = failures("acc_a", 3, T0) + [row("a_new", "acc_a")]
    store = make_store(tmp_path, rows, clock=clock, cooldown_after_consecutive=3,
                       cooldown_minutes=45)
    assert store.claim("w1") is None
    clock.advance(45 * 60 - 1)
    assert store.claim("w1") is None
    clock.advance(1)
    assert store.claim("w1")["job_id"] == "a_new"


def test_fewer_failures_than_the_threshold_do_not_cool_down(tmp_path):
    rows = failures("acc_a", 2, T0) + [row("a_new", "acc_a")]
    store = make_store(tmp_path, rows, cooldown_after_consecutive=3)
    assert store.claim("w1")["job_id"] == "a_new"


def test_failed_attempts_of_one_job_count_as_consecutive_failures(tmp_path):
    rows = failures("acc_a", 1, T0, attempts=3) + [row("a_new", "acc_a")]
    store = make_store(tmp_path, rows, cooldown_after_consecutive=3)
    assert store.claim("w1") is None


def test_a_success_breaks_the_run_of_failures(tmp_path):
    rows = failures("acc_a", 3, T0 - 100) + [
        row("a_ok", "acc_a", C.SUCCESS, completed_at=now_iso(T0)), row("a_new", "acc_a")]
    store = make_store(tmp_path, rows, cooldown_after_consecutive=3,
                       max_posts_per_account_per_day=2)
    assert store.claim("w1")["job_id"] == "a_new"


@pytest.mark.parametrize("n, rest", [(1, 60), (2, 120), (3, 300), (4, 600), (6, 600)])
def test_rate_limit_steps(tmp_path, n, rest):
    clock = Clock()
    rows = failures("acc_a", 1, T0, error_type="rate_limited", attempts=n) + [row("a1", "acc_a")]
    store = make_store(tmp_path, rows, clock=clock, cooldown_after_consecutive=99,
                       rate_limit_steps=(60, 120, 300, 600))
    assert store.claim("w1") is None
    clock.advance(rest - 1)
    assert store.claim("w1") is None
    clock.advance(1)
    assert store.claim("w1")["job_id"] == "a1"


def test_cooldown_of_one_account_leaves_the_others_free(tmp_path):
    rows = failures("acc_a", 3, T0) + [row("a1", "acc_a"), row("b1", "acc_b")]
    store = make_store(tmp_path, rows, cooldown_after_consecutive=3)
    assert store.claim("w1")["job_id"] == "b1"


# --- rule 5: phones ----------------------------------------------------------------------------------
def test_phone_held_by_another_workers_claim(tmp_path):
    store = make_store(tmp_path, [row("a1", "acc_a", phone_id="P"), row("b1", "acc_b", phone_id="P"),
                                  row("c1", "acc_c", phone_id="Q")])
    assert store.claim("w1")["job_id"] == "a1"
    assert store.claim("w2")["job_id"] == "c1"     # b1 skipped: P is held by w1
    assert store.claim("w3") is None


def test_phone_is_free_again_after_the_claim_ends(tmp_path):
    store = make_store(tmp_path, [row("a1", "acc_a", phone_id="P"), row("b1", "acc_b", phone_id="P")])
    a = store.claim("w1")
    assert store.claim("w2") is None
    store.fail("a1", a["claim_id"], "video file not found")
    assert store.claim("w2")["job_id"] == "b1"


def test_a_claimed_row_without_phone_holds_the_phone_named_like_its_account(tmp_path):
    # Files of the earlier system have no phone_id: the phone is named like the account.
    store = make_store(tmp_path, [
        row("x1", "acc_x", C.CLAIMED, worker_id="w1", claim_id="c", phone_id=""),
        row("y1", "acc_y", phone_id="acc_x")])
    assert store.claim("w2") is None


def test_bound_worker_claims_only_its_phone(tmp_path):
    store = make_store(tmp_path, [row("a1", "acc_a", phone_id="P1"), row("b1", "acc_b", phone_id="P2"),
                                  row("c1", "acc_c")])
    assert store.claim("w1", phone="P2")["job_id"] == "b1"
    assert store.claim("w1", phone="P2") is None
    assert store.claim("w2", phone="acc_c")["job_id"] == "c1"   # phone named like the account
    assert store.claim("w3", phone="nope") is None
    assert by_id(store)["a1"]["status"] == C.PENDING


def test_phone_free_is_asked_last_and_only_for_eligible_jobs(tmp_path):
    store = make_store(tmp_path, [
        row("a0", "acc_a", C.CLAIMED, worker_id="w9", claim_id="c", phone_id="PA"),
        row("a1", "acc_a", phone_id="PA2"),           # rule 2 fails first: PA2 never asked
        row("b1", "acc_b", phone_id="PB"),            # PB busy elsewhere on the host
        row("c1", "acc_c", phone_id="PC"),
        row("d1", "acc_d", phone_id="PD")])
    asked = []

    def phone_free(p):
        asked.append(p)
        return p != "PB"

    job = store.claim("w1", phone_free=phone_free)
    assert job["job_id"] == "c1"
    assert asked == ["PB", "PC"]                     # stops at the first eligible free phone
    assert by_id(store)["b1"]["status"] == C.PENDING


def test_phone_free_false_everywhere_claims_nothing_and_writes_nothing(tmp_path):
    store = make_store(tmp_path, [row("a1", "acc_a"), row("b1", "acc_b")])
    before = snapshot(store.path)
    assert store.claim("w1", phone_free=lambda p: False) is None
    assert snapshot(store.path) == before


# --- FIFO ------------------------------------------------------------------------------------------
def test_oldest_in_file_order_wins(tmp_path):
    store = make_store(tmp_path, [row(f"j{i}", f"acc_{i}") for i in (3, 1, 2, 0)])
    assert claim_ids(store) == ["j3", "j1", "j2", "j0"]


def test_pending_before_retrying(tmp_path):
    store = make_store(tmp_path, [row("r1", "acc_r1", C.RETRYING, retry_at=now_iso(T0 - 5)),
                                  row("p1", "acc_p1"),
                                  row("r2", "acc_r2", C.RETRYING, retry_at=""),
                                  row("p2", "acc_p2")])
    assert claim_ids(store) == ["p1", "p2", "r1", "r2"]


def test_fifo_skips_ineligible_but_keeps_order(tmp_path):
    store = make_store(tmp_path, [row("a1", "acc_a", phone_id="PA1"),
                                  row("a2", "acc_a", phone_id="PA2"),
                                  row("b1", "acc_b", phone_id="PB1"),
                                  row("b2", "acc_b", phone_id="PB2")],
                       max_posts_per_account_per_day=2)
    first, second = store.claim("w1"), store.claim("w2")
    assert (first["job_id"], second["job_id"]) == ("a1", "b1")
    store.complete("b1", second["claim_id"])
    assert store.claim("w2")["job_id"] == "b2"


# --- the lease --------------------------------------------------------------------------------------
@pytest.mark.parametrize("write", ["set_phase", "complete", "fail"])
def test_write_with_a_wrong_claim_id_is_rejected_and_changes_nothing(tmp_path, write):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    job = store.claim("w1")
    before = snapshot(store.path)
    ledger_before = store.ledger_path.exists()
    call = {"set_phase": lambda cid: store.set_phase("j1", cid, "preparing"),
            "complete": lambda cid: store.complete("j1", cid),
            "fail": lambda cid: store.fail("j1", cid, "adb timeout")}[write]
    for bad in ("0" * 32, "", job["claim_id"][:8]):
        with pytest.raises(ClaimLost):
            call(bad)
    assert snapshot(store.path) == before
    assert store.ledger_path.exists() == ledger_before
    call(job["claim_id"])                             # the right one still works


@pytest.mark.parametrize("write", ["set_phase", "complete", "fail", "release"])
def test_old_claim_id_after_a_new_claim_is_rejected(tmp_path, write):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    old = store.claim("w1")
    store.fail("j1", old["claim_id"], "connection refused")   # retrying, due in 60 s
    store.clock.advance(60)
    new = store.claim("w2")
    assert new["job_id"] == "j1" and new["claim_id"] != old["claim_id"]
    before = snapshot(store.path)
    with pytest.raises(ClaimLost):
        {"set_phase": lambda: store.set_phase("j1", old["claim_id"], "publishing"),
         "complete": lambda: store.complete("j1", old["claim_id"]),
         "fail": lambda: store.fail("j1", old["claim_id"], "boom"),
         "release": lambda: store.release("j1", old["claim_id"])}[write]()
    assert snapshot(store.path) == before
    assert store.ledger() == []


def test_finished_job_rejects_a_second_write(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    job = store.claim("w1")
    store.complete("j1", job["claim_id"], video_id="vid-1")
    before = snapshot(store.path)
    with pytest.raises(ClaimLost):
        store.complete("j1", job["claim_id"])
    with pytest.raises(ClaimLost):
        store.fail("j1", job["claim_id"], "late failure")
    assert snapshot(store.path) == before
    assert len(store.ledger()) == 1


def test_unknown_job_is_claim_lost(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    with pytest.raises(ClaimLost):
        store.complete("nope", "whatever")


def test_legacy_claim_without_claim_id_cannot_be_written(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a", C.CLAIMED, worker_id="w1", claim_id="")])
    with pytest.raises(ClaimLost):
        store.complete("j1", "")


# --- phases ------------------------------------------------------------------------------------------
def test_phase_order(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    job = store.claim("w1")
    cid = job["claim_id"]
    assert store.job("j1")["phase"] == "claimed"
    store.set_phase("j1", cid, "preparing")
    assert store.job("j1")["phase"] == "preparing"
    store.set_phase("j1", cid, "preparing")           # repeating a phase is harmless
    store.set_phase("j1", cid, "publishing")
    assert store.job("j1")["phase"] == "publishing"
    before = snapshot(store.path)
    for back in ("preparing", "claimed"):
        with pytest.raises(ValueError, match="cannot go back"):
            store.set_phase("j1", cid, back)
    with pytest.raises(ValueError, match="unknown phase"):
        store.set_phase("j1", cid, "posted")
    assert snapshot(store.path) == before
    store.complete("j1", cid, video_id="v-9")
    done = store.job("j1")
    assert (done["status"], done["phase"], done["video_id"]) == (C.SUCCESS, "", "v-9")


def test_complete_appends_the_ledger(tmp_path):
    clock = Clock()
    store = make_store(tmp_path, [row("j1", "acc_a"), row("j2", "acc_b")], clock=clock)
    for _ in range(2):
        job = store.claim("w1")
        clock.advance(10)
        store.complete(job["job_id"], job["claim_id"])
    ledger = store.ledger()
    assert [e["job_id"] for e in ledger] == ["j1", "j2"]
    assert ledger[0] == {"posted_at": now_iso(T0 + 10), "account": "acc_a",
                         "video_path": "/videos/j1.mp4", "job_id": "j1"}
    assert store.ledger_path.read_text().splitlines()[0] == ",".join(C.LEDGER_COLUMNS)
    assert by_id(store)["j1"]["completed_at"] == now_iso(T0 + 10)


# --- next_chance: what an idle worker waits for ---------------------------------------------------
def test_next_chance(tmp_path):
    clock = Clock()
    store = make_store(tmp_path, [row("r1", "acc_a", C.RETRYING, retry_at=now_iso(T0 + 300))],
                       clock=clock)
    assert store.next_chance() == (False, T0 + 300)
    write_progress(store.path, [row("s1", "acc_a", C.SUCCESS)])
    assert store.next_chance() == (False, None)      # nothing more today
    write_progress(store.path, [row("c1", "acc_a", C.CLAIMED, worker_id="w1", claim_id="c"),
                                row("p1", "acc_b", phone_id="acc_a")])
    assert store.next_chance() == (True, T0)          # due now, its phone is busy
    assert store.next_chance(phone="elsewhere") == (True, None)


def test_a_claim_never_takes_a_job_whose_video_reached_the_ledger_since_its_last_read(tmp_path):
    store = make_store(tmp_path, [row("v1.mp4_c", "a"), row("v2.mp4_c", "b"),
                                  row("v3.mp4_c", "d")], max_posts_per_account_per_day=1)
    first = store.claim("w1")
    store.complete(first.job_id, first.claim_id)         # the ledger exists and has been read
    with open(store.ledger_path, "a", encoding="utf-8") as fh:   # another tool appends a post
        fh.write("2026-01-01T00:00:00+00:00,b,/elsewhere/v2.mp4_c.mp4,\n")   # by file name
    second = store.claim("w2")
    assert second is not None and second.job_id == "v3.mp4_c"
    assert by_id(store)["v2.mp4_c"]["status"] == C.SKIPPED
