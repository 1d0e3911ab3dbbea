"""Eight spawned processes claim and complete against one store until nothing is claimable.

40 accounts, limit 2, 200 jobs: 28 accounts on their own phone (8 of them with some jobs on a
second phone), 12 sharing 4 phones (3 each).
Some first attempts fail with a retryable error, so retrying jobs are claimed too. Every process
checks, under the store's lock (the phone_free predicate runs inside the locked claim), that the
committed file never shows an account with two claims, a phone held by two workers, or an
account over its limit; and logs (job, claim time, complete time) so the intervals can be checked
afterwards across processes.
"""
from __future__ import annotations

import json
import multiprocessing
import time
import traceback
import zlib
from collections import Counter, defaultdict
from pathlib import Path

from engine import columns as C
from engine.errors import PostError
from engine.tracker import ProgressStore, RetryPolicy, parse_progress

from helpers import row, settings, write_progress

WORKERS = 8
ACCOUNTS = 40
JOBS_PER_ACCOUNT = 5
LIMIT = 2
DEADLINE_S = 25.0


def phone_of(i: int, j: int) -> str:
    """Account i's phone for its j-th job. Accounts 0-7 were moved to a new phone between two
    seedings, so their jobs sit on two phones: only rule 2 (one claim per account) keeps two
    workers from posting for them at once."""
    if i < 8 and j % 2:
        return f"moved-{i:02d}"
    return f"own-{i:02d}" if i < 28 else f"shared-{(i - 28) % 4}"


def fails_first(job_id: str) -> bool:
    return zlib.crc32(job_id.encode()) % 6 == 0


def make_store(folder: Path) -> ProgressStore:
    return ProgressStore(folder / "progress.csv", folder / "posted.csv",
                         settings(max_posts_per_account_per_day=LIMIT, cooldown_after_consecutive=99),
                         retry=RetryPolicy(retry_delay_s=0, max_passes=5))


def check_committed(path: Path, worker_id: str, phone: str) -> None:
    """Runs under the store's lock: the committed file must hold every invariant, and the phone
    the claim chose must not be held by another worker."""
    rows = parse_progress(path, path.read_bytes()).rows
    claims = Counter(r[C.ACCOUNT] for r in rows if r[C.STATUS] == C.CLAIMED)
    assert max(claims.values(), default=0) <= 1, f"account claimed twice: {claims}"
    holders = defaultdict(set)
    used = Counter()
    for r in rows:
        if r[C.STATUS] == C.CLAIMED:
            holders[r[C.PHONE_ID]].add(r[C.WORKER_ID])
        if r[C.STATUS] in (C.SUCCESS, C.CLAIMED):
            used[r[C.ACCOUNT]] += 1
    assert all(len(w) <= 1 for w in holders.values()), f"phone held twice: {dict(holders)}"
    assert max(used.values(), default=0) <= LIMIT, f"over the limit: {used}"
    assert holders.get(phone, {worker_id}) == {worker_id}, f"{phone} is held by {holders[phone]}"


def worker(folder: str, worker_id: str) -> None:
    folder = Path(folder)
    store = make_store(folder)
    events, error = [], None
    try:
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            job = store.claim(worker_id, phone_free=lambda p: (
                check_committed(store.path, worker_id, p) or True))
            if job is None:
                others, earliest = store.next_chance()
                if not others and earliest is None:
                    break
                time.sleep(0.002)
                continue
            t_claimed = time.monotonic()
            job_id, cid = job["job_id"], job["claim_id"]
            store.set_phase(job_id, cid, "preparing")
            fail = fails_first(job_id) and job["attempts"] == "1"
            if not fail:
                store.set_phase(job_id, cid, "publishing")
            t_done = time.monotonic()
            if fail:
                store.fail(job_id, cid, PostError("adb timed out", "adb_timeout"))
            else:
                store.complete(job_id, cid, video_id=f"vid-{job_id}")
            events.append({"job": job_id, "account": job["account"], "phone": job["phone_id"],
                           "worker": worker_id, "claim_id": cid, "claimed": t_claimed,
                           "done": t_done, "outcome": "failed" if fail else "success"})
        else:
            error = "deadline reached"
    except BaseException:
        error = traceback.format_exc()
    (folder / f"events-{worker_id}.json").write_text(json.dumps({"events": events,
                                                                "error": error}))


def assert_no_overlap(events: list[dict], key: str) -> None:
    by_key = defaultdict(list)
    for e in events:
        by_key[e[key]].append((e["claimed"], e["done"], e["worker"], e["job"]))
    for k, spans in by_key.items():
        spans.sort()
        for (s1, e1, w1, j1), (s2, e2, w2, j2) in zip(spans, spans[1:]):
            assert e1 <= s2, f"{key} {k}: {j1} ({w1}) and {j2} ({w2}) were claimed at once"


def test_eight_processes_against_one_store(tmp_path):
    def job(a, j):
        return row(f"v{j:03d}_{a:02d}.mp4_camp", f"acc{a:02d}", phone_id=phone_of(a, j))

    # The moved accounts' jobs first, one account after the other, so their two phones are
    # contended at once; the rest round-robin, as seeding writes them.
    rows = ([job(a, j) for a in range(8) for j in range(JOBS_PER_ACCOUNT)]
            + [job(a, j) for j in range(JOBS_PER_ACCOUNT) for a in range(8, ACCOUNTS)])
    write_progress(tmp_path / "progress.csv", rows)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=worker, args=(str(tmp_path), f"w{i}")) for i in range(WORKERS)]
    started = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=DEADLINE_S + 10)
    for p in procs:
        if p.is_alive():
            p.kill()
    assert time.monotonic() - started < 30
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]

    events = []
    for i in range(WORKERS):
        log = json.loads((tmp_path / f"events-w{i}.json").read_text())
        assert log["error"] is None, log["error"]
        events += log["events"]
    assert len({e["worker"] for e in events}) > 1, "only one process ever claimed"

    # no two claims of one account, and no phone driven by two workers, at the same time
    assert_no_overlap(events, "account")
    assert_no_overlap(events, "phone")
    # a claim_id is never handed out twice
    assert len({e["claim_id"] for e in events}) == len(events)

    store = make_store(tmp_path)
    final = store.jobs()                                   # the file parses
    assert len(final) == ACCOUNTS * JOBS_PER_ACCOUNT
    assert not [j for j in final if j["status"] == C.CLAIMED]
    successes = [e["job"] for e in events if e["outcome"] == "success"]
    assert len(successes) == len(set(successes)), "a job was completed twice"
    per_account = Counter(j["account"] for j in final if j["status"] == C.SUCCESS)
    assert per_account == {f"acc{a:02d}": LIMIT for a in range(ACCOUNTS)}   # all full, none over
    assert sorted(successes) == sorted(j["job_id"] for j in final if j["status"] == C.SUCCESS)
    ledger = [e["job_id"] for e in store.ledger()]
    assert len(ledger) == len(set(ledger)) == ACCOUNTS * LIMIT
    assert set(ledger) == set(successes)
    # the retryable first failures were retried, not lost
    for e in events:
        if e["outcome"] == "failed":
            assert store.job(e["job"])["status"] in (C.SUCCESS, C.RETRYING)
    assert store.stats()["pending"] + store.stats()["retrying"] == \
        ACCOUNTS * JOBS_PER_ACCOUNT - ACCOUNTS * LIMIT
