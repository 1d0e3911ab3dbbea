"""Alerts: each run event the operator asked for (campaign.json "notify") goes to a command on
stdin and/or a webhook as a POST, one JSON object per event.

An alert must never cost a post: the supervisor calls `send()` from its own loop, so delivery
happens on one background daemon thread behind a bounded queue. A command that hangs or a
webhook that never answers is timed out, logged, and forgotten; when the queue is full, events
are dropped (and counted) rather than making the caller wait. `close()` gives the queue a bounded
time to drain so `run_ended` still gets out, then abandons the thread.

The webhook URL may carry a token (path, query or user:password@), so it is only ever logged
through `redact_url()`, and anything httpx says about it is scrubbed first.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from urllib.parse import unquote, urlsplit

import httpx

from engine.settings import Notify

QUEUE_SIZE = 1000
DELIVERY_TIMEOUT = 10.0          # seconds, per command run and per webhook POST
CONNECT_RETRY_PAUSE = 1.0        # seconds before the single retry of a refused connection
STDERR_CHARS = 200
_STOP = object()                 # queued by close() to let an idle worker thread end


def redact_url(url: str) -> str:
    """Scheme, host and port only (`https://hooks.example.com/…`): whatever else a webhook URL
    carries may be its token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:           # a malformed port or IPv6 literal: show nothing of it
        return "<webhook>"
    if not parts.scheme or not host:
        return "<webhook>"
    if ":" in host:              # an IPv6 literal needs its brackets back
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}/…"


def _whole_forms(url: str) -> list[str]:
    """`url` as written and as httpx normalises it (which is how its messages quote it)."""
    try:
        return sorted({url, str(httpx.URL(url))}, key=len, reverse=True)
    except Exception:            # noqa: BLE001 - an unparseable URL has only itself to hide
        return [url]


