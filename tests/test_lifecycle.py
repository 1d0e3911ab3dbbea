"""The job lifecycle's table is the whole truth: every transition refuses a job in a status the
table does not list as its start (the row unchanged), and ends only in a status it lists."""
from __future__ import annotations

import pytest

from engine import columns as C
from engine import lifecycle as L
from engine.columns import Status
from engine.errors import Classification

from helpers import T0, row

POLICY = L.RetryPolicy(retry_delay_s=60, max_passes=3)

# One call per transition, on a row in whatever status the test gives it.
CALLS = {
    "claim": lambda r: L.claim(r, "w1", "c" * 32, T0, "p1", "run", 3),
    "set_phase": lambda r: L.set_phase(r, "preparing"),
    "set_task": lambda r: L.set_task(r, "task-1"),
    "watch": lambda r: L.watch(r, "watch", "run2"),
    "complete": lambda r: L.complete(r, T0, "vid"),
    "fail": lambda r: L.fail(r, T0, "network error", Classification("infrastructure", "network"),
                             POLICY, 3),
    "release": lambda r: L.release(r, T0, POLICY, 3),
    "recover": lambda r: L.recover(r, T0, "worker 1 was lost", POLICY, 3),
    "retry": lambda r: L.retry(r),
    "skip": lambda r: L.skip(r, T0, "already posted"),
    "withdraw": lambda r: L.withdraw(r, T0, "skipped by the operator"),
    "to_front": lambda r: L.to_front(r),
}


def test_every_transition_has_a_call_here():
    assert set(CALLS) == set(L.TRANSITIONS)


@pytest.mark.parametrize("name", sorted(CALLS))
@pytest.mark.parametrize("status", list(Status))
def test_a_transition_starts_only_where_the_table_says(name, status):
    phase = (("publishing" if name in ("set_task", "watch") else "claimed")
             if status == C.CLAIMED else "")
    r = row("j1", "acc_a", status, attempts="1", phase=phase)
    before = r[:]
    starts, ends = L.TRANSITIONS[name]
    if status in starts:
        CALLS[name](r)
        assert r[C.STATUS] in ends
    else:
        with pytest.raises(L.IllegalTransition):
            CALLS[name](r)
        assert r == before, "a refused transition changed the row"


def test_a_task_is_recorded_only_while_publishing_and_never_replaced():
    r = row("j1", "acc_a", C.CLAIMED, phase="preparing")
    with pytest.raises(L.IllegalTransition):
        L.set_task(r, "t1")
    assert r[C.TASK_ID] == ""
    r[C.PHASE] = "publishing"
    L.set_task(r, "t1")
    L.set_task(r, "t1")          # the same id again is harmless
    with pytest.raises(L.IllegalTransition):
        L.set_task(r, "t2")
    assert r[C.TASK_ID] == "t1"


def test_a_new_claim_starts_without_the_last_attempts_task():
    r = row("j1", "acc_a", C.RETRYING, attempts="1", task_id="t-old")
    L.claim(r, "w1", "c" * 32, T0, "p1", "run", 3)
    assert r[C.TASK_ID] == ""


def test_a_phase_never_goes_back():
    r = row("j1", "acc_a", C.CLAIMED, phase="publishing")
    with pytest.raises(L.IllegalTransition):
        L.set_phase(r, "preparing")
    assert r[C.PHASE] == "publishing"


@pytest.mark.parametrize("how", ["release", "recover"])
def test_a_claim_lost_while_publishing_is_an_unknown_outcome_never_a_retry(how):
    r = row("j1", "acc_a", C.CLAIMED, phase="publishing", attempts="1")
    CALLS[how](r)
    assert (r[C.STATUS], r[C.ERROR_TYPE]) == (C.FAILED, "outcome_unknown")


def test_a_claim_returns_a_typed_job_that_reads_like_its_row():
    r = row("j1", "acc_a", C.PENDING, attempts="1")
    job = CALLS["claim"](r)
    assert (job.status, job.attempts, job.claim_id) == (Status.CLAIMED, 2, "c" * 32)
    assert job["phase"] == "claimed" and job.as_dict()["job_id"] == "j1"
    assert C.STATUSES == ("pending", "claimed", "success", "failed", "retrying", "skipped")
