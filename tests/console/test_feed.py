"""The console's readers agree with the engine: the progress reader with parse_progress, the
incremental account states with account_states, the feed with campaign_status."""
from __future__ import annotations

import random

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from engine.accounts import AccountStates
from console.widgets.feed import Feed, LogTail, ProgressReader
from engine import columns as C
from engine.accounts import account_states
from engine.campaigns import Account
from engine.durable import write_atomic
from engine.settings import Settings
from engine.status import campaign_status
from engine.tracker import CorruptProgressFile, parse_progress, serialize

from console_fixtures import (  # noqa: F401 (fixtures used by name)
    T0, fake_alive, frozen_clock, frozen_dir, iso, running, spring_ctx)

ACCOUNTS = [Account(f"acct{i}", f"phone{i % 3}") for i in range(5)]
ERRORS = [("", "", ""), ("account suspended", "suspended", "account"),
          ("rate limited", "rate_limited", "infrastructure"),
          ("adb timeout", "adb_timeout", "infrastructure"),
          ("lost while publishing", "outcome_unknown", "unknown")]


def random_row(rng: random.Random, i: int, now: float) -> list[str]:
    r = [""] * C.WIDTH
    account = rng.choice(ACCOUNTS + [Account("stray", "phone9")])
    r[C.JOB_ID], r[C.ACCOUNT], r[C.PHONE_ID] = f"job{i}", account.name, account.phone
    r[C.VIDEO_PATH], r[C.CAPTION] = f"videos/v{i}.mp4", rng.choice(["a, \"b\"", "plain", "é🎬"])
    status = rng.choice(C.STATUSES)
    r[C.STATUS], r[C.ATTEMPTS], r[C.MAX_ATTEMPTS] = status, str(rng.randint(0, 3)), "3"
    if status != C.PENDING:
        r[C.CLAIMED_AT] = iso(now - rng.randint(10, 9000))
    if status in (C.SUCCESS, C.FAILED, C.RETRYING):
        r[C.COMPLETED_AT] = iso(now - rng.randint(0, 4000))
    if status in (C.FAILED, C.RETRYING):
        r[C.ERROR], r[C.ERROR_TYPE], r[C.ERROR_CATEGORY] = rng.choice(ERRORS[1:])
    if status == C.RETRYING:
        r[C.RETRY_AT] = iso(now + rng.randint(-100, 100))
    if status == C.CLAIMED:
        r[C.PHASE] = rng.choice(C.PHASES)
    return r


@hsettings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10**6), steps=st.integers(1, 12))
def test_incremental_account_states_match_the_engine(seed, steps):
    rng = random.Random(seed)
    s = Settings(max_posts_per_account_per_day=2, cooldown_after_consecutive=2,
                 cooldown_minutes=1, rate_limit_steps=(30, 60))
    now = T0
    rows = [random_row(rng, i, now) for i in range(rng.randint(0, 30))]
    incremental = AccountStates(full_every=10**9)
    for _ in range(steps):
        busy = set(rng.sample(["phone0", "phone1", "phone2", "phone9"], rng.randint(0, 2)))
        got = incremental.compute(rows, s, now, ACCOUNTS, busy)
        assert got == account_states(rows, s, now, ACCOUNTS, busy)
        now += rng.choice([0, 1, 20, 70, 200])
        rows = list(rows)
        for _ in range(rng.randint(0, 4)):
            roll = rng.random()
            if roll < 0.5 and rows:
                i = rng.randrange(len(rows))
                rows[i] = random_row(rng, int(rows[i][0][3:]), now)
            elif roll < 0.8:
                rows.append(random_row(rng, len(rows) + 1000 + rng.randint(0, 10**6), now))
            elif rows:
                rows.pop(rng.randrange(len(rows)))


@hsettings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10**6))
def test_progress_reader_matches_the_engine_parser(tmp_path_factory, seed):
    rng = random.Random(seed)
    path = tmp_path_factory.mktemp("p") / "progress.csv"
    reader = ProgressReader(path)
    rows = [random_row(rng, i, T0) for i in range(rng.randint(0, 40))]
    for _ in range(4):
        write_atomic(path, serialize(rows))
        assert reader.read() == parse_progress(path, path.read_bytes()).rows
        rows = [random_row(rng, int(r[0][3:]), T0) if rng.random() < 0.2 else r for r in rows]
        if rng.random() < 0.3:
            rows.insert(rng.randint(0, len(rows)), random_row(rng, 10**6 + len(rows), T0))


def test_progress_reader_falls_back_to_the_engine(tmp_path):
    path = tmp_path / "progress.csv"
    reader = ProgressReader(path)
    assert reader.read() == []                                   # no file: an empty day
    rows = [random_row(random.Random(1), i, T0) for i in range(3)]
    rows[1][C.CAPTION] = "two\nlines"                           # a record spanning lines
    write_atomic(path, serialize(rows))
    assert reader.read() == rows
    write_atomic(path, serialize(rows + [rows[0]]))              # a duplicate job
    with pytest.raises(CorruptProgressFile, match="twice"):
        reader.read()
    rows[1][C.CAPTION] = "one line"
    write_atomic(path, serialize(rows).replace(b"\n", b"\r\n"))  # CRLF, as the earlier system
    assert reader.read() == rows


def test_feed_agrees_with_campaign_status(frozen_dir, running):
    frame = Feed(frozen_dir, clock=frozen_clock, pid_alive=fake_alive).poll("spring")
    status = campaign_status(running, now=T0)
    assert frame.header.counts == status["counts"]
    assert frame.header.running and frame.header.supervisor_pid == status["supervisor_pid"]
    assert list(frame.accounts) == [a["account"] for a in status["accounts"]]
    for a in status["accounts"]:
        cells = frame.accounts[a["account"]]
        posts = cells[3] if isinstance(cells[3], str) else cells[3][0]
        assert cells[2][0] == a["state"] and posts == f"{a['posts_today']}/{a['limit']}"
    assert len(frame.jobs) == status["total"]
    # the phones panel lists every phone of --status (after the workers), with its power
    for p in status["phones"]:
        key = next((k for k, c in frame.workers.items() if c[2] == p["phone"]), None)
        assert key is not None and frame.workers[key][3][0] == p["state"]
    # an account's gap shows where --status has a gap_until (the fixture has one: daily.drip)
    gaps = {a["account"] for a in status["accounts"] if a["gap_until"]}
    assert gaps == {"daily.drip"}
    assert gaps == {a for a, c in frame.accounts.items() if c[5] and c[5][0].startswith("gap")}


def test_log_tail_follows_appends_and_rotation(tmp_path):
    log = tmp_path / "supervisor.log"
    tail = LogTail(log)
    assert tail.read() == (False, [])
    log.write_text("a\nb\npart")
    assert tail.read() == (True, ["a", "b"])
    with open(log, "a") as fh:
        fh.write("ial\nc\n")
    assert tail.read() == (False, ["partial", "c"])
    log.rename(tmp_path / "supervisor.log.1")                  # rotated
    log.write_text("fresh\n")
    assert tail.read() == (True, ["fresh"])
