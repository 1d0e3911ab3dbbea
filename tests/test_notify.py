"""The alert notifier through its public surface, with real parts: real commands run by the
notifier, a real HTTP server on 127.0.0.1, real timeouts (kept short)."""
from __future__ import annotations

import json
import logging
import os
import socket
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.notify import Notifier, redact_url
from engine.settings import NOTIFY_EVENTS, Notify

SECRETS = ("SECRET123", "SECRET456", "PASSWORD789")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Only 127.0.0.1 is ever contacted: no proxy from the environment gets in the way."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def log(request) -> logging.Logger:
    """A logger of the test's own, so a thread abandoned by an earlier test cannot add records
    to this test's assertions."""
    logger = logging.getLogger(f"test.notify.{request.node.name}")
    if not logger.handlers:      # a thread left behind logs here, not to stderr at exit
        logger.addHandler(logging.NullHandler())
    return logger


def warnings_of(caplog, log: logging.Logger) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == log.name and r.levelno >= logging.WARNING]


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "alert.py"
    path.write_text("import sys, os, time\n" + textwrap.dedent(body))
    return [sys.executable, str(path)]


def appender(tmp_path: Path) -> tuple[list[str], Path]:
    """A command that appends its stdin to a file, exactly as received."""
    out = tmp_path / "received.txt"
    cmd = script(tmp_path, f"""
        data = sys.stdin.buffer.read()
        with open({str(out)!r}, "ab") as fh:
            fh.write(data)
    """)
    return cmd, out


def received(out: Path) -> list[dict]:
    return [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]


class Server:
    """A real HTTP server in a thread: records each POST, answers with the next status."""

    def __init__(self, statuses: list[int] | None = None):
        self.posts: list[tuple[str, str, bytes]] = []
        self.statuses = list(statuses or [])
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.posts.append((self.path, self.headers.get("Content-Type"), body))
                status = server.statuses.pop(0) if server.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    made: list[Server] = []

    def make(statuses: list[int] | None = None) -> Server:
        made.append(Server(statuses))
        return made[-1]
    yield make
    for s in made:
        s.close()


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def event(name: str, **extra) -> dict:
    return {"event": name, "campaign": "spring", **extra}


# --- delivery ------------------------------------------------------------------------------

def test_the_command_gets_each_event_as_one_json_line_on_stdin(tmp_path, log):
    cmd, out = appender(tmp_path)
    n = Notifier(Notify(command=tuple(cmd)), log)
    sent = [event("run_started", workers=3),
            event("account_blocked", account="anna_🎬", reason='said "blocked"\nfor a day'),
            event("run_ended", posted=12, failed=1)]
    for e in sent:
        n.send(e)
    n.close(timeout=10)
    raw = out.read_bytes()
    assert raw.count(b"\n") == 3 and raw.endswith(b"\n")
    assert "anna_🎬".encode() in raw                      # UTF-8, not \u escapes
    assert received(out) == sent


def test_the_webhook_gets_each_event_posted_as_json(server, log):
    s = server()
    n = Notifier(Notify(webhook=f"http://127.0.0.1:{s.port}/hook/abc?x=1"), log)
    sent = [event("run_started"), event("phone_failed", phone="p7")]
    for e in sent:
        n.send(e)
    n.close(timeout=10)
    assert [p[0] for p in s.posts] == ["/hook/abc?x=1"] * 2
    assert [p[1] for p in s.posts] == ["application/json"] * 2
    assert [json.loads(p[2]) for p in s.posts] == sent


def test_only_the_events_asked_for_are_delivered(tmp_path, server, log):
    cmd, out = appender(tmp_path)
    s = server()
    n = Notifier(Notify(command=tuple(cmd), webhook=f"http://127.0.0.1:{s.port}/",
                        events=("account_blocked", "run_ended")), log)
    for name in NOTIFY_EVENTS:
        n.send(event(name))
    n.send(event("not_an_event"))
    n.send({"no": "event key"})
    n.close(timeout=10)
    assert [e["event"] for e in received(out)] == ["run_ended", "account_blocked"]
    assert [json.loads(p[2])["event"] for p in s.posts] == ["run_ended", "account_blocked"]


def test_without_a_config_send_is_a_cheap_no_op(log):
    before = {t for t in threading.enumerate() if t.name == "postdeck-notify"}
    n = Notifier(None, log)
    start = time.monotonic()
    for _ in range(10_000):
        n.send(event("run_started"))
    assert time.monotonic() - start < 0.5
    n.close()
    assert {t for t in threading.enumerate() if t.name == "postdeck-notify"} == before


