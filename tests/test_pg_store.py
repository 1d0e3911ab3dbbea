"""The PostgreSQL store through its public surface (the store API and the CLI), on a real server:
a campaign's first use imports its CSV day and ledger once; the schema refuses what the claim
rules forbid whatever process writes; an expired lease loses its claims; days close into the
familiar archives; bad URLs and databases get one message, exit 1 (2 for usage), and nothing
changes."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from conftest import fast_sim, postdeck, write_campaign
from engine import columns as C
from engine.campaigns import Account, Video
from engine.pg_store import SCHEMA_VERSION, PgStore
from engine.settings import Settings
from engine.tracker import ClaimLost, serialize
from helpers import row, tree_snapshot
from pg_helpers import db_ledger, db_rows

NOW = 1_800_000_000.0


def store(url: str, folder: Path, name: str = "c", limit: int = 2, clock=None, **kwargs):
    return PgStore(url, name, folder / "progress.csv", folder / "posted.csv",
                   Settings(max_posts_per_account_per_day=limit), clock=clock or (lambda: NOW),
                   **kwargs)


def vids(folder: Path, n: int) -> list[Video]:
    return [Video(f"v{i}.mp4", folder / f"v{i}.mp4", f"caption {i}") for i in range(n)]


def csv_day(folder: Path) -> None:
    """A campaign folder as the CSV store left it: a day with a success, a pending job and an
    unknown outcome, and its ledger (one entry, one damaged line)."""
    done = row("v0.mp4_c", "a1", C.SUCCESS, video_path="/old/v0.mp4",
               completed_at="2027-01-15T07:00:00.000+00:00", claim_id="x" * 32)
    unknown = row("v1.mp4_c", "a2", C.FAILED, video_path="/old/v1.mp4",
                  error_type="outcome_unknown", error_category="unknown",
                  completed_at="2027-01-15T07:30:00.000+00:00")
    waiting = row("v2.mp4_c", "a1", C.PENDING, video_path="/old/v2.mp4")
    (folder / "progress.csv").write_bytes(serialize([done, unknown, waiting]))
    (folder / "posted.csv").write_text("posted_at,account,video_path,job_id\n"
                                       "2027-01-15T07:00:00+00:00,a1,/old/v0.mp4,v0.mp4_c\n"
                                       "2027-01-15T07:10:00,a3,/old/v9.mp4\n")


# --- the first use -------------------------------------------------------------------------------
def test_first_use_imports_the_csv_day_and_ledger_once(pg_url, tmp_path):
    csv_day(tmp_path)
    before = tree_snapshot(tmp_path)
    s = store(pg_url, tmp_path)
    assert [r[C.JOB_ID] for r in s.read().rows] == ["v0.mp4_c", "v1.mp4_c", "v2.mp4_c"]
    assert s.imported()["jobs"] == 3
    posted = s.posted()
    assert {"v0.mp4", "v9.mp4"} <= posted.names
    # a second store (another process, another host) imports nothing more
    again = store(pg_url, tmp_path)
    assert len(again.read().rows) == 3 and len(again.ledger()) == len(s.ledger())
    assert tree_snapshot(tmp_path) == before, "the operator's files were changed"
    # the day's use counts: a1 used its success, a2 its unknown outcome; limit 2
    seeded = again.seed(vids(tmp_path, 12), [Account("a1", "p1"), Account("a2", "p2")], "c")
    assert [j["account"] for j in seeded] == ["a2"], "a1 has a pending job; a2 one free slot"
    assert all(j["job_id"] not in ("v0.mp4_c", "v9.mp4_c", "v1.mp4_c") for j in seeded)


def test_a_corrupt_csv_day_is_refused_and_nothing_is_created(pg_url, tmp_path):
    (tmp_path / "progress.csv").write_text("job_id,account\nv0.mp4_c,a1\n")
    with pytest.raises(Exception) as err:
        store(pg_url, tmp_path).read()
    assert "progress.csv" in str(err.value)
    assert db_rows(pg_url) == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM postdeck.campaigns").fetchone()[0] == 0


# --- the rules in the schema ---------------------------------------------------------------------
def test_the_schema_refuses_a_second_claim_of_an_account_and_a_phone_held_by_two(pg_url,
                                                                                 tmp_path):
    s = store(pg_url, tmp_path)
    s.seed(vids(tmp_path, 4), [Account("a1", "p1"), Account("a2", "p1")], "c")
    job = s.claim("0")
    with psycopg.connect(pg_url) as conn:
        other = conn.execute("SELECT job_id FROM postdeck.jobs WHERE account = %s AND "
                             "status = 'pending' LIMIT 1", (job.account,)).fetchone()[0]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("UPDATE postdeck.jobs SET status = 'claimed', claim_id = 'z', "
                         "phone_id = 'p9', worker_id = '7' WHERE job_id = %s", (other,))
    with psycopg.connect(pg_url) as conn:      # a2's job on p1, held by worker 0: by worker 7
        a2 = conn.execute("SELECT job_id FROM postdeck.jobs WHERE account = 'a2' LIMIT 1"
                          ).fetchone()[0]
        with pytest.raises(psycopg.errors.ExclusionViolation):
            conn.execute("UPDATE postdeck.jobs SET status = 'claimed', claim_id = 'z', "
                         "worker_id = '7' WHERE job_id = %s", (a2,))


def test_concurrent_claimers_never_take_one_account_twice(pg_url, tmp_path):
    """Eight threads, each with its own store (its own connection), claim at once: every
    account is claimed at most once, and everything claimable is claimed."""
    import threading
    s = store(pg_url, tmp_path, limit=1)
    accounts = [Account(f"a{i}", f"p{i}") for i in range(6)]
    s.seed(vids(tmp_path, 12), accounts, "c")
    got, barrier = [], threading.Barrier(8)

    def claimer(i: int) -> None:
        mine = store(pg_url, tmp_path, limit=1)
        barrier.wait()
        job = mine.claim(str(i))
        if job is not None:
            got.append(job.account)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(got) == sorted(a.name for a in accounts)


# --- leases --------------------------------------------------------------------------------------
def test_an_expired_lease_loses_its_claim_and_every_later_write(pg_url, tmp_path):
    s = store(pg_url, tmp_path, clock=time.time)
    s.seed(vids(tmp_path, 2), [Account("a1", "p1")], "c")
    lease = s.lease("0", 4242, 1.0)
    job = s.claim("0")
    s.set_phase(job.job_id, job.claim_id, "preparing")
    time.sleep(1.3)
    with pytest.raises(ClaimLost, match="lease"):
        s.set_phase(job.job_id, job.claim_id, "publishing")
    assert not lease.renew(), "an expired lease must not come back to life"
    assert s.claim("0") is None, "a worker whose lease expired claims nothing"
    other = store(pg_url, tmp_path, host_name="b", clock=time.time)
    assert [j["job_id"] for j in other.stale_claims(set())] == [job.job_id]
    recovered = other.recover_stale(set())
    assert [(j["job_id"], j["status"]) for j in recovered] == [(job.job_id, "retrying")]
    lease.close()


def test_another_hosts_live_claims_are_not_recovered(pg_url, tmp_path):
    s = store(pg_url, tmp_path, clock=time.time)
    s.seed(vids(tmp_path, 2), [Account("a1", "p1")], "c")
    lease = s.lease("0", 4242, 30.0)
    job = s.claim("0")
    other = store(pg_url, tmp_path, host_name="b", clock=time.time)
    assert other.recover_stale(set()) == [] and other.stale_claims(set()) == []
    assert s.stale_claims({"0"}) == []
    s.complete(job.job_id, job.claim_id)
    lease.close()
    assert other.leases() == [], "a lease given up with no claim is gone"


def test_a_write_cut_by_a_restart_is_retried_and_done_once(pg_url, pg_server, tmp_path):
    s = store(pg_url, tmp_path)
    s.seed(vids(tmp_path, 3), [Account("a1", "p1"), Account("a2", "p2")], "c")
    job = s.claim("0")
    pg_server.restart()            # the store's connection is gone
    s.complete(job.job_id, job.claim_id)
    assert [e["job_id"] for e in s.ledger()] == [job.job_id]
    assert s.stats()["success"] == 1


# --- days ----------------------------------------------------------------------------------------
def test_a_reset_closes_the_day_in_the_database_and_writes_its_archive(pg_url, tmp_path):
    s = store(pg_url, tmp_path)
    s.seed(vids(tmp_path, 2), [Account("a1", "p1")], "c")
    job = s.claim("0")
    s.complete(job.job_id, job.claim_id)
    today = s.export_day()
    first = s.reset_day("20270115")
    second = s.reset_day("20270115")
    assert (first.name, second.name) == ("progress_20270115.csv", "progress_20270115_1.csv")
    assert first.read_bytes() == today == s.export_day("20270115")
    assert s.days() == ["20270115", "20270115_1"]
    assert s.stats()["total"] == 0
    # the archive counts once: a1 posted today, limit 2, so one more slot
    assert [j["account"] for j in s.seed(vids(tmp_path, 5), [Account("a1", "p1")], "c")] == \
        ["a1"]


def test_a_reset_is_refused_while_a_lease_is_live(pg_url, tmp_path):
    s = store(pg_url, tmp_path, clock=time.time)
    lease = s.lease("3", os.getpid(), 30.0)
    with pytest.raises(Exception, match=rf"host localhost \(pids {os.getpid()}\)"):
        s.reset_day("20270115")
    assert s.days() == []
    lease.close()


def test_a_reset_goes_on_past_a_lease_of_this_hosts_dead_process(pg_url, tmp_path):
    """A crashed run's lease on this host need not run out first: its process is gone (its
    claims were recovered before the reset). Another host's lease still counts."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    s = store(pg_url, tmp_path, clock=time.time)
    s.lease("3", dead.pid, 30.0)
    assert s.reset_day("20270115").name == "progress_20270115.csv"
    other = store(pg_url, tmp_path, host_name="b", clock=time.time)
    other.lease("3", dead.pid, 30.0)
    with pytest.raises(Exception, match=rf"host b \(pids {dead.pid}\)"):
        s.reset_day("20270115")


