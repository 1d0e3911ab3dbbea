"""Error classification and how many attempts each category gets (DESIGN.md, "Errors")."""
from __future__ import annotations

import pytest

from engine import columns as C
from engine.errors import (ACCOUNT, CONTENT, INFRASTRUCTURE, UNKNOWN, Classification, PostError,
                           attempts_allowed, category_of, classify)
from engine.rules import now_iso
from engine.tracker import RetryPolicy

from helpers import T0, Clock, make_store, row


@pytest.mark.parametrize("message, category, error_type", [
    ("Your account has been suspended", ACCOUNT, "suspended"),
    ("Account disabled for violating terms", ACCOUNT, "disabled"),
    ("This account is banned", ACCOUNT, "banned"),
    ("Please verify your identity (checkpoint)", ACCOUNT, "verification"),
    ("You've been logged out. Log in again", ACCOUNT, "logged_out"),
    ("Action blocked: try again later", INFRASTRUCTURE, "rate_limited"),
    ("429 Too Many Requests", INFRASTRUCTURE, "rate_limited"),
    ("The video is corrupt", CONTENT, "corrupted_video"),
    ("Unsupported codec", CONTENT, "unsupported_format"),
    ("video file not found on device", CONTENT, "video_missing"),
    ("Caption too long", CONTENT, "caption_rejected"),
    ("instrumentation process is not running (probably crashed)", INFRASTRUCTURE, "appium_crash"),
    ("Connection refused to appium at :4723", INFRASTRUCTURE, "appium_unreachable"),
    ("adb command timed out after 30s", INFRASTRUCTURE, "adb_timeout"),
    ("device offline", INFRASTRUCTURE, "device_offline"),
    ("no such element: share button", INFRASTRUCTURE, "element_not_found"),
    ("operation timed out", INFRASTRUCTURE, "timeout"),
    ("network unreachable", INFRASTRUCTURE, "network"),
    ("something odd happened", UNKNOWN, "unknown"),
    ("", UNKNOWN, "unknown"),
])
def test_classify_by_message(message, category, error_type):
    assert classify(message) == Classification(category, error_type)
    assert classify(RuntimeError(message)) == Classification(category, error_type)


def test_post_error_with_a_type_keeps_it():
    assert classify(PostError("whatever", "suspended")) == Classification(ACCOUNT, "suspended")
    assert classify(PostError("x", "adb_timeout")).category == INFRASTRUCTURE
    assert classify(PostError("x", "my_type", CONTENT)) == Classification(CONTENT, "my_type")
    assert classify(PostError("x", "never_heard_of")) == Classification(UNKNOWN, "never_heard_of")
    assert classify(PostError("account suspended")) == Classification(ACCOUNT, "suspended")
    assert category_of("outcome_unknown") == UNKNOWN


def test_retryable_by_category():
    assert Classification(INFRASTRUCTURE, "adb_timeout").retryable
    assert Classification(UNKNOWN, "unknown").retryable
    assert not Classification(ACCOUNT, "suspended").retryable
    assert not Classification(CONTENT, "corrupted_video").retryable
    assert not Classification(UNKNOWN, "outcome_unknown").retryable
    assert [attempts_allowed(c, 5) for c in (INFRASTRUCTURE, UNKNOWN, ACCOUNT, CONTENT)] == \
        [5, 2, 1, 1]
    assert attempts_allowed(UNKNOWN, 1) == 1


def attempts_until_final(folder, error, max_attempts=3, max_passes=10, delay=30.0):
    """Claim and fail one job until it ends; the number of attempts it got, and the job."""
    clock = Clock()
    store = make_store(folder, [row("j1", "acc_a", max_attempts=str(max_attempts))], clock=clock,
                       retry=RetryPolicy(retry_delay_s=delay, max_passes=max_passes),
                       cooldown_after_consecutive=99, rate_limit_steps=(1,))
    n = 0
    while True:
        job = store.claim("w1")
        if job is None:
            j = store.job("j1")
            if j["status"] != C.RETRYING:
                return n, j
            clock.advance(delay)                     # not due yet: only time makes it due
            continue
        n += 1
        result = store.fail("j1", job["claim_id"], error)
        if result["status"] == C.RETRYING:
            assert result["retry_at"] == now_iso(clock.now + delay)
            assert result["pass_number"] == str(n + 1)


