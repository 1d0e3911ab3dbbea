"""Account states derived from the store, concurrency metrics and stats (DESIGN.md, "Account
states")."""
from __future__ import annotations

import pytest

from engine import columns as C
from engine.accounts import (AVAILABLE, BLOCKED, COOLDOWN, LIMIT, RUNNING, WAITING,
                             account_states, concurrency_metrics)
from engine.campaigns import Account
from engine.rules import now_iso

from helpers import T0, make_store, row, settings


def states_of(rows, accounts=(), busy=(), now=T0, **overrides):
    s = settings(**{"max_posts_per_account_per_day": 2, **overrides})
    return {a.account: a for a in account_states(rows, s, now, accounts, busy)}


def fail_row(job_id, account, error_type, category, at=T0 - 60, **kw):
    return row(job_id, account, C.FAILED, error=f"{error_type}!", error_type=error_type,
               error_category=category, completed_at=now_iso(at), **kw)


def test_every_state(tmp_path):
    accounts = [Account("run", "P1"), Account("blk", "P2"), Account("lim", "P3"),
                Account("cool", "P4"), Account("wait", "P1"), Account("idle", "P5"),
                Account("none", "P6")]
    rows = [
        row("r1", "run", C.CLAIMED, worker_id="w1", claim_id="c", phone_id="P1"),
        row("r2", "run", phone_id="P1"),
        fail_row("b1", "blk", "suspended", "account"), row("b2", "blk", phone_id="P2"),
        row("l1", "lim", C.SUCCESS, completed_at=now_iso(T0 - 900)),
        row("l2", "lim", C.SUCCESS, completed_at=now_iso(T0 - 800)), row("l3", "lim"),
        *[fail_row(f"c{i}", "cool", "adb_timeout", "infrastructure", at=T0 - 60 - i)
          for i in range(3)],
        row("c9", "cool", phone_id="P4"),
        row("w1", "wait", phone_id="P1"), row("w2", "wait", phone_id="P1"),
        row("i1", "idle", C.SUCCESS, completed_at=now_iso(T0 - 500)), row("i2", "idle"),
    ]
    s = states_of(rows, accounts, cooldown_after_consecutive=3, cooldown_minutes=45)
    assert [a for a in s] == [a.name for a in accounts]            # accounts.txt order
    assert {a: st.state for a, st in s.items()} == {
        "run": RUNNING, "blk": BLOCKED, "lim": LIMIT, "cool": COOLDOWN, "wait": WAITING,
        "idle": AVAILABLE, "none": AVAILABLE}
    assert s["cool"].cooldown_until == now_iso(T0 - 60 + 45 * 60)
    assert all(st.cooldown_until is None for a, st in s.items() if a != "cool")
    assert s["blk"].last_error == "suspended!"
    assert (s["lim"].posts_today, s["lim"].limit) == (2, 2)
    assert (s["idle"].posts_today, s["idle"].waiting) == (1, 1)
    assert s["wait"].waiting == 2 and s["run"].waiting == 1
    assert s["wait"].phone == "P1" and s["none"].phone == "P6"
    assert s["run"].as_dict()["state"] == RUNNING
    assert set(s["run"].as_dict()) == {"account", "phone", "state", "posts_today", "limit",
                                       "waiting", "cooldown_until", "last_error"}
    metrics = concurrency_metrics(s.values())
    assert metrics == {"accounts_running": 1, "accounts_waiting": 1, "jobs_waiting": 3,
                       "concurrency_blocks": 1}


def test_two_accounts_on_one_phone_wait_for_each_other(tmp_path):
    store = make_store(tmp_path, [row("a1", "acc_a", phone_id="P"), row("b1", "acc_b", phone_id="P")])
    job = store.claim("w1")
    s = states_of(store.read().rows)
    assert (s["acc_a"].state, s["acc_b"].state) == (RUNNING, WAITING)
    store.complete("a1", job["claim_id"])
    s = states_of(store.read().rows)
    assert (s["acc_a"].state, s["acc_b"].state) == (AVAILABLE, AVAILABLE)


def test_phone_held_by_another_campaign_makes_waiting(tmp_path):
    s = states_of([row("a1", "acc_a", phone_id="P")], busy={"P"})
    assert s["acc_a"].state == WAITING
    s = states_of([row("a1", "acc_a", C.SUCCESS)], busy={"acc_a"})
    assert s["acc_a"].state == AVAILABLE                 # nothing due: not waiting


@pytest.mark.parametrize("rows, expected", [
    # RUNNING wins over LIMIT (the running claim is the last slot)
    ([row("a", "x", C.SUCCESS), row("b", "x", C.CLAIMED, claim_id="c")], RUNNING),
    # BLOCKED wins over LIMIT and COOLDOWN
    ([row("a", "x", C.SUCCESS), row("b", "x", C.SUCCESS),
      fail_row("c", "x", "banned", "account")], BLOCKED),
    # an unknown outcome uses a slot
    ([row("a", "x", C.SUCCESS), fail_row("b", "x", "outcome_unknown", "unknown")], LIMIT),
    # a content failure neither blocks nor limits
    ([fail_row("a", "x", "corrupted_video", "content"), row("b", "x")], AVAILABLE),
    # retrying with retry_at in the future: nothing due, so not waiting
    ([row("a", "x", C.RETRYING, retry_at=now_iso(T0 + 600), phone_id="P"),
      row("b", "y", C.CLAIMED, claim_id="c", phone_id="P")], AVAILABLE),
])
def test_state_precedence(rows, expected):
    assert states_of(rows)["x"].state == expected


def test_cooldown_ends_with_time():
    rows = [fail_row("f1", "x", "rate_limited", "infrastructure", at=T0 - 30)]  # 60 s step
    assert states_of(rows, now=T0)["x"].state == COOLDOWN
    assert states_of(rows, now=T0)["x"].cooldown_until == now_iso(T0 + 30)
    assert states_of(rows, now=T0 + 29)["x"].state == COOLDOWN
    assert states_of(rows, now=T0 + 30)["x"].state == AVAILABLE


def test_accounts_only_in_the_file_are_listed_after_the_accounts_file():
    s = states_of([row("z1", "zed", phone_id="PZ")], [Account("acc_a", "acc_a")])
    assert list(s) == ["acc_a", "zed"] and s["zed"].phone == "PZ"


def test_stats(tmp_path):
    store = make_store(tmp_path, [row("p1", "a"), row("p2", "b"), row("c1", "c", C.CLAIMED),
                                  row("s1", "d", C.SUCCESS), row("f1", "e", C.FAILED),
                                  row("r1", "f", C.RETRYING), row("k1", "g", C.SKIPPED)])
    assert store.stats() == {"pending": 2, "claimed": 1, "success": 1, "failed": 1,
                             "retrying": 1, "skipped": 1, "total": 7}
    assert make_store(tmp_path / "empty").stats() == {**dict.fromkeys(C.STATUSES, 0), "total": 0}