# --- the CLI: bad input --------------------------------------------------------------------------
@pytest.fixture
def campaign(campaigns_dir):
    write_campaign(campaigns_dir / "farm", [("a1", "p1"), ("a2", "p2")], 4,
                   settings={"max_posts_per_account_per_day": 2, "simulation": fast_sim()})
    return campaigns_dir


def run(campaigns_dir: Path, *args: str, url: str | None = None, **env: str):
    extra = {"POSTDECK_STORE": url} if url else {}
    return postdeck("--no-ui", "--campaign", "farm", "--campaigns-dir", str(campaigns_dir),
                    *args, env={**extra, **env})


def one_line(res) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    if res.returncode == 2:       # argparse's usage lines, then the one message
        assert lines[-1].startswith("postdeck: usage error: "), res.stderr
    else:
        assert len(lines) == 1, res.stderr
    return lines[-1]


def test_an_unreachable_server_is_one_message_and_nothing_changes(campaign, unused_port):
    before = tree_snapshot(campaign)
    res = run(campaign, "--run", url=f"postgresql://ops:s3cret@127.0.0.1:{unused_port}/farm")
    assert res.returncode == 1
    line = one_line(res)
    assert f"postgresql://ops@127.0.0.1:{unused_port}/farm cannot be used" in line
    assert "s3cret" not in res.stderr + res.stdout
    assert tree_snapshot(campaign) == before