@pytest.mark.parametrize("error, max_attempts, max_passes, expected", [
    ("adb timed out", 3, 10, 3),                  # infrastructure: max_attempts
    ("adb timed out", 5, 10, 5),
    ("adb timed out", 5, 2, 2),                   # ... within the run's passes
    ("connection refused", 1, 10, 1),
    ("something odd happened", 5, 10, 2),         # unknown: 2
    ("something odd happened", 1, 10, 1),
    ("account suspended", 5, 10, 1),              # account: never retried
    ("video is corrupt", 5, 10, 1),               # content: never retried
    (PostError("post may be public", "outcome_unknown", UNKNOWN), 5, 10, 1),
])
def test_attempts_per_category(tmp_path, error, max_attempts, max_passes, expected):
    n, job = attempts_until_final(tmp_path, error, max_attempts, max_passes)
    assert n == expected
    assert job["status"] == C.FAILED and job["retry_at"] == ""
    assert job["attempts"] == str(expected)
    cls = classify(error)
    assert (job["error_type"], job["error_category"]) == (cls.error_type, cls.category)


def test_fail_records_the_message_and_classification(tmp_path):
    clock = Clock()
    store = make_store(tmp_path, [row("j1", "acc_a")], clock=clock)
    job = store.claim("w1")
    store.set_phase("j1", job["claim_id"], "preparing")
    clock.advance(5)
    result = store.fail("j1", job["claim_id"], RuntimeError("  adb timed out\r\nretry  " + "x" * 600))
    assert result == store.job("j1")
    assert result["status"] == C.RETRYING and result["phase"] == ""
    assert result["completed_at"] == now_iso(T0 + 5)
    assert "\r" not in result["error"] and len(result["error"]) == 500
    assert result["error"].startswith("adb timed out")
    assert (result["error_type"], result["error_category"]) == ("adb_timeout", INFRASTRUCTURE)


def test_explicit_classification_wins(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    job = store.claim("w1")
    result = store.fail("j1", job["claim_id"], "account suspended",
                        Classification(INFRASTRUCTURE, "device_offline"))
    assert (result["status"], result["error_type"]) == (C.RETRYING, "device_offline")


def test_empty_message_falls_back_to_the_type(tmp_path):
    store = make_store(tmp_path, [row("j1", "acc_a")])
    job = store.claim("w1")
    result = store.fail("j1", job["claim_id"], PostError("", "suspended"))
    assert result["error"] == "suspended" and result["status"] == C.FAILED


def test_a_rate_limit_is_retried_and_cools_the_account_down(tmp_path):
    clock = Clock()
    store = make_store(tmp_path, [row("j1", "acc_a"), row("j2", "acc_a")], clock=clock,
                       retry=RetryPolicy(retry_delay_s=0, max_passes=5),
                       max_posts_per_account_per_day=2, rate_limit_steps=(60, 120))
    job = store.claim("w1")
    assert store.fail("j1", job["claim_id"], "Too many requests")["status"] == C.RETRYING
    assert store.claim("w1") is None                    # due, but the account rests 60 s
    clock.advance(60)
    job = store.claim("w1")
    assert job["job_id"] == "j2"                         # pending before retrying
    store.fail("j2", job["claim_id"], "Too many requests")
    clock.advance(60)
    assert store.claim("w1") is None                     # two in a row: 120 s
    clock.advance(60)
    assert store.claim("w1")["job_id"] == "j1"
