"""The test PostgreSQL server itself (tests/pg_server.py): if these fail, every database test's
result means nothing, so they check the promises the other tests lean on."""
from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import psycopg
import pytest

from pg_server import PgServer, find_bindir

HERE = Path(__file__).resolve().parent


def test_server_is_real_postgresql(pg_server, pg_url):
    """A real server, reached over TCP on loopback, as the postdeck superuser."""
    with psycopg.connect(pg_url) as conn:
        version, user, addr = conn.execute(
            "SELECT version(), current_user, inet_server_addr()::text").fetchone()
    assert version.startswith("PostgreSQL "), version
    assert user == "postdeck"
    assert addr.startswith("127.0.0.1")
    assert pg_url == pg_server.url(pg_url.rsplit("/", 1)[1])


@pytest.fixture
def second_pg_url(pg_server) -> str:
    return pg_server.create_database(f"second_{os.getpid()}_{time.monotonic_ns()}")


def test_each_test_gets_its_own_database(pg_url, second_pg_url):
    """Tests must not see each other's tables: a table made in one database is absent from the
    other."""
    assert pg_url != second_pg_url
    with psycopg.connect(pg_url) as a, psycopg.connect(second_pg_url) as b:
        a.execute("CREATE TABLE only_here (x int)")
        a.commit()
        assert a.execute("SELECT current_database()").fetchone()[0] != \
            b.execute("SELECT current_database()").fetchone()[0]
        assert b.execute("SELECT to_regclass('only_here')").fetchone()[0] is None
        assert a.execute("SELECT to_regclass('only_here')").fetchone()[0] is not None


def test_restart_drops_connections_and_comes_back(pg_server, pg_url):
    """restart() is how tests simulate a database that goes away mid-run: an open connection
    fails on its next use, and a new one to the same URL (same port, same data) works."""
    port = pg_server.port
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE kept (x int)")
        conn.execute("INSERT INTO kept VALUES (42)")
        conn.commit()
    old = psycopg.connect(pg_url)
    assert old.execute("SELECT 1").fetchone() == (1,)
    old.rollback()
    pg_server.restart()
    try:
        with pytest.raises(psycopg.OperationalError):
            old.execute("SELECT 1")
    finally:
        old.close()
    assert pg_server.running and pg_server.port == port
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT x FROM kept").fetchall() == [(42,)]


def _postmaster_pid(server: PgServer) -> int:
    return int((server.data_dir / "postmaster.pid").read_text().splitlines()[0])


def _gone(proc: psutil.Process, timeout: float) -> bool:
    """Whether `proc` exits within `timeout`; a zombie counts as gone (the orphaned postmaster
    is reaped by PID 1, which in some containers takes its time)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def test_server_does_not_run_as_root(pg_server, pg_url):
    """initdb and postgres refuse root; when the tests run as root the server must run as the
    postgres user, and own its data folder."""
    with psycopg.connect(pg_url) as conn:
        data_dir = conn.execute("SELECT current_setting('data_directory')").fetchone()[0]
    owner = pwd.getpwuid(os.stat(data_dir).st_uid).pw_name
    proc_user = psutil.Process(_postmaster_pid(pg_server)).username()
    assert owner != "root" and proc_user != "root"
    expected = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert owner == proc_user == expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_server_dies_with_a_killed_test_process(tmp_path):
    """A pytest killed outright (SIGKILL: no atexit, no fixture teardown) must not leave its
    server running."""
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not found (install Debian's postgresql package)")
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(HERE)!r})
        from pg_server import PgServer
        s = PgServer({str(bindir)!r}, {str(tmp_path / "pg")!r})
        s.start()
        print(s.port, flush=True)
        time.sleep(600)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        port = int(child.stdout.readline())
        server = PgServer(bindir, tmp_path / "pg")
        postmaster = psutil.Process(_postmaster_pid(server))
        psycopg.connect(f"postgresql://postdeck@127.0.0.1:{port}/postgres").close()
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert _gone(postmaster, 10), "the server outlived the killed process that started it"
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"postgresql://postdeck@127.0.0.1:{port}/postgres", connect_timeout=2)