def test_a_database_that_does_not_exist_is_one_message(campaign, pg_url):
    res = run(campaign, "--status", url=pg_url.rsplit("/", 1)[0] + "/nope")
    assert res.returncode == 1
    assert 'database "nope" does not exist' in one_line(res)


def test_a_password_on_the_command_line_is_a_usage_error(campaign, pg_url):
    with_password = pg_url.replace("postdeck@", "postdeck:hunter2@")
    res = run(campaign, "--status", "--store", with_password)
    assert res.returncode == 2
    assert "PGPASSWORD" in one_line(res) and "hunter2" not in res.stderr
    res = run(campaign, "--status", "--store", "mysql://x/y")
    assert res.returncode == 2 and "postgresql:// URL" in one_line(res)


def test_a_database_of_another_schema_version_is_refused_untouched(campaign, pg_url):
    assert run(campaign, "--seed-only", url=pg_url).returncode == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE postdeck.meta SET value = '99' WHERE key = 'schema_version'")
    rows = db_rows(pg_url)
    res = run(campaign, "--run", url=pg_url)
    assert res.returncode == 1
    line = one_line(res)
    assert "schema version 99" in line and f"(schema {SCHEMA_VERSION})" in line
    assert db_rows(pg_url) == rows


def test_a_day_runs_then_exports_through_the_cli(campaign, pg_url, tmp_path):
    res = run(campaign, "--run", "--workers", "2", url=pg_url)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "today.csv"
    res = run(campaign, "--export-day", str(out), url=pg_url)
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == list(C.COLUMNS) and {r[C.STATUS] for r in rows[1:]} == {"success"}
    assert len(db_ledger(pg_url)) == len(rows) - 1
    # an existing file is never replaced
    res = run(campaign, "--export-day", str(out), url=pg_url)
    assert res.returncode == 1 and "never replaces a file" in one_line(res)
    assert out.read_text().count("\n") == len(rows)
    # the day closes into the folder's archive, the same bytes as an export of that day
    res = run(campaign, "--reset-day", url=pg_url)
    assert res.returncode == 0, res.stderr
    archive = next((campaign / "farm").glob("progress_*.csv"))
    day = archive.stem[len("progress_"):]
    again = tmp_path / "again.csv"
    assert run(campaign, "--export-day", str(again), "--day", day, url=pg_url).returncode == 0
    assert again.read_bytes() == archive.read_bytes() == out.read_bytes()
    res = run(campaign, "--export-day", str(tmp_path / "x.csv"), "--day", "19990101", url=pg_url)
    assert res.returncode == 1 and "no closed day '19990101'" in one_line(res)
    assert not (tmp_path / "x.csv").exists()
    status = run(campaign, "--status", url=pg_url)
    assert "store postgresql://postdeck@127.0.0.1" in status.stdout
    # the history counts the day from the database, not the folder's stale progress.csv
    import json
    history = run(campaign, "--history", "--json", url=pg_url)
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout)["days"][-1]["success"] == len(rows) - 1


@pytest.fixture
def unused_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_moving_to_postgresql_is_refused_while_a_csv_run_goes(campaigns_dir, pg_url):
    write_campaign(campaigns_dir / "farm", [("a1", "p1")], 3, settings={
        "max_posts_per_account_per_day": 2, "simulation": fast_sim(post_seconds=3.0)})
    started = run(campaigns_dir, "--run", "--detach")
    assert started.returncode == 0, started.stderr
    try:
        res = run(campaigns_dir, "--status", url=pg_url)
        assert res.returncode == 1
        assert "has a run going on its CSV file; stop it before moving" in one_line(res)
        assert db_rows(pg_url) == []
    finally:
        assert run(campaigns_dir, "--stop-all").returncode == 0
