"""A local stand-in for the Geelark Open API, for tests: a real HTTP server on 127.0.0.1.

It checks the authentication headers of every request against the test credentials (answering
the documented 40003 when they are wrong), simulates phones (list with paging, start, stop,
status, ADB, file upload) with the documented envelopes, and plays scripted answers first when a
test queues them (`script(path, ...)`): an envelope dict (e.g. a 40007 on demand), `Http(status)`,
`Delay(seconds)` or `Drop()` (close the connection unanswered); `Http(..., apply=True)` and
`Drop()` simulate the request first, so the state changes although the client never hears of it.
Every request is recorded with its arrival time (`arrivals(path)`).

Automation tasks (Instagram Reels publishing, task query/detail/history/cancel/restart) follow
docs/en/Cloud Phone API/Automation/...: `script_task(lifecycle=[...], ...)` decides how the next
created task goes; by default it waits, runs, then completes with a share link. A task reports
its current status to each task/query or task/detail that names it, then moves one step on; the
last step sticks (a lifecycle ending "in_progress" runs until `release_task`). task/historyRecords
lists tasks newest first and moves nothing. Created tasks are kept in `created_tasks`.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TEST_APP_ID = "TESTAPPID0123456789ABCDE"
TEST_API_KEY = "TestApiKey-9f8e7d6c5b4a39281706"
TEST_TOKEN = "test-bearer-token-42"


@dataclass
class Http:
    """Answer with this HTTP status and raw body instead of an envelope. With `apply` the request
    is simulated first (e.g. a task created although the client sees a 500)."""
    status: int
    body: str = ""
    apply: bool = False


@dataclass
class Drop:
    """Close the connection without answering. With `apply` (the default) the request is
    simulated first: the answer is lost, not the request."""
    apply: bool = True


@dataclass
class Delay:
    """Sleep before answering. With `response` None the request is simulated (applied) first, so a
    client that times out has still changed the state, as a real slow start would."""
    seconds: float
    response: Any = None


@dataclass
class FakePhone:
    id: str
    name: str
    status: int = 2                   # 0 started, 1 starting, 2 shut down, 3 expired
    boot_polls: int = 1               # status queries a start takes before the phone runs
    adb_ready_after: int = 1          # getData calls after setStatus before ADB data appears
    adb: tuple[str, str, str] = ("10.1.2.3", "25219", "8c1da4")
    adb_enabled: bool = False
    _boot_left: int = 0
    _adb_left: int = 0


TASK_STATUSES = {"waiting": 1, "in_progress": 2, "completed": 3, "failed": 4, "cancelled": 7}

# Wording of a few failure codes (our paraphrase of docs' "Task Failure Codes and Reasons").
FAIL_DESCS = {
    20002: "The machine is performing other tasks",
    20003: "Execution timeout, check the publication",
    20100: "No network connection",
    20107: "Unable to load video",
    20116: "The account is not logged in",
    20129: "Device offline",
    20136: "Account blocked",
    20145: "Your account has repeatedly violated community guidelines",
    20204: "Video upload was rejected",
    20221: "Couldn't decode, select another video",
    20257: "Video upload timed out",
    29995: "Currently unavailable; maintenance in progress",
    29996: "Proxy detection failed",
    29997: "Insufficient balance",
    29998: "The cloud phone has been deleted",
    29999: "Unknown error",
}


def _status(value: Any) -> int:
    return value if isinstance(value, int) else TASK_STATUSES[value]


@dataclass
class TaskScript:
    lifecycle: list[int]
    share_link: str | None = None
    fail_code: int | None = None
    fail_desc: str | None = None


@dataclass
class FakeTask:
    id: str
    name: str
    phone_id: str
    caption: str
    videos: list[str]
    schedule_at: int
    remark: str = ""
    need_share_link: bool = False
    status: int = 1
    fail_code: int | None = None
    fail_desc: str = ""
    share_link: str = ""
    queries: int = 0
    restarts: int = 0
    script: TaskScript = field(default_factory=lambda: TaskScript([1, 2, 3]))
    _next: list[int] = field(default_factory=list)

    @property
    def video_url(self) -> str:
        return self.videos[0] if self.videos else ""

    def begin(self, script: TaskScript) -> None:
        self.script = script
        self.status, self._next = script.lifecycle[0], list(script.lifecycle[1:])
        self.fail_code, self.fail_desc, self.share_link = None, "", ""
        self._settle()

    def step(self) -> None:
        """Called after each query that reported the task: on to the next status."""
        self.queries += 1
        if self._next:
            self.status = self._next.pop(0)
            self._settle()

    def _settle(self) -> None:
        if self.status == 3 and not self.share_link:
            link = self.script.share_link
            if link is None and self.need_share_link:
                link = f"https://www.instagram.com/reel/FAKE{self.id[-6:]}/"
            self.share_link = link or ""
        if self.status in (4, 7) and self.script.fail_code is not None:
            self.fail_code = self.script.fail_code
            self.fail_desc = (self.script.fail_desc if self.script.fail_desc is not None
                              else FAIL_DESCS.get(self.fail_code, "some reason"))
        elif self.status == 4 and self.fail_code is None:
            self.fail_code, self.fail_desc = 29999, FAIL_DESCS[29999]

    def item(self, phone_name: str, *, share_link: bool = True) -> dict[str, Any]:
        item: dict[str, Any] = {"id": self.id, "planName": self.name, "taskType": 42,
                                "serialName": phone_name, "envId": self.phone_id,
                                "scheduleAt": self.schedule_at, "status": self.status}
        if self.fail_code is not None and self.status in (4, 7):
            item["failCode"], item["failDesc"] = self.fail_code, self.fail_desc
        if self.status in (3, 4, 7):
            item["cost"] = 60
        if share_link and self.share_link:
            item["shareLink"] = self.share_link
        return item


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    # Arrival, on the wall clock so that it compares with what other processes stamp.
    at: float = field(default_factory=time.time)


@dataclass
class FakeGeelark:
    app_id: str = TEST_APP_ID
    api_key: str = TEST_API_KEY
    token: str = TEST_TOKEN
    phones: dict[str, FakePhone] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    upload_statuses: list[int] = field(default_factory=lambda: [1, 2])
    auth_failures: int = 0
    tasks: dict[str, FakeTask] = field(default_factory=dict)   # automation tasks, by id
    balance_ok: bool = True           # False: task creation answers 41001 Insufficient balance

    def __post_init__(self) -> None:
        self._scripts: dict[str, deque[Any]] = defaultdict(deque)
        self._tasks: dict[str, deque[int]] = {}
        self._task_scripts: deque[TaskScript] = deque()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # ---- test API

    def add_phone(self, phone_id: str, name: str | None = None, **kw: Any) -> FakePhone:
        phone = FakePhone(phone_id, name if name is not None else f"name-{phone_id}", **kw)
        self.phones[phone_id] = phone
        return phone

    def script(self, path: str, *responses: Any) -> None:
        self._scripts[path].extend(responses)

    def script_task(self, lifecycle: Any = ("waiting", "in_progress", "completed"), *,
                    share_link: str | None = None, fail_code: int | None = None,
                    fail_desc: str | None = None) -> None:
        """How the next created task goes (scripts queue up, one per task). `lifecycle`: statuses
        by name or number, one per query. `share_link` None: a made-up link when the creation
        asked for one. `fail_code`/`fail_desc`: reported once it is failed (or cancelled)."""
        self._task_scripts.append(TaskScript([_status(x) for x in lifecycle], share_link,
                                             fail_code, fail_desc))

    def release_task(self, task_id: str, lifecycle: Any = ("completed",), *,
                     share_link: str | None = None, fail_code: int | None = None,
                     fail_desc: str | None = None) -> None:
        """Move a task on: its next statuses become `lifecycle` (the first one at once)."""
        with self._lock:
            task = self.tasks[task_id]
            task.begin(TaskScript([_status(x) for x in lifecycle], share_link, fail_code,
                                  fail_desc))

    @property
    def created_tasks(self) -> list[FakeTask]:
        with self._lock:
            return list(self.tasks.values())

    def count(self, path: str, method: str = "POST") -> int:
        return sum(1 for r in self.requests if r.path == path and r.method == method)

    def bodies(self, path: str) -> list[Any]:
        return [r.body for r in self.requests if r.path == path]

    def arrivals(self, path: str, method: str = "POST") -> list[float]:
        """When each call to `path` arrived, in order: what Geelark's rate limit counts."""
        with self._lock:
            return sorted(r.at for r in self.requests if r.path == path and r.method == method)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeGeelark":
        fake = self

        class Handler(_Handler):
            server_state = fake

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> "FakeGeelark":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- auth

    def auth_error(self, headers: dict[str, str]) -> int:
        """0 when the headers authenticate, else the documented error code."""
        trace_id = headers.get("traceid", "")
        if not trace_id:
            return 40002
        if "authorization" in headers:
            return 0 if headers["authorization"] == f"Bearer {self.token}" else 40003
        ts, nonce = headers.get("ts", ""), headers.get("nonce", "")
        expected = hashlib.sha256(
            f"{self.app_id}{trace_id}{ts}{nonce}{self.api_key}".encode()).hexdigest().upper()
        ok = (headers.get("appid") == self.app_id and nonce == trace_id[:6] and ts.isdigit()
              and headers.get("sign") == expected)
        return 0 if ok else 40003

    # ---- simulation (docs/en/Cloud Phone API/...)

    def simulate(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            handler = getattr(self, "_" + path.removeprefix("/open/v1/").replace("/", "_"), None)
            if handler is None:
                return {"code": 40000, "msg": f"unknown path {path}"}
            return handler(body)

    def _phone_list(self, body: dict[str, Any]) -> dict[str, Any]:
        page, size = int(body.get("page", 1)), int(body.get("pageSize", 10))
        if page < 1 or not 1 <= size <= 100:
            return {"code": 40008, "msg": "pageSize exceeds maximum/minimum limit"}
        phones = [p for p in self.phones.values()
                  if not body.get("serialName") or p.name == body["serialName"]]
        items = [{"id": p.id, "serialName": p.name, "serialNo": p.id[-3:], "status": min(p.status, 2),
                  "group": {"id": "g1", "name": "farm", "remark": ""}, "remark": "",
                  "tags": [{"name": "postdeck"}]}
                 for p in phones[(page - 1) * size: page * size]]
        return _ok({"total": len(phones), "page": page, "pageSize": size, "items": items})

    def _batch(self, ids: list[str], act: Any) -> dict[str, Any]:
        successes, failures = [], []
        for phone_id in ids:
            phone = self.phones.get(phone_id)
            if phone is None:
                failures.append({"code": 42001, "id": phone_id, "msg": "env not found"})
            elif phone.status == 3:
                failures.append({"code": 43004, "id": phone_id, "msg": "env is expired"})
            else:
                successes.append(act(phone))
        return _ok({"totalAmount": len(ids), "successAmount": len(successes),
                    "failAmount": len(failures), "failDetails": failures,
                    "successDetails": successes})

    def _phone_start(self, body: dict[str, Any]) -> dict[str, Any]:
        def start(phone: FakePhone) -> dict[str, Any]:
            if phone.status == 2:
                phone.status, phone._boot_left = 1, phone.boot_polls
            return {"id": phone.id, "url": "https://speedup.example/phone", "chargingMethod":
                    "Per-minute usage"}
        return self._batch(body["ids"], start)

    def _phone_stop(self, body: dict[str, Any]) -> dict[str, Any]:
        def stop(phone: FakePhone) -> dict[str, Any]:
            phone.status, phone.adb_enabled = 2, False
            return {"id": phone.id, "serialName": phone.name, "status": 2}
        return self._batch(body["ids"], stop)

    def _phone_status(self, body: dict[str, Any]) -> dict[str, Any]:
        def status(phone: FakePhone) -> dict[str, Any]:
            reported = phone.status
            if phone.status == 1:
                phone._boot_left -= 1
                if phone._boot_left <= 0:
                    phone.status = 0
            return {"id": phone.id, "serialName": phone.name, "status": reported}
        # Expired phones are reported, not failed, by phone/status.
        successes, failures = [], []
        for phone_id in body["ids"]:
            phone = self.phones.get(phone_id)
            if phone is None:
                failures.append({"code": 42001, "id": phone_id, "msg": "env not found"})
            else:
                successes.append(status(phone))
        return _ok({"totalAmount": len(body["ids"]), "successAmount": len(successes),
                    "failAmount": len(failures), "successDetails": successes,
                    "failDetails": failures})

    def _adb_setStatus(self, body: dict[str, Any]) -> dict[str, Any]:
        for phone_id in body["ids"]:
            phone = self.phones.get(phone_id)
            if phone is not None and phone.status == 0:
                phone.adb_enabled = bool(body["open"])
                phone._adb_left = phone.adb_ready_after
        return {"code": 0, "msg": "success"}

    def _adb_getData(self, body: dict[str, Any]) -> dict[str, Any]:
        items = []
        for phone_id in body["ids"]:
            phone = self.phones.get(phone_id)
            empty = {"id": phone_id, "ip": "", "port": "", "pwd": ""}
            if phone is None:
                items.append({**empty, "code": 42001})
            elif phone.status != 0:
                items.append({**empty, "code": 42002})
            elif not phone.adb_enabled or phone._adb_left > 0:
                phone._adb_left -= 1
                items.append({**empty, "code": 49001})
            else:
                ip, port, pwd = phone.adb
                items.append({"code": 0, "id": phone_id, "ip": ip, "port": port, "pwd": pwd})
        return _ok({"items": items})

    def _upload_getUrl(self, body: dict[str, Any]) -> dict[str, Any]:
        file_type = body.get("fileType")
        if file_type not in ("mp4", "jpg", "png", "webm"):
            return {"code": 40004, "msg": "Parameter validation failed"}
        n = next(self._ids)
        return _ok({"uploadUrl": f"{self.url}/oss/{n}.{file_type}?Expires=1&Signature=abc",
                    "resourceUrl": f"https://material.example/open-upload/{n}.{file_type}"})

    def _phone_uploadFile(self, body: dict[str, Any]) -> dict[str, Any]:
        phone = self.phones.get(body.get("id", ""))
        if phone is None:
            return {"code": 42001, "msg": "Cloud phone does not exist"}
        if phone.status != 0:
            return {"code": 42002, "msg": "Cloud phone is not running"}
        name = body["fileUrl"].rsplit("/", 1)[-1]
        if name not in self.uploads:
            return {"code": 40004, "msg": "fileUrl was never uploaded"}
        task_id = str(1850726441252569088 + next(self._ids))
        self._tasks[task_id] = deque(self.upload_statuses)
        return _ok({"taskId": task_id})

    def _phone_uploadFile_result(self, body: dict[str, Any]) -> dict[str, Any]:
        statuses = self._tasks.get(body.get("taskId", ""))
        if statuses is None:
            return _ok({"status": 0})
        status = statuses.popleft() if len(statuses) > 1 else statuses[0]
        return _ok({"status": status})

    # ---- automation tasks

    def _rpa_task_instagramPubReels(self, body: dict[str, Any]) -> dict[str, Any]:
        name, remark = body.get("name", ""), body.get("remark", "")
        caption, videos, when = body.get("description"), body.get("video"), body.get("scheduleAt")
        if (not isinstance(caption, str) or len(caption) > 2200 or not isinstance(when, int)
                or not isinstance(videos, list) or not 1 <= len(videos) <= 10
                or not all(isinstance(v, str) and v for v in videos)
                or not isinstance(name, str) or len(name) > 128
                or not isinstance(remark, str) or len(remark) > 200):
            return {"code": 40004, "msg": "Parameter validation failed"}
        phone = self.phones.get(str(body.get("id", "")))
        if phone is None:
            return {"code": 42001, "msg": "Cloud phone not found"}
        if phone.status == 3:
            return {"code": 43004, "msg": "Cloud phone has expired"}
        if not self.balance_ok:
            return {"code": 41001, "msg": "Insufficient balance"}
        task = FakeTask(str(558017255909123564 + next(self._ids)), name, phone.id, caption,
                        list(videos), when, remark, bool(body.get("needShareLink")))
        task.begin(self._task_scripts.popleft() if self._task_scripts else TaskScript([1, 2, 3]))
        self.tasks[task.id] = task
        return _ok({"taskId": task.id})

    def _phone_name(self, task: FakeTask) -> str:
        phone = self.phones.get(task.phone_id)
        return phone.name if phone else ""

    def _task_query(self, body: dict[str, Any]) -> dict[str, Any]:
        ids = body.get("ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            return {"code": 40004, "msg": "Parameter validation failed"}
        items = []
        for task_id in ids:
            task = self.tasks.get(str(task_id))
            if task is not None:
                items.append(task.item(self._phone_name(task)))
                task.step()
        return _ok({"total": len(items), "items": items})

    def _task_detail(self, body: dict[str, Any]) -> dict[str, Any]:
        task = self.tasks.get(str(body.get("id", "")))
        if task is None:
            return {"code": 48002, "msg": "Task does not exist"}
        # Task_Detail.md documents no shareLink.
        data = task.item(self._phone_name(task), share_link=False)
        finished = task.status in (3, 4, 7)
        data.update({"resultImages": ["https://material.example/result.jpg"] if finished else [],
                     "logs": ["[2025-06-04 02:38:00 025] Waiting for execution"] if finished
                     else [], "searchAfter": [1749004889853], "logContinue": False})
        task.step()
        return _ok(data)

    def _task_historyRecords(self, body: dict[str, Any]) -> dict[str, Any]:
        size = int(body.get("size", 10))
        if not 1 <= size <= 100:
            return {"code": 40008, "msg": "pageSize exceeds maximum/minimum limit"}
        tasks = list(reversed(self.tasks.values()))          # newest first
        if body.get("ids"):
            wanted = {str(i) for i in body["ids"]}
            tasks = [t for t in tasks if t.id in wanted]
        total = len(tasks)
        if body.get("lastId"):
            ids = [t.id for t in tasks]
            tasks = tasks[ids.index(body["lastId"]) + 1:] if body["lastId"] in ids else []
        # Batch_query_tasks.md documents no shareLink either.
        items = [t.item(self._phone_name(t), share_link=False) for t in tasks[:size]]
        return _ok({"total": total, "items": items})

    def _task_batch(self, body: dict[str, Any], allowed: tuple[int, ...],
                    act: Any) -> dict[str, Any]:
        ids = body.get("ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 100:
            return {"code": 40004, "msg": "Parameter validation failed"}
        failures = []
        for task_id in ids:
            task = self.tasks.get(str(task_id))
            if task is None:
                failures.append({"id": task_id, "code": 48002, "msg": "task does not exist"})
            elif task.status not in allowed:
                failures.append({"id": task_id, "code": 48001, "msg":
                                 "the current task status does not allow the operation"})
            else:
                act(task)
        data = {"totalAmount": len(ids), "successAmount": len(ids) - len(failures),
                "failAmount": len(failures)}
        if failures:
            data["failDetails"] = failures
        code = 0 if not failures else 40009 if len(failures) == len(ids) else 40006
        return {"code": code, "msg": "success" if code == 0 else "partial success"
                if code == 40006 else "process all failure", "data": data}

    def _task_cancel(self, body: dict[str, Any]) -> dict[str, Any]:
        def cancel(task: FakeTask) -> None:
            task.status, task._next = 7, []
        return self._task_batch(body, (1, 2), cancel)

    def _task_restart(self, body: dict[str, Any]) -> dict[str, Any]:
        def restart(task: FakeTask) -> None:
            task.restarts += 1
            task.begin(self._task_scripts.popleft() if self._task_scripts
                       else TaskScript([1, 2, 3]))
        return self._task_batch(body, (4, 7), restart)


def _ok(data: Any) -> dict[str, Any]:
    return {"code": 0, "msg": "success", "data": data}


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops the connections of a burst of worker processes (SYN retried
    # a second later, or reset): a real Geelark accepts them.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: FakeGeelark

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:   # keep test output clean
        pass

    def _read(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True   # the client gave up (timeout)

    def do_POST(self) -> None:
        fake = self.server_state
        raw = self._read()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = None
        with fake._lock:
            fake.requests.append(Recorded("POST", self.path, headers, body))
            scripted = fake._scripts[self.path].popleft() if fake._scripts[self.path] else None
        code = fake.auth_error(headers)
        if code:
            fake.auth_failures += 1
            msg = "traceId is empty" if code == 40002 else "Signature verification failed"
            return self._envelope({"code": code, "msg": msg}, headers)
        if body is None:
            return self._envelope({"code": 40001, "msg": "Failed to read request body"}, headers)
        self._play(scripted, body, headers)

    def _play(self, scripted: Any, body: Any, headers: dict[str, str]) -> None:
        if isinstance(scripted, Delay):
            envelope = scripted.response
            if envelope is None:
                envelope = self.server_state.simulate(self.path, body)
            time.sleep(scripted.seconds)
            return self._play(envelope, body, headers)
        if isinstance(scripted, Drop):
            if scripted.apply:
                self.server_state.simulate(self.path, body)
            self.close_connection = True      # no answer: the client sees the connection close
            return
        if isinstance(scripted, Http):
            if scripted.apply:
                self.server_state.simulate(self.path, body)
            return self._send(scripted.status, scripted.body.encode(), "text/plain")
        if scripted is None:
            scripted = self.server_state.simulate(self.path, body)
        self._envelope(scripted, headers)

    def _envelope(self, envelope: dict[str, Any], headers: dict[str, str]) -> None:
        envelope = {"traceId": headers.get("traceid", "").replace("-", "").upper(), **envelope}
        self._send(200, json.dumps(envelope).encode())

    def do_PUT(self) -> None:
        fake = self.server_state
        raw = self._read()
        headers = {k.lower(): v for k, v in self.headers.items()}
        with fake._lock:
            fake.requests.append(Recorded("PUT", self.path.split("?")[0], headers, raw))
        extra = sorted(set(headers) - {"host", "content-length"})
        if not self.path.startswith("/oss/") or extra:
            # What the object store answers when the pre-signed request carries more headers.
            return self._send(403, f"SignatureDoesNotMatch: unexpected headers {extra}".encode(),
                              "application/xml")
        fake.uploads[self.path.split("?")[0].rsplit("/", 1)[-1]] = raw
        self._send(200, b"")