def _pieces(url: str) -> list[str]:
    """The parts of `url` that may be (or contain) its token, raw and percent-decoded, longest
    first so a whole path is replaced before its segments."""
    try:
        parts = urlsplit(url)
    except ValueError:           # "http://[::1/x": the whole-URL replacement is all there is
        return []
    userinfo = parts.netloc.rpartition("@")[0]
    pieces = {parts.path, parts.query, parts.fragment, userinfo, *userinfo.split(":"),
              *parts.path.split("/"), *parts.query.replace("&", "=").split("=")}
    pieces.update([unquote(p) for p in pieces])
    return sorted((p for p in pieces if len(p) >= 4), key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """`text` with `url` shown as redact_url() shows it, and any other piece of it that could
    be its token replaced by '…'."""
    for whole in _whole_forms(url):
        text = text.replace(whole, redact_url(url))
    for secret in _pieces(url):
        text = text.replace(secret, "…")
    return text


class _HttpxRedactor(logging.Filter):
    """httpx logs every request's full URL at INFO ("HTTP Request: POST https://…?token=…").
    This filter, on the "httpx" logger, rewrites only the records naming a webhook URL, so an
    operator who turns library logging up still never sees a token."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: tuple[str, ...] = ()     # replaced, never mutated: read from any thread

    def add(self, url: str) -> None:
        if url not in self.urls:
            self.urls = (*self.urls, url)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.urls:
            return True
        message = record.getMessage()
        clean = message
        for url in self.urls:
            clean = scrub(clean, url)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_REDACTOR = _HttpxRedactor()
logging.getLogger("httpx").addFilter(_REDACTOR)


class Notifier:
    """Delivers run events to the configured command and/or webhook, off the caller's thread.

    `send()` never blocks and never raises; `close()` waits a bounded time for the queue."""

    def __init__(self, config: Notify | None, log: logging.Logger, *,
                 timeout: float = DELIVERY_TIMEOUT, queue_size: int = QUEUE_SIZE):
        self.config = config
        self.log = log
        self.timeout = timeout
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._cond = threading.Condition()    # guards the counters below and _closed
        self._accepted = self._finished = 0
        self._dropped = 0                      # dropped since the last warning about drops
        self._closed = config is None         # no more send()s are taken
        self._close_called = False
        self._client: httpx.Client | None = None
        if config is None:
            return
        if config.webhook:
            _REDACTOR.add(config.webhook)
        self._thread = threading.Thread(target=self._run, name="postdeck-notify", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        if self.config is None:
            return "Notifier(None)"
        webhook = redact_url(self.config.webhook) if self.config.webhook else ""
        return (f"Notifier(command={self._program()!r}, webhook={webhook!r}, "
                f"events={self.config.events!r})")

    # --- the caller's side -----------------------------------------------------------------

    def send(self, event: dict) -> None:
        """Queue `event` for delivery if its "event" is one the operator asked for. Returns at
        once; a full queue drops the event (counted, reported once) instead of waiting."""
        if self._closed:
            return
        try:
            self._enqueue(event)
        except Exception as exc:     # noqa: BLE001 - an alert must never break the run
            self.log.warning("notify: event not sent: %s", type(exc).__name__)

    def _enqueue(self, event: dict) -> None:
        name = event.get("event") if isinstance(event, dict) else None
        if name not in self.config.events:
            return
        # Serialised here, so a caller changing the dict afterwards cannot change the alert;
        # default=str keeps an odd value (a datetime, a Path) from costing the whole alert.
        line = json.dumps(event, ensure_ascii=False, default=str)
        with self._cond:
            if self._closed:
                return
            try:
                self._queue.put_nowait((str(name), line))
            except queue.Full:
                self._note_dropped()
                return
            self._accepted += 1

    def _note_dropped(self) -> None:
        """Count a drop; the worker reports the burst in one warning when it catches up (or
        close() does, if it never does), instead of one warning per event."""
        self._dropped += 1

    def close(self, timeout: float = 5.0) -> None:
        """Wait up to `timeout` seconds for queued events to go out, then return even if a
        notifier hangs: the daemon thread is abandoned and what it still holds is reported."""
        if self.config is None:
            return
        with self._cond:
            if self._close_called:
                return
            self._closed = self._close_called = True
            self._cond.wait_for(lambda: self._finished >= self._accepted, timeout=timeout)
            pending, dropped = self._accepted - self._finished, self._dropped
            self._dropped = 0
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:           # the worker is stuck; it dies with the process
            pass
        if pending or dropped:
            self.log.warning("notify: %d event(s) not delivered at close (%d still queued or "
                             "being sent, %d dropped from a full queue)",
                             pending + dropped, pending, dropped)

    # --- the worker thread -----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                self._close_client()
                return
            self._report_drops()
            name, line = item
            try:
                self._deliver(name, line)
            except Exception as exc:     # noqa: BLE001 - the thread must outlive any one alert
                self.log.warning("notify: %s not delivered: %s", name, type(exc).__name__)
            finally:
                with self._cond:
                    self._finished += 1
                    self._cond.notify_all()

    def _report_drops(self) -> None:
        with self._cond:
            dropped, self._dropped = self._dropped, 0
        if dropped:
            self.log.warning("notify: the alert queue was full; dropped %d event(s)", dropped)

    def _deliver(self, name: str, line: str) -> None:
        """Command and webhook independently: one failing does not keep the other from trying."""
        if self.config.command:
            self._run_command(name, line)
        if self.config.webhook:
            self._post(name, line)

    # --- the command -----------------------------------------------------------------------

    def _program(self) -> str:
        """The program only: its arguments are the operator's and could hold a secret too."""
        return self.config.command[0] if self.config.command else ""

    def _run_command(self, name: str, line: str) -> None:
        try:
            # Its own session, so a timeout kills whatever the command started as well.
            proc = subprocess.Popen(self.config.command, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    start_new_session=True)
        except OSError as exc:
            self.log.warning("notify: cannot start %s for %s: %s", self._program(), name,
                             exc.strerror or type(exc).__name__)
            return
        try:
            _, err = proc.communicate((line + "\n").encode("utf-8"), timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._kill(proc)
            self.log.warning("notify: %s did not finish within %gs for %s; killed it",
                             self._program(), self.timeout, name)
            return
        if proc.returncode != 0:
            self.log.warning("notify: %s exited with %d for %s: %s", self._program(),
                             proc.returncode, name, _head(err))

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        """Kill the command's whole process group and reap it, so nothing is left running."""
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:              # already gone
            pass
        try:
            proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:   # a grandchild escaped the group and holds the pipes
            proc.wait()

    # --- the webhook -----------------------------------------------------------------------

    def _post(self, name: str, line: str) -> None:
        """One POST; one retry only when the connection was refused or unreachable (the request
        never left, so a retry cannot duplicate the alert). Timeouts are not retried: they have
        already cost `timeout` seconds each, and the queue behind them waits."""
        for attempt in (1, 2):
            try:
                response = self._http().post(self.config.webhook, content=line.encode("utf-8"),
                                             headers={"Content-Type": "application/json"})
                response.raise_for_status()
            except httpx.ConnectError as exc:
                if attempt == 1:
                    time.sleep(CONNECT_RETRY_PAUSE)
                    continue
                self._log_failure(name, exc)
            except httpx.HTTPStatusError as exc:     # its message quotes the whole URL
                self._log_failure(name, exc, _head(exc.response.content))
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                self._log_failure(name, exc)
            return

    def _log_failure(self, name: str, exc: Exception, body: str = "") -> None:
        """httpx's messages can quote the URL (HTTPStatusError always does): only their first
        line, scrubbed of every piece of the URL, is logged, next to the redacted address."""
        message = str(exc).splitlines()[0] if str(exc) else ""
        details = scrub(" ".join(filter(None, [message, body])), self.config.webhook)
        self.log.warning("notify: webhook %s failed for %s: %s: %s",
                         redact_url(self.config.webhook), name, type(exc).__name__, details)

    def _http(self) -> httpx.Client:
        """One client for the thread's life, so consecutive alerts reuse the connection."""
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _head(data: bytes) -> str:
    """The first STDERR_CHARS characters of a command's stderr or a response body, one line."""
    text = data.decode("utf-8", errors="replace").strip()
    text = " ".join(text.split())
    return text[:STDERR_CHARS] + ("…" if len(text) > STDERR_CHARS else "")