def test_send_never_raises_on_odd_input(tmp_path, log):
    cmd, out = appender(tmp_path)
    n = Notifier(Notify(command=tuple(cmd)), log)
    n.send("not a dict")                                           # type: ignore[arg-type]
    n.send(None)                                                   # type: ignore[arg-type]
    n.send(event("run_ended", when=Path("/x"), odd={1, 2}.__class__))   # not JSON-able
    n.close(timeout=10)
    n.close(timeout=10)                                            # twice is harmless
    n.send(event("run_ended"))                                     # after close: dropped
    assert [e["event"] for e in received(out)] == ["run_ended"]
    assert received(out)[0]["when"] == "/x"


# --- failures are logged and do not stop the next event -------------------------------------

def test_a_failing_command_is_logged_and_the_next_event_still_arrives(tmp_path, log, caplog):
    out = tmp_path / "received.txt"
    cmd = script(tmp_path, f"""
        data = sys.stdin.buffer.read()
        open({str(out)!r}, "ab").write(data)
        if b"run_started" in data:
            sys.stderr.write("boom: the alert service is down\\n")
            sys.exit(3)
    """)
    n = Notifier(Notify(command=tuple(cmd)), log)
    n.send(event("run_started"))
    n.send(event("account_blocked"))
    n.close(timeout=10)
    assert [e["event"] for e in received(out)] == ["run_started", "account_blocked"]
    [warning] = warnings_of(caplog, log)
    assert "exited with 3" in warning and "run_started" in warning
    assert "boom: the alert service is down" in warning


def test_a_missing_program_is_logged_not_raised(tmp_path, log, caplog):
    n = Notifier(Notify(command=(str(tmp_path / "no-such-program"), "--flag")), log)
    n.send(event("worker_crashed"))
    n.close(timeout=10)
    [warning] = warnings_of(caplog, log)
    assert "cannot start" in warning and "no-such-program" in warning
    assert "worker_crashed" in warning


def test_a_webhook_answering_500_is_logged_and_the_next_event_still_arrives(server, log,
                                                                            caplog):
    s = server(statuses=[500])
    n = Notifier(Notify(webhook=f"http://127.0.0.1:{s.port}/hook"), log)
    n.send(event("outcome_unknown"))
    n.send(event("run_ended"))
    n.close(timeout=10)
    assert [json.loads(p[2])["event"] for p in s.posts] == ["outcome_unknown", "run_ended"]
    [warning] = warnings_of(caplog, log)
    assert "Server error '500 Internal Server Error'" in warning
    assert "outcome_unknown" in warning


# --- slow notifiers never slow the caller ---------------------------------------------------

def timed_sends(n: Notifier, count: int) -> float:
    """The longest single send()."""
    worst = 0.0
    for i in range(count):
        start = time.monotonic()
        n.send(event("account_blocked", i=i))
        worst = max(worst, time.monotonic() - start)
    return worst


def test_a_hanging_command_delays_neither_send_nor_close(tmp_path, log, caplog):
    cmd = script(tmp_path, "sys.stdin.read(); time.sleep(60)\n")
    n = Notifier(Notify(command=tuple(cmd)), log, timeout=5)
    assert timed_sends(n, 20) < 0.25
    start = time.monotonic()
    n.close(timeout=1)
    assert 0.9 < time.monotonic() - start < 2
    assert any("20 event(s) not delivered" in w for w in warnings_of(caplog, log))


def test_a_webhook_that_never_answers_delays_neither_send_nor_close(log, caplog):
    with socket.socket() as silent:            # accepts connections (backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(50)
        port = silent.getsockname()[1]
        n = Notifier(Notify(webhook=f"http://127.0.0.1:{port}/hook"), log, timeout=5)
        assert timed_sends(n, 20) < 0.25
        start = time.monotonic()
        n.close(timeout=1)
        assert 0.9 < time.monotonic() - start < 2
    assert any("20 event(s) not delivered" in w for w in warnings_of(caplog, log))


def test_a_hung_command_is_killed_after_the_timeout_and_logged(tmp_path, log, caplog):
    pid_file = tmp_path / "pid"
    cmd = script(tmp_path, f"""
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
    """)
    n = Notifier(Notify(command=tuple(cmd)), log, timeout=0.5)
    n.send(event("phone_failed"))
    start = time.monotonic()
    n.close(timeout=5)
    assert time.monotonic() - start < 3             # the kill, not close's timeout, ended it
    [warning] = warnings_of(caplog, log)
    assert "did not finish within 0.5s" in warning and "killed" in warning
    with pytest.raises(ProcessLookupError):         # killed and reaped, not left running
        os.kill(int(pid_file.read_text()), 0)


def test_a_full_queue_drops_events_with_one_warning_naming_how_many(tmp_path, log, caplog):
    started = tmp_path / "started"
    cmd = script(tmp_path, f"""
        open({str(started)!r}, "a").write("x")
        time.sleep(60)
    """)
    n = Notifier(Notify(command=tuple(cmd)), log, timeout=1, queue_size=2)
    n.send(event("run_started"))
    deadline = time.monotonic() + 5
    while not started.exists() and time.monotonic() < deadline:   # the worker holds it now
        time.sleep(0.02)
    assert timed_sends(n, 9) < 0.25                # 2 queued, 7 dropped
    deadline = time.monotonic() + 5
    while not any("dropped" in w for w in warnings_of(caplog, log)) and (
            time.monotonic() < deadline):
        time.sleep(0.05)
    n.close(timeout=0.1)
    dropped = [w for w in warnings_of(caplog, log) if "queue was full" in w]
    assert dropped[0] == "notify: the alert queue was full; dropped 7 event(s)"
    assert len(dropped) == 1
    [closing] = [w for w in warnings_of(caplog, log) if "at close" in w]
    assert closing.startswith("notify: 2 event(s) not delivered at close")   # not 9: no recount


# --- the webhook's token never reaches a log ------------------------------------------------

def assert_no_secret(caplog):
    for r in caplog.records:
        text = " ".join([r.getMessage(), repr(r.args), r.exc_text or "", str(r.exc_info or "")])
        for secret in SECRETS:
            assert secret not in text, f"{secret} logged by {r.name}: {r.getMessage()}"


@pytest.mark.parametrize("statuses", [[200], [500]], ids=["ok", "server-error"])
def test_the_webhook_token_never_appears_in_a_log_record(server, log, caplog, statuses):
    caplog.set_level(logging.DEBUG)                 # httpx's own INFO/DEBUG lines too
    s = server(statuses=statuses)
    url = f"http://127.0.0.1:{s.port}/hook/SECRET123?token=SECRET456"
    n = Notifier(Notify(webhook=url), log)
    assert "SECRET" not in repr(n)
    n.send(event("account_blocked"))
    n.close(timeout=10)
    assert len(s.posts) == 1
    assert any(r.name == "httpx" and "HTTP Request" in r.getMessage() for r in caplog.records)
    if statuses == [500]:      # httpx's HTTPStatusError quotes the URL; the log must not
        [warning] = warnings_of(caplog, log)
        assert warning.startswith(f"notify: webhook http://127.0.0.1:{s.port}/… failed for "
                                  "account_blocked: HTTPStatusError: Server error '500")
    assert_no_secret(caplog)


@pytest.mark.parametrize("userinfo", ["", "ops:PASSWORD789@"], ids=["token", "userinfo"])
def test_the_token_is_not_logged_when_the_connection_is_refused(log, caplog, userinfo):
    caplog.set_level(logging.DEBUG)
    port = free_port()
    url = f"http://{userinfo}127.0.0.1:{port}/hook/SECRET123?token=SECRET456"
    n = Notifier(Notify(webhook=url), log)
    n.send(event("run_ended"))
    n.close(timeout=10)
    [warning] = warnings_of(caplog, log)
    assert f"webhook http://127.0.0.1:{port}/… failed for run_ended: ConnectError" in warning
    assert_no_secret(caplog)


@pytest.mark.parametrize("url", ["http://[::1/hook/SECRET123?token=SECRET456",
                                 "http://127.0.0.1:1/hook/SECRET123\x00?token=SECRET456"])
def test_a_malformed_webhook_url_is_logged_without_its_token(log, caplog, url):
    caplog.set_level(logging.DEBUG)
    n = Notifier(Notify(webhook=url), log)
    n.send(event("run_ended"))
    n.close(timeout=10)
    [warning] = warnings_of(caplog, log)
    assert "failed for run_ended: InvalidURL" in warning
    assert_no_secret(caplog)


@pytest.mark.parametrize("url, shown", [
    ("https://hooks.example.com/services/T0/B0/SECRET123", "https://hooks.example.com/…"),
    ("https://hooks.example.com", "https://hooks.example.com/…"),
    ("http://127.0.0.1:8080/hook?token=SECRET456", "http://127.0.0.1:8080/…"),
    ("https://bot:PASSWORD789@alerts.example.org:8443/x", "https://alerts.example.org:8443/…"),
    ("http://[::1]:9000/SECRET123", "http://[::1]:9000/…"),
    ("http://host:notaport/SECRET123", "<webhook>"),
    ("not a url SECRET123", "<webhook>"),
])
def test_redact_url_keeps_scheme_host_and_port_only(url, shown):
    assert redact_url(url) == shown
