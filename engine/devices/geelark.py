"""Geelark Open API client and the `GeelarkPhones` provider.

Reference: the official docs in github.com/geelark-tech/geelark-openapi (docs/en/...) and the
request instructions at doc.geelark.com (key and token verification, global error codes).

Every call is a POST with a JSON body to https://openapi.geelark.com/open/v1/..., answered with
the envelope `{traceId, code, msg, data}`; `code` 0 is success. Batch calls answer per item in
`data.failDetails`, which this module hands back (`BatchResult.failed`) rather than hiding.

Reads are retried on transport errors and 5xx; writes (start, stop, uploadFile, task creation and
cancellation) are not, because a timed-out start may still have started the phone (the caller
checks status instead) and a timed-out task creation may still have created the task (the caller
looks it up by name, `find_tasks_by_name`).

Geelark's own publishing automation ("RPA tasks", docs/en/Cloud Phone API/Automation/...) is driven
by `create_reels_task`, `query_tasks`, `task_detail`, `find_tasks_by_name`, `cancel_tasks` and
`restart_tasks`; `classify_task_failure` maps the failure codes a task reports into postdeck's
error categories.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import stat
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

import httpx

from engine import errors
from engine.errors import ACCOUNT, CONTENT, INFRASTRUCTURE, OUTCOME_UNKNOWN, UNKNOWN, PostError

log = logging.getLogger("postdeck.geelark")

DEFAULT_BASE_URL = "https://openapi.geelark.com"
DEFAULT_CREDENTIALS_PATH = Path("~/.config/postdeck/geelark.json")

# The docs allow 200 calls per minute per API (and 24,000 per hour, which 200/min can never reach);
# we stay a little under so clock skew between us and Geelark never trips 40007.
API_CALLS_PER_MINUTE = 190
LOCK_SECONDS = 2 * 60 * 60  # 40014: "locked for two hours"

# Endpoints (docs/en/Cloud Phone API/...).
PHONE_LIST = "/open/v1/phone/list"
PHONE_START = "/open/v1/phone/start"
PHONE_STOP = "/open/v1/phone/stop"
PHONE_STATUS = "/open/v1/phone/status"
ADB_SET_STATUS = "/open/v1/adb/setStatus"
ADB_GET_DATA = "/open/v1/adb/getData"
UPLOAD_GET_URL = "/open/v1/upload/getUrl"
PHONE_UPLOAD_FILE = "/open/v1/phone/uploadFile"
PHONE_UPLOAD_RESULT = "/open/v1/phone/uploadFile/result"
# Automation tasks: docs/en/Cloud Phone API/Automation/Instagram/Instagram_publish_Reels_video.md
# and .../Automation/Task Management/ (Query_task, Task_Detail, Batch_query_tasks, Cancel_task,
# Retry_Task).
TASK_INSTAGRAM_REELS = "/open/v1/rpa/task/instagramPubReels"
TASK_QUERY = "/open/v1/task/query"
TASK_DETAIL = "/open/v1/task/detail"
TASK_HISTORY = "/open/v1/task/historyRecords"
TASK_CANCEL = "/open/v1/task/cancel"
TASK_RESTART = "/open/v1/task/restart"

MAX_PAGE_SIZE = 100       # phone/list
MAX_BATCH_IDS = 100       # phone/status allows 100 (start/stop/adb allow 200): use the smaller
UPLOAD_FILE_TYPES = frozenset(
    {"jpg", "jpeg", "png", "gif", "bmp", "webp", "heif", "heic", "mp4", "webm", "xml", "apk", "xapk"})
MAX_TASK_IDS = 100        # task/query, task/historyRecords and task/cancel take 100 ids at most
MAX_TASK_PAGE_SIZE = 100  # task/historyRecords `size`
# Limits of instagramPubReels.
MAX_TASK_NAME = 128
MAX_TASK_REMARK = 200
MAX_REELS_CAPTION = 2200
MAX_REELS_VIDEOS = 10

# Envelope codes that carry per-item results in `data` (partial / complete batch failure).
PARTIAL_SUCCESS = 40006
BATCH_FAILED = 40009


class PhoneState(IntEnum):
    """`status` of phone/status (phone/list uses the first three)."""
    STARTED = 0
    STARTING = 1
    SHUT_DOWN = 2
    EXPIRED = 3


class TaskStatus(IntEnum):
    """`status` of an automation task (task/query, task/detail, task/historyRecords)."""
    WAITING = 1
    IN_PROGRESS = 2
    COMPLETED = 3
    FAILED = 4
    CANCELLED = 7

    @property
    def terminal(self) -> bool:
        return self in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class UploadStatus(IntEnum):
    """`status` of phone/uploadFile/result."""
    NOT_FOUND = 0   # "failed to retrieve": not known (yet), or older than one hour
    UPLOADING = 1
    SUCCESS = 2
    FAILED = 3


# --------------------------------------------------------------------------------------- errors

class GeelarkError(PostError):
    """Any failure talking to Geelark. Always `infrastructure`: the phone farm, not the account or
    the video, is at fault, so the engine retries the job within `max_attempts`."""

    default_type = "geelark_error"

    def __init__(self, message: str, *, code: int | None = None, endpoint: str | None = None,
                 trace_id: str | None = None, error_type: str | None = None):
        super().__init__(message, error_type or self.default_type, INFRASTRUCTURE)
        self.code = code
        self.endpoint = endpoint
        self.trace_id = trace_id


class GeelarkCredentialsError(GeelarkError):
    default_type = "geelark_credentials"


class GeelarkAuthError(GeelarkError):
    default_type = "geelark_auth"


class GeelarkRateLimited(GeelarkError):
    """40007/40017: over the per-minute limit; lifted at the next minute boundary."""
    default_type = "geelark_rate_limited"

    def __init__(self, message: str, *, retry_after: float = 60.0, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class GeelarkLocked(GeelarkError):
    """40014: the hourly limit was exceeded and the API is locked for two hours. Deliberately not a
    GeelarkRateLimited: callers must stop everything, not wait a minute and hammer on."""
    default_type = "geelark_locked"

    def __init__(self, message: str, *, retry_after: float = LOCK_SECONDS, **kw: Any):
        super().__init__(message, **kw)
        self.retry_after = retry_after


class GeelarkNotFound(GeelarkError):
    default_type = "phone_not_found"


class GeelarkExpired(GeelarkError):
    default_type = "phone_expired"


class GeelarkConcurrencyLimit(GeelarkError):
    default_type = "geelark_concurrency_limit"


class GeelarkDailyStartLimit(GeelarkError):
    default_type = "geelark_daily_start_limit"


class GeelarkNotRunning(GeelarkError):
    default_type = "phone_not_running"


class GeelarkAdbNotReady(GeelarkError):
    """ADB is not enabled (yet): enabling is asynchronous, callers keep polling."""
    default_type = "adb_not_ready"


class GeelarkAdbUnsupported(GeelarkError):
    default_type = "adb_unsupported"


class GeelarkUnavailable(GeelarkError):
    """Transport error, timeout or 5xx. `maybe_applied` is True for a write: the request may have
    reached Geelark, so the caller must look at the state before trying again."""
    default_type = "geelark_unavailable"

    def __init__(self, message: str, *, maybe_applied: bool = False, **kw: Any):
        super().__init__(message, **kw)
        self.maybe_applied = maybe_applied


class GeelarkStartTimeout(GeelarkError):
    default_type = "phone_start_failed"


class GeelarkUploadFailed(GeelarkError):
    default_type = "geelark_upload_failed"


class GeelarkTaskTimeout(GeelarkError):
    """An automation task did not finish in time. It may still run (and post) later: the caller
    cancels it (`cancel_tasks`) and looks at it again before deciding anything. `task` is the last
    TaskInfo seen."""
    default_type = "geelark_task_timeout"

    def __init__(self, message: str, *, task: "TaskInfo | None" = None, **kw: Any):
        super().__init__(message, **kw)
        self.task = task


class GeelarkTaskSearchIncomplete(GeelarkError):
    """`find_tasks_by_name` stopped at `max_pages` before the end of the task history, so a task
    of that name may exist that was not seen."""
    default_type = "geelark_task_search_incomplete"


# Codes from docs/en/Error Codes/Cloud_Phone_Error_Codes.md and the per-endpoint pages.
_CODE_ERRORS: dict[int, type[GeelarkError]] = {
    40002: GeelarkAuthError,         # traceId empty
    40003: GeelarkAuthError,         # signature verification failed
    40015: GeelarkAuthError,         # insufficient permissions
    40016: GeelarkAuthError,         # IP not in whitelist
    40007: GeelarkRateLimited,       # request rate limited, lifted next minute
    40017: GeelarkRateLimited,       # too many requests, try again later
    40014: GeelarkLocked,            # hourly limit exceeded, locked for two hours
    40005: GeelarkNotFound,          # resource not found
    42001: GeelarkNotFound,          # cloud phone not found
    47004: GeelarkNotFound,          # related device does not exist
    43004: GeelarkExpired,           # cloud phone has expired
    46001: GeelarkExpired,           # plan has expired
    47003: GeelarkExpired,           # related device has expired
    47001: GeelarkConcurrencyLimit,  # device concurrency limit reached
    47002: GeelarkConcurrencyLimit,  # all devices in use / resources insufficient
    43008: GeelarkDailyStartLimit,   # daily cloud phone open limit reached (UTC)
    42002: GeelarkNotRunning,        # cloud phone is not running
    49001: GeelarkAdbNotReady,       # ADB is not enabled
    49002: GeelarkAdbUnsupported,    # device model does not support ADB
}
RATE_LIMIT_CODES = frozenset(c for c, e in _CODE_ERRORS.items() if e is GeelarkRateLimited)

# Codes that need no class of their own but a precise error type (Task section of
# docs/en/Error Codes/Cloud_Phone_Error_Codes.md, and the per-item codes of Cancel_task.md and
# Retry_Task.md).
_CODE_TYPES: dict[int, str] = {
    41000: "geelark_balance",        # insufficient task points
    41001: "geelark_balance",        # insufficient balance
    43039: "geelark_maintenance",    # currently unavailable, maintenance in progress
    48000: "task_retry_limit",       # a task may be retried 5 times at most
    48001: "task_state_conflict",    # status does not allow the operation (already finished)
    48002: "task_not_found",
    48003: "material_expired",       # the task's (temporary) material has expired
}


def error_for_code(code: int, msg: str, **context: Any) -> GeelarkError:
    """The typed error for a Geelark result code (envelope or per-item)."""
    cls = _CODE_ERRORS.get(code, GeelarkError)
    where = f" ({context['endpoint']})" if context.get("endpoint") else ""
    if cls is GeelarkError and code in _CODE_TYPES:
        context.setdefault("error_type", _CODE_TYPES[code])
    return cls(f"Geelark error {code}: {msg}{where}", code=code, **context)


# ------------------------------------------------------------------------ task failure classes
#
# The failure codes an automation task reports in `failCode`/`failDesc` ("Task Failure Codes and
# Reasons" in docs/en/Cloud Phone API/Automation/Task Management/Query_task.md; the same table is in
# Task_Detail.md and Batch_query_tasks.md). The table is shared by every platform's tasks, TikTok
# wording included; only the codes that can end an Instagram Reels posting are grouped below, the
# rest are UNKNOWN.

GEELARK_BALANCE = "geelark_balance"
PHONE_DELETED = "phone_deleted"
PHONE_EXPIRED = "phone_expired"
TASK_FAILED = "geelark_task_failed"
# Error types after which no further task should be created: the balance (the whole team) or the
# phone (every job of that phone) is gone, and retrying only fails again. GeelarkExpired carries
# `phone_expired`, and an envelope 41000/41001 at creation carries `geelark_balance`, so these
# types mean the same whether the task failed or could not be created.
RUN_STOPPING_TYPES = errors.RUN_STOPPING_TYPES     # GEELARK_BALANCE, PHONE_DELETED, PHONE_EXPIRED


def _codes(*spans: int | tuple[int, int]) -> list[int]:
    out: list[int] = []
    for span in spans:
        out.extend(range(span[0], span[1] + 1) if isinstance(span, tuple) else [span])
    return out


_TASK_FAILURES: dict[int, tuple[str, str]] = {}
for _category, _type, _spans in [
    # The account cannot post. Types from engine.errors.BLOCKING_TYPES, so the account is blocked.
    (ACCOUNT, "logged_out", (20116, 20128, 20130, 20144, 20324)),   # not logged in / bad password
    (ACCOUNT, "banned", (20136,)),                                  # account blocked
    (ACCOUNT, "suspended", (20137,                                  # blocked, can appeal
                            20145,                                  # repeated guideline violations
                            20264)),                                # temporarily restricted
    (ACCOUNT, "verification", (20133, 20138, 20139, 20140, 20142, (20333, 20334))),  # captchas
    (ACCOUNT, "login_check_failed", (20115,)),
    # The video itself.
    (CONTENT, "corrupted_video", (20107,                            # unable to load video
                                  20221)),                          # could not decode
    (CONTENT, "upload_rejected", (20204,)),                         # video upload was rejected
    (CONTENT, "video_missing", (20220,)),                           # download link is empty
    (CONTENT, "audio_rejected", (20222, 20244, 20252, 20253)),      # sound unavailable/removed
    # The farm, the network or Geelark: worth another attempt.
    (INFRASTRUCTURE, "phone_busy", (20002,)),                       # phone runs another task
    (INFRASTRUCTURE, "task_cancelled", (20005, 20006)),
    (INFRASTRUCTURE, "network", (20100, 20108, 20134, 20141, 20262, 20502)),
    (INFRASTRUCTURE, "proxy_failed", (20101, 20109, 20110, 20113, 20114, 20118, 20119, 20123,
                                      29996)),
    (INFRASTRUCTURE, "phone_start_failed", (20102, 20103)),
    (INFRASTRUCTURE, "device_offline", (20129,)),
    (INFRASTRUCTURE, "app_setup_failed", (20007, 20008, 20105, 20111, 20112, 20122)),
    (INFRASTRUCTURE, "video_download_failed", (20200, 20208)),
    (INFRASTRUCTURE, "upload_failed", (20201, 20202, 20203)),
    (INFRASTRUCTURE, "upload_timeout", (20257,)),
    (INFRASTRUCTURE, "element_not_found", ((20205, 20207), (20209, 20215), 20242, 20258)),
    (INFRASTRUCTURE, "timeout", (20124, 20132, 20230, 20245)),
    (INFRASTRUCTURE, "geelark_maintenance", (29995,)),
    # Run-stopping (see RUN_STOPPING_TYPES).
    (INFRASTRUCTURE, GEELARK_BALANCE, (29997,)),
    (INFRASTRUCTURE, PHONE_DELETED, (29998,)),
    # "Execution timeout. Please view the publication": the post may be public. Never retried
    # automatically (engine.errors: a retry could double-post).
    (UNKNOWN, OUTCOME_UNKNOWN, (20003,)),
    # Not public, but kept as a draft on the phone: a person decides.
    (UNKNOWN, "saved_to_drafts", (20251,)),
]:
    for _code in _codes(*_spans):
        _TASK_FAILURES[_code] = (_category, _type)
del _category, _type, _spans, _code

# For codes the docs do not list (yet): the message, matched case-insensitively, most specific
# first. Kept to the phrases of the docs' own table.
_TASK_FAILURE_PHRASES: list[tuple[str, tuple[str, str]]] = [
    ("insufficient balance", (INFRASTRUCTURE, GEELARK_BALANCE)),
    ("has been deleted", (INFRASTRUCTURE, PHONE_DELETED)),
    ("not logged in", (ACCOUNT, "logged_out")),
    ("repeatedly violated", (ACCOUNT, "suspended")),
    ("temporarily restricted", (ACCOUNT, "suspended")),
    ("account has been blocked", (ACCOUNT, "suspended")),
    ("account blocked", (ACCOUNT, "banned")),
    ("decode", (CONTENT, "corrupted_video")),
    ("unable to load video", (CONTENT, "corrupted_video")),
    ("upload was rejected", (CONTENT, "upload_rejected")),
    ("performing other tasks", (INFRASTRUCTURE, "phone_busy")),
    ("device offline", (INFRASTRUCTURE, "device_offline")),
    ("maintenance", (INFRASTRUCTURE, "geelark_maintenance")),
    ("proxy", (INFRASTRUCTURE, "proxy_failed")),
    ("no network", (INFRASTRUCTURE, "network")),
]


def classify_task_failure(fail_code: int | None, fail_desc: str | None = None) -> tuple[str, str]:
    """(category, error_type) of a failed automation task, from its `failCode` (and, for a code
    the docs do not list, its `failDesc`). Unrecognised failures are (UNKNOWN,
    "geelark_task_failed"); 29999 "Unknown error" is one of them."""
    try:
        code = int(fail_code) if fail_code is not None else None
    except (TypeError, ValueError):
        code = None
    if code is not None and code in _TASK_FAILURES:
        return _TASK_FAILURES[code]
    desc = (fail_desc or "").lower()
    if code != 29999:
        for phrase, classification in _TASK_FAILURE_PHRASES:
            if phrase in desc:
                return classification
    return (UNKNOWN, TASK_FAILED)


class GeelarkTaskFailed(PostError):
    """An automation task ended failed (or cancelled). Unlike GeelarkError its category is not
    always `infrastructure`: it is what `classify_task_failure` makes of the task's failure code."""

    def __init__(self, task: "TaskInfo"):
        category, error_type = task.classification() or (UNKNOWN, TASK_FAILED)
        what = "was cancelled" if task.status == TaskStatus.CANCELLED else "failed"
        reason = f": {task.fail_code} {task.fail_desc}".rstrip() if task.fail_code else (
            f": {task.fail_desc}" if task.fail_desc else "")
        super().__init__(f"Geelark task {task.id} ({task.name or 'unnamed'}) {what}{reason}",
                         error_type, category)
        self.task = task
        self.code = task.fail_code

    @property
    def run_stopping(self) -> bool:
        return self.error_type in RUN_STOPPING_TYPES


# ---------------------------------------------------------------------------------- credentials

@dataclass(frozen=True)
class KeyAuth:
    """Key verification: appId, traceId, ts, nonce and sign headers, signed fresh per request."""
    app_id: str
    api_key: str = field(repr=False)

    def headers(self, trace_id: str, ts_ms: int) -> dict[str, str]:
        nonce = trace_id[:6]
        ts = str(ts_ms)
        return {"appId": self.app_id, "traceId": trace_id, "ts": ts, "nonce": nonce,
                "sign": sign(self.app_id, trace_id, ts, nonce, self.api_key)}

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,)


@dataclass(frozen=True)
class TokenAuth:
    """Token verification: only `traceId` and `Authorization: Bearer <token>`."""
    token: str = field(repr=False)

    def headers(self, trace_id: str, ts_ms: int) -> dict[str, str]:
        return {"traceId": trace_id, "Authorization": f"Bearer {self.token}"}

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


Auth = KeyAuth | TokenAuth


def sign(app_id: str, trace_id: str, ts: str, nonce: str, api_key: str) -> str:
    """Uppercase hex SHA-256 of appId + traceId + ts + nonce + apiKey."""
    return hashlib.sha256(f"{app_id}{trace_id}{ts}{nonce}{api_key}".encode()).hexdigest().upper()


def load_credentials(env: Mapping[str, str] | None = None) -> Auth:
    """Credentials from GEELARK_APP_ID + GEELARK_API_KEY (or GEELARK_TOKEN), else from the JSON
    file named by GEELARK_CREDENTIALS_FILE, else ~/.config/postdeck/geelark.json. Never from the
    command line: argv is visible to every user of the machine."""
    env = os.environ if env is None else env
    app_id, api_key = env.get("GEELARK_APP_ID", ""), env.get("GEELARK_API_KEY", "")
    if app_id and api_key:
        return KeyAuth(app_id, api_key)
    if app_id or api_key:
        missing = "GEELARK_API_KEY" if app_id else "GEELARK_APP_ID"
        raise GeelarkCredentialsError(f"Geelark credentials: {missing} is not set "
                                      "(set both GEELARK_APP_ID and GEELARK_API_KEY)")
    if env.get("GEELARK_TOKEN"):
        return TokenAuth(env["GEELARK_TOKEN"])
    explicit = env.get("GEELARK_CREDENTIALS_FILE")
    path = Path(explicit or DEFAULT_CREDENTIALS_PATH).expanduser()
    if not path.exists():
        raise GeelarkCredentialsError(
            f"Geelark credentials not found: {path} does not exist. Set GEELARK_APP_ID and "
            f"GEELARK_API_KEY, or write {{\"app_id\": ..., \"api_key\": ...}} to {path} "
            f"and run `chmod 600 {path}`")
    return _read_credentials_file(path)


def _read_credentials_file(path: Path) -> Auth:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise GeelarkCredentialsError(
            f"Refusing to read Geelark credentials from {path}: its mode is {mode:04o}, so other "
            f"users can read it. Run `chmod 600 {path}`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        # The parser's message may quote file content (the key): name only the error class.
        raise GeelarkCredentialsError(
            f"Cannot read Geelark credentials from {path}: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise GeelarkCredentialsError(f"Geelark credentials in {path} must be a JSON object")
    app_id = data.get("app_id") or data.get("appId")
    api_key = data.get("api_key") or data.get("apiKey")
    if app_id and api_key:
        return KeyAuth(str(app_id), str(api_key))
    if data.get("token"):
        return TokenAuth(str(data["token"]))
    raise GeelarkCredentialsError(
        f"Geelark credentials in {path} need \"app_id\" and \"api_key\" (or \"token\")")


# --------------------------------------------------------------------------------- rate limiter

class Limiter(Protocol):
    """What GeelarkClient needs of a limiter: `RateLimiter` (one process) or
    `api_budget.HostApiBudget` (every process on the host)."""

    def acquire(self, key: str) -> float: ...
    def pause(self, key: str, seconds: float) -> None: ...
    def lock_out(self, seconds: float) -> None: ...
    def locked_for(self) -> float: ...


class RateLimiter:
    """Sliding-window limiter, one window per endpoint, shared by every thread of the process."""

    def __init__(self, max_calls: int = API_CALLS_PER_MINUTE, window: float = 60.0, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.max_calls = max_calls
        self.window = window
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._calls: dict[str, deque[float]] = defaultdict(deque)
        self._paused_until: dict[str, float] = {}
        self._locked_until = 0.0

    def acquire(self, key: str) -> float:
        """Block until a call to `key` is allowed, count it, and return the instant counted."""
        while True:
            with self._lock:
                now = self.clock()
                calls = self._calls[key]
                while calls and calls[0] <= now - self.window:
                    calls.popleft()
                wait = self._paused_until.get(key, 0.0) - now
                if len(calls) >= self.max_calls:
                    wait = max(wait, calls[0] + self.window - now)
                if wait <= 0:
                    calls.append(now)
                    return now
            # Sleep outside the lock so other endpoints (and the clock) move on.
            self.sleep(wait)

    def pause(self, key: str, seconds: float) -> None:
        """Hold every caller of `key` back for `seconds` (Geelark said we are over the limit)."""
        with self._lock:
            until = self.clock() + seconds
            self._paused_until[key] = max(self._paused_until.get(key, 0.0), until)

    def lock_out(self, seconds: float) -> None:
        """Geelark locked the API (40014): every call fails fast until then, instead of blocking
        threads for hours or prolonging the lock."""
        with self._lock:
            self._locked_until = max(self._locked_until, self.clock() + seconds)

    def locked_for(self) -> float:
        """Seconds the API stays locked (0 when it is not)."""
        with self._lock:
            return max(0.0, self._locked_until - self.clock())


_shared_limiter = RateLimiter()


def shared_limiter() -> RateLimiter:
    """The process-wide limiter every client uses unless given one."""
    return _shared_limiter


# -------------------------------------------------------------------------------------- results

@dataclass(frozen=True)
class Phone:
    id: str
    name: str
    serial_no: str = ""
    status: PhoneState | None = None
    group: str = ""
    remark: str = ""
    tags: tuple[str, ...] = ()

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> "Phone":
        status = item.get("status")
        return cls(
            id=str(item["id"]),
            name=str(item.get("serialName") or ""),
            serial_no=str(item.get("serialNo") or ""),
            status=PhoneState(status) if status in tuple(PhoneState) else None,
            group=str((item.get("group") or {}).get("name") or ""),
            remark=str(item.get("remark") or ""),
            tags=tuple(str(t.get("name")) for t in item.get("tags") or () if isinstance(t, dict)),
        )


@dataclass(frozen=True)
class AdbInfo:
    host: str
    port: int
    password: str = field(repr=False)   # the glogin password: never printed


@dataclass
class BatchResult:
    """Per-item outcome of a batch call: `ok` ids (with their details) and `failed` ids with the
    (code, msg) Geelark gave for each."""
    ok: list[str] = field(default_factory=list)
    failed: dict[str, tuple[int, str]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def all_ok(self) -> bool:
        return not self.failed

    def error_for(self, item_id: str) -> GeelarkError | None:
        if item_id in self.failed:
            code, msg = self.failed[item_id]
            return error_for_code(code, f"{msg} (id {item_id})")
        if item_id not in self.ok:
            return GeelarkError(f"Geelark returned no result for id {item_id}")
        return None

    def raise_for(self, item_id: str) -> None:
        error = self.error_for(item_id)
        if error is not None:
            raise error

    def merge(self, other: "BatchResult") -> None:
        self.ok.extend(other.ok)
        self.failed.update(other.failed)
        self.details.update(other.details)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class TaskInfo:
    """One automation task as task/query, task/detail or task/historyRecords report it, parsed
    leniently: missing fields are empty, an unknown `status` is None (not finished, as far as we
    know). `share_link` is only filled by task/query (task/detail and task/historyRecords do not
    document it); `logs` and `result_images` only by task/detail."""
    id: str
    name: str = ""                       # planName: the `name` given at creation
    status: TaskStatus | None = None
    fail_code: int | None = None
    fail_desc: str = ""
    share_link: str = ""
    phone_id: str = ""                   # envId
    phone_name: str = ""                 # serialName
    task_type: int | None = None
    schedule_at: int | None = None       # seconds
    cost: int | None = None              # seconds it took to complete or fail
    result_images: tuple[str, ...] = ()
    logs: tuple[str, ...] = ()
    raw_status: Any = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> "TaskInfo":
        raw_status = item.get("status")
        status = _int_or_none(raw_status)
        fail_code = _int_or_none(item.get("failCode"))
        return cls(
            id=str(item.get("id") or item.get("taskId") or ""),
            name=str(item.get("planName") or item.get("name") or ""),
            status=TaskStatus(status) if status in tuple(TaskStatus) else None,
            fail_code=fail_code or None,     # 0 (or absent) means no failure
            fail_desc=str(item.get("failDesc") or ""),
            share_link=str(item.get("shareLink") or ""),
            phone_id=str(item.get("envId") or ""),
            phone_name=str(item.get("serialName") or ""),
            task_type=_int_or_none(item.get("taskType")),
            schedule_at=_int_or_none(item.get("scheduleAt")),
            cost=_int_or_none(item.get("cost")),
            result_images=tuple(str(i) for i in item.get("resultImages") or () if i),
            logs=tuple(str(line) for line in item.get("logs") or ()),
            raw_status=raw_status,
        )

    @property
    def finished(self) -> bool:
        return self.status is not None and self.status.terminal

    @property
    def succeeded(self) -> bool:
        return self.status == TaskStatus.COMPLETED

    def classification(self) -> tuple[str, str] | None:
        """(category, error_type) of a failed or cancelled task; None while it runs or when it
        completed."""
        if self.status == TaskStatus.FAILED:
            return classify_task_failure(self.fail_code, self.fail_desc)
        if self.status == TaskStatus.CANCELLED:
            if self.fail_code:
                return classify_task_failure(self.fail_code, self.fail_desc)
            return (INFRASTRUCTURE, "task_cancelled")
        return None

    def error(self) -> GeelarkTaskFailed | None:
        """The PostError of a failed or cancelled task (None otherwise)."""
        return GeelarkTaskFailed(self) if self.classification() is not None else None


def _parse_batch(data: Any, requested: list[str]) -> BatchResult:
    result = BatchResult()
    data = data if isinstance(data, dict) else {}
    for item in data.get("failDetails") or ():
        result.failed[str(item.get("id"))] = (int(item.get("code", 0)), str(item.get("msg", "")))
    successes = data.get("successDetails")
    if successes is None:
        # start/stop may omit successDetails; every requested id not reported failed succeeded.
        result.ok = [i for i in requested if i not in result.failed]
    else:
        for item in successes:
            item_id = str(item.get("id"))
            result.ok.append(item_id)
            result.details[item_id] = item
    return result


# --------------------------------------------------------------------------------------- client

class GeelarkClient:
    """Thread-safe client for the cloud-phone endpoints postdeck needs."""

    def __init__(self, auth: Auth, *, base_url: str = DEFAULT_BASE_URL, timeout: float = 20.0,
                 upload_timeout: float = 600.0, limiter: Limiter | None = None,
                 read_attempts: int = 4, backoff_base: float = 0.5, backoff_max: float = 8.0,
                 rate_limit_retries: int = 1,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None,
                 transport: httpx.BaseTransport | None = None):
        self._auth = auth
        self.base_url = base_url.rstrip("/")
        self.upload_timeout = upload_timeout
        self.limiter = limiter or shared_limiter()
        self.read_attempts = max(1, read_attempts)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.rate_limit_retries = rate_limit_retries
        self.sleep = sleep
        self.clock = clock
        self.wall_clock = wall_clock
        self._rng = rng or random.Random()
        self._http = httpx.Client(timeout=timeout, transport=transport)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> "GeelarkClient":
        env = os.environ if env is None else env
        kwargs.setdefault("base_url", env.get("GEELARK_BASE_URL") or DEFAULT_BASE_URL)
        return cls(load_credentials(env), **kwargs)

    def __repr__(self) -> str:
        return f"GeelarkClient(base_url={self.base_url!r}, auth={self._auth!r})"

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "GeelarkClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- transport

    def _redact(self, text: str) -> str:
        for secret in self._auth.secrets:
            if secret:
                text = text.replace(secret, "[redacted]")
        return text

    def _backoff(self, attempt: int) -> float:
        # Exponential with "equal jitter": at least half the step, so retries never bunch at 0.
        step = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        return step / 2 + self._rng.uniform(0, step / 2)

    def seconds_to_next_minute(self) -> float:
        """How long until Geelark lifts a 40007: the next minute boundary, plus a margin."""
        now = self.wall_clock()
        return 60.0 - (now % 60.0) + 1.0

    def call(self, path: str, body: Mapping[str, Any], *, idempotent: bool,
             batch: bool = False) -> Any:
        """POST `body` to `path` and return the envelope's `data`. Raises a GeelarkError subclass.
        `batch`: codes 40006/40009 carry per-item results in `data` and are returned, not raised."""
        attempt = 0
        rate_limit_retries = self.rate_limit_retries
        while True:
            locked = self.limiter.locked_for()
            if locked > 0:
                raise GeelarkLocked(f"Geelark API is locked (40014) for another {locked:.0f}s; "
                                    f"not calling {path}", retry_after=locked, code=40014,
                                    endpoint=path)
            self.limiter.acquire(path)
            trace_id = str(uuid.uuid4())
            headers = self._auth.headers(trace_id, int(self.wall_clock() * 1000))
            try:
                response = self._http.post(self.base_url + path, json=dict(body), headers=headers)
                failure = f"HTTP {response.status_code}" if response.status_code >= 500 else None
            except httpx.TransportError as exc:
                response, failure = None, f"{type(exc).__name__}: {exc}"
            if failure is not None:
                failure = self._redact(failure)
                if idempotent and attempt + 1 < self.read_attempts:
                    delay = self._backoff(attempt)
                    log.warning("Geelark %s failed (%s); retry %d in %.1fs", path, failure,
                                attempt + 1, delay)
                    attempt += 1
                    self.sleep(delay)
                    continue
                raise GeelarkUnavailable(
                    f"Geelark {path} failed: {failure}" +
                    ("" if idempotent else " (the request may have been applied)"),
                    maybe_applied=not idempotent, endpoint=path, trace_id=trace_id)

            envelope = self._envelope(response, path, trace_id)
            code = int(envelope.get("code", -1))
            msg = self._redact(str(envelope.get("msg", "")))
            log.debug("Geelark %s -> code %s traceId %s", path, code, trace_id)
            if code == 0 or (batch and code in (PARTIAL_SUCCESS, BATCH_FAILED)
                             and isinstance(envelope.get("data"), dict)):
                return envelope.get("data")
            if code in RATE_LIMIT_CODES:
                wait = self.seconds_to_next_minute()
                # Everyone calling this endpoint waits, not just us.
                self.limiter.pause(path, wait)
                if rate_limit_retries > 0:
                    rate_limit_retries -= 1
                    log.warning("Geelark %s rate limited (%s); waiting %.0fs", path, code, wait)
                    continue
                raise GeelarkRateLimited(f"Geelark error {code}: {msg} ({path}); retry in "
                                         f"{wait:.0f}s", retry_after=wait, code=code,
                                         endpoint=path, trace_id=trace_id)
            if code == 40014:
                log.error("Geelark API locked for two hours (40014) on %s: stopping all calls", path)
                self.limiter.lock_out(LOCK_SECONDS)
            raise error_for_code(code, msg, endpoint=path, trace_id=trace_id)

    def _envelope(self, response: httpx.Response, path: str, trace_id: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise GeelarkError(f"Geelark {path}: HTTP {response.status_code}", endpoint=path,
                               trace_id=trace_id)
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            raise GeelarkError(f"Geelark {path}: the answer is not a JSON envelope",
                               endpoint=path, trace_id=trace_id)
        return envelope

    def _batched(self, path: str, ids: Iterable[str], extra: Mapping[str, Any] | None = None, *,
                 idempotent: bool) -> BatchResult:
        ids = [str(i) for i in ids]
        result = BatchResult()
        for start in range(0, len(ids), MAX_BATCH_IDS):
            chunk = ids[start:start + MAX_BATCH_IDS]
            data = self.call(path, {"ids": chunk, **(extra or {})}, idempotent=idempotent,
                             batch=True)
            result.merge(_parse_batch(data, chunk))
        return result

    # ---- phones

    def iter_phones(self, page_size: int = MAX_PAGE_SIZE, **filters: Any) -> Iterator[Phone]:
        """Every phone, page after page (filters: serialName, groupName, tags, openStatus, ...)."""
        page_size = max(1, min(MAX_PAGE_SIZE, page_size))
        page, seen = 1, 0
        while True:
            data = self.call(PHONE_LIST, {**filters, "page": page, "pageSize": page_size},
                             idempotent=True) or {}
            items = data.get("items") or []
            for item in items:
                yield Phone.from_api(item)
            seen += len(items)
            total = int(data.get("total") or 0)
            if not items or len(items) < page_size or seen >= total:
                return
            page += 1

    def list_phones(self, page_size: int = MAX_PAGE_SIZE, **filters: Any) -> list[Phone]:
        return list(self.iter_phones(page_size, **filters))

    def start_phones(self, ids: Iterable[str]) -> BatchResult:
        """Start phones. Never retried: see GeelarkUnavailable.maybe_applied."""
        return self._batched(PHONE_START, ids, idempotent=False)

    def stop_phones(self, ids: Iterable[str]) -> BatchResult:
        return self._batched(PHONE_STOP, ids, idempotent=False)

    def phone_status(self, ids: Iterable[str]) -> BatchResult:
        """`details[id]` is the PhoneState of each phone found."""
        result = self._batched(PHONE_STATUS, ids, idempotent=True)
        for item_id, detail in list(result.details.items()):
            try:
                result.details[item_id] = PhoneState(int(detail.get("status")))
            except (TypeError, ValueError):
                result.ok.remove(item_id)
                del result.details[item_id]
                result.failed[item_id] = (-1, f"unknown phone status {detail.get('status')!r}")
        return result

    def status(self, phone_id: str) -> PhoneState:
        result = self.phone_status([phone_id])
        result.raise_for(phone_id)
        return result.details[phone_id]

    def wait_started(self, phone_id: str, timeout: float = 180.0,
                     poll_interval: float = 3.0) -> None:
        """Poll until the phone is started. Raises GeelarkExpired, or GeelarkStartTimeout."""
        deadline = self.clock() + timeout
        while True:
            state = self.status(phone_id)
            if state == PhoneState.STARTED:
                return
            if state == PhoneState.EXPIRED:
                raise GeelarkExpired(f"Geelark phone {phone_id} has expired")
            if self.clock() >= deadline:
                raise GeelarkStartTimeout(f"Geelark phone {phone_id} failed to start within "
                                          f"{timeout:.0f}s (status {state.name.lower()})")
            self.sleep(poll_interval)

    # ---- ADB

    def set_adb(self, ids: Iterable[str], enabled: bool = True) -> None:
        # Setting a state (not toggling it), so repeating it is harmless: safe to retry.
        self.call(ADB_SET_STATUS, {"ids": [str(i) for i in ids], "open": enabled},
                  idempotent=True)

    def adb_data(self, ids: Iterable[str]) -> BatchResult:
        """`details[id]` is the AdbInfo of each phone whose ADB is up."""
        ids = [str(i) for i in ids]
        data = self.call(ADB_GET_DATA, {"ids": ids}, idempotent=True, batch=True) or {}
        result = BatchResult()
        for item in data.get("items") or ():
            item_id, code = str(item.get("id")), int(item.get("code", 0))
            if code == 0 and item.get("ip") and item.get("port"):
                result.ok.append(item_id)
                result.details[item_id] = AdbInfo(str(item["ip"]), int(item["port"]),
                                                  str(item.get("pwd") or ""))
            elif code == 0:
                # Enabled but not yet published: the asynchronous enable has not finished.
                result.failed[item_id] = (49001, "ADB connection data not ready yet")
            else:
                result.failed[item_id] = (code, str(item.get("msg") or f"ADB error {code}"))
        return result

    def adb_info(self, phone_id: str) -> AdbInfo:
        result = self.adb_data([phone_id])
        result.raise_for(phone_id)
        return result.details[phone_id]

    # ---- files

    def get_upload_url(self, file_type: str) -> tuple[str, str]:
        """(uploadUrl, resourceUrl) for a temporary file (upload URL valid 30 minutes)."""
        file_type = file_type.lower().lstrip(".")
        if file_type not in UPLOAD_FILE_TYPES:
            raise PostError(f"Geelark does not accept .{file_type} files (unsupported format)",
                            "unsupported_format", CONTENT)
        data = self.call(UPLOAD_GET_URL, {"fileType": file_type}, idempotent=True) or {}
        return str(data["uploadUrl"]), str(data["resourceUrl"])

    def put_file(self, upload_url: str, path: Path) -> None:
        """PUT the raw bytes. The docs insist on no extra header fields: the URL is pre-signed and
        anything more (Content-Type, our auth headers) breaks or leaks, so only Host and
        Content-Length go out."""
        request = self._http.build_request("PUT", upload_url, content=Path(path).read_bytes(),
                                           timeout=self.upload_timeout)
        for name in list(request.headers.keys()):
            if name.lower() not in ("host", "content-length"):
                del request.headers[name]
        try:
            response = self._http.send(request)
        except httpx.TransportError as exc:
            raise GeelarkUnavailable(f"Geelark file upload failed: {type(exc).__name__}",
                                     endpoint="upload") from None
        if response.status_code not in (200, 201, 204):
            raise GeelarkUploadFailed(f"Geelark file upload failed: HTTP {response.status_code}",
                                      endpoint="upload")

    def upload_to_phone(self, phone_id: str, file_url: str) -> str:
        """Ask Geelark to download `file_url` into the phone's Downloads folder; returns taskId.
        Not retried: a repeat would put the file on the phone twice."""
        data = self.call(PHONE_UPLOAD_FILE, {"id": str(phone_id), "fileUrl": file_url},
                         idempotent=False) or {}
        return str(data["taskId"])

    def upload_result(self, task_id: str) -> UploadStatus:
        data = self.call(PHONE_UPLOAD_RESULT, {"taskId": str(task_id)}, idempotent=True) or {}
        return UploadStatus(int(data.get("status", 0)))

    def push_file(self, phone_id: str, path: Path, timeout: float = 300.0,
                  poll_interval: float = 3.0) -> str:
        """Upload a local file to the phone's Downloads folder and wait until it is there.
        Returns the temporary resource URL."""
        path = Path(path)
        upload_url, resource_url = self.get_upload_url(path.suffix)
        self.put_file(upload_url, path)
        task_id = self.upload_to_phone(phone_id, resource_url)
        deadline = self.clock() + timeout
        while True:
            status = self.upload_result(task_id)
            if status == UploadStatus.SUCCESS:
                return resource_url
            if status == UploadStatus.FAILED:
                raise GeelarkUploadFailed(f"Geelark could not upload {path.name} to phone "
                                          f"{phone_id} (task {task_id})")
            if self.clock() >= deadline:
                raise GeelarkUploadFailed(f"Geelark upload of {path.name} to phone {phone_id} "
                                          f"timed out after {timeout:.0f}s (task {task_id})")
            self.sleep(poll_interval)

    def upload_video(self, path: Path) -> str:
        """Upload a local video as a temporary Geelark file (docs/en/Cloud Phone API/File
        Management/Upload_temporary_files_to_GeeLark.md: getUrl, then a bare PUT) and return its
        resource URL, which an automation task takes as `video`. Geelark keeps the file a few
        days (the docs say 3, an older copy 30): upload per task, not once per campaign."""
        path = Path(path)
        if not path.is_file():
            raise PostError(f"video {path} not found", "video_missing", CONTENT)
        upload_url, resource_url = self.get_upload_url(path.suffix)
        self.put_file(upload_url, path)
        return resource_url

    # ---- automation tasks

    def create_reels_task(self, phone_id: str, video_url: str, caption: str, name: str,
                          schedule_at: float | None = None, *, remark: str = "",
                          need_share_link: bool = True) -> str:
        """Have Geelark post `video_url` as an Instagram Reel from the phone; returns the task id.

        docs/en/Cloud Phone API/Automation/Instagram/Instagram_publish_Reels_video.md. `name`
        (128 characters at most) is how the task is found again when the answer is lost
        (`find_tasks_by_name`): give every attempt a name of its own. `schedule_at` (seconds;
        default now) is when Geelark runs it. `need_share_link` asks Geelark to fetch the post's
        share link (a newer field of the docs; task/query then reports `shareLink`).

        Not retried: a repeat could post the video twice. On GeelarkUnavailable with
        `maybe_applied` the task may exist; look it up by name before creating another."""
        name = str(name)
        if not name or len(name) > MAX_TASK_NAME:
            raise ValueError(f"a Geelark task name needs 1 to {MAX_TASK_NAME} characters "
                             f"(got {len(name)})")
        if len(remark) > MAX_TASK_REMARK:
            raise ValueError(f"a Geelark task remark takes {MAX_TASK_REMARK} characters at most")
        if len(caption) > MAX_REELS_CAPTION:
            raise PostError(f"caption too long for Instagram via Geelark: {len(caption)} "
                            f"characters, {MAX_REELS_CAPTION} at most", "caption_rejected",
                            CONTENT)
        if not video_url:
            raise PostError("no video URL for the Geelark task", "video_missing", CONTENT)
        when = int(self.wall_clock() if schedule_at is None else schedule_at)
        body: dict[str, Any] = {"id": str(phone_id), "name": name, "scheduleAt": when,
                                "description": caption, "video": [str(video_url)]}
        if remark:
            body["remark"] = remark
        if need_share_link:
            body["needShareLink"] = True
        data = self.call(TASK_INSTAGRAM_REELS, body, idempotent=False) or {}
        task_id = data.get("taskId") if isinstance(data, dict) else None
        if not task_id:
            raise GeelarkError(f"Geelark {TASK_INSTAGRAM_REELS} answered without a taskId "
                               "(the task may exist: look it up by name)",
                               endpoint=TASK_INSTAGRAM_REELS)
        return str(task_id)

    def query_tasks(self, ids: Iterable[str]) -> list[TaskInfo]:
        """The tasks with these ids (task/query, 100 ids per call); ids Geelark does not know are
        left out. The only read that reports `shareLink`."""
        ids = [str(i) for i in ids]
        tasks: list[TaskInfo] = []
        for start in range(0, len(ids), MAX_TASK_IDS):
            data = self.call(TASK_QUERY, {"ids": ids[start:start + MAX_TASK_IDS]},
                             idempotent=True) or {}
            tasks.extend(TaskInfo.from_api(item) for item in data.get("items") or ()
                         if isinstance(item, dict))
        return tasks

    def query_task(self, task_id: str) -> TaskInfo:
        for task in self.query_tasks([task_id]):
            if task.id == str(task_id):
                return task
        raise GeelarkError(f"Geelark task {task_id} not found", code=48002,
                           endpoint=TASK_QUERY, error_type="task_not_found")

    def task_detail(self, task_id: str) -> TaskInfo:
        """One task with its screenshots and (first page of) logs (task/detail). No share link:
        use query_tasks for that."""
        data = self.call(TASK_DETAIL, {"id": str(task_id)}, idempotent=True) or {}
        if not isinstance(data, dict) or not data:
            raise GeelarkError(f"Geelark task {task_id}: empty detail", endpoint=TASK_DETAIL)
        return TaskInfo.from_api(data)

    def _task_history_pages(self, page_size: int) -> Iterator[tuple[list[TaskInfo], bool]]:
        """(tasks of one page, whether another page follows) of task/historyRecords."""
        page_size = max(1, min(MAX_TASK_PAGE_SIZE, page_size))
        last_id: str | None = None
        while True:
            body: dict[str, Any] = {"size": page_size}
            if last_id is not None:
                body["lastId"] = last_id
            data = self.call(TASK_HISTORY, body, idempotent=True) or {}
            items = [i for i in data.get("items") or () if isinstance(i, dict)]
            next_id = str(items[-1].get("id") or "") if items else ""
            # A short page is the last one; so is a page that would not move the cursor.
            more = len(items) == page_size and next_id not in ("", last_id)
            yield [TaskInfo.from_api(item) for item in items], more
            if not more:
                return
            last_id = next_id

    def iter_task_history(self, page_size: int = MAX_TASK_PAGE_SIZE) -> Iterator[TaskInfo]:
        """Every task scheduled within the past 7 days, page after page (task/historyRecords:
        `size` at most 100, the next page after the last `id` of the previous one)."""
        for tasks, _more in self._task_history_pages(page_size):
            yield from tasks

    def find_tasks_by_name(self, name: str, *, phone_id: str | None = None,
                           max_pages: int | None = None,
                           page_size: int = MAX_TASK_PAGE_SIZE) -> list[TaskInfo]:
        """Tasks named exactly `name` (optionally of one phone only).

        No task endpoint filters by name (task/query and task/historyRecords take ids only), so
        this pages through task/historyRecords, which holds the tasks scheduled within the past
        7 days, keeps the matches and reads them again with task/query (for the share link).
        Raises GeelarkTaskSearchIncomplete when `max_pages` ran out before the history did:
        "not found" would then be a guess."""
        name = str(name)
        found: list[TaskInfo] = []
        for pages, (tasks, more) in enumerate(self._task_history_pages(page_size), 1):
            found.extend(t for t in tasks
                         if t.name == name and (phone_id is None or t.phone_id == str(phone_id)))
            if more and max_pages is not None and pages >= max_pages:
                raise GeelarkTaskSearchIncomplete(
                    f"Geelark task history is longer than {max_pages} pages; a task named "
                    f"{name!r} may exist unseen", endpoint=TASK_HISTORY)
        if not found:
            return []
        fresh = {t.id: t for t in self.query_tasks([t.id for t in found])}
        return [fresh.get(t.id, t) for t in found]

    def wait_task(self, task_id: str, timeout: float = 1800.0,
                  poll_interval: float = 15.0) -> TaskInfo:
        """Poll task/query until the task has finished (completed, failed or cancelled) and return
        it. Raises GeelarkTaskTimeout (the task may still run: cancel it)."""
        deadline = self.clock() + timeout
        while True:
            task = self.query_task(task_id)
            if task.finished:
                return task
            if self.clock() >= deadline:
                state = task.status.name.lower() if task.status else f"status {task.raw_status!r}"
                raise GeelarkTaskTimeout(f"Geelark task {task_id} not finished after "
                                         f"{timeout:.0f}s ({state})", task=task,
                                         endpoint=TASK_QUERY)
            self.sleep(poll_interval)

    def cancel_tasks(self, ids: Iterable[str]) -> BatchResult:
        """Cancel waiting or running tasks (task/cancel). Per-item failures: 48001 (already
        finished: read it, it may have posted), 48002 (unknown). Not retried, like every write."""
        return self._batched_tasks(TASK_CANCEL, ids)

    def restart_tasks(self, ids: Iterable[str]) -> BatchResult:
        """Run failed or cancelled tasks again (task/restart, 5 times per task at most; tasks
        created through the API are never retried by Geelark itself). Not retried."""
        return self._batched_tasks(TASK_RESTART, ids)

    def _batched_tasks(self, path: str, ids: Iterable[str]) -> BatchResult:
        ids = [str(i) for i in ids]
        result = BatchResult()
        for start in range(0, len(ids), MAX_TASK_IDS):
            chunk = ids[start:start + MAX_TASK_IDS]
            data = self.call(path, {"ids": chunk}, idempotent=False, batch=True)
            result.merge(_parse_batch(data, chunk))
        return result


# ------------------------------------------------------------------------------------- provider

class GeelarkPhones:
    """Phones of a Geelark team, by name. The lead composes this with ADB and Appium into the
    `geelark` PhoneBackend; this class only deals with the Geelark side."""

    def __init__(self, client: GeelarkClient, *, start_timeout: float = 180.0,
                 adb_timeout: float = 60.0, poll_interval: float = 3.0):
        self.client = client
        self.start_timeout = start_timeout
        self.adb_timeout = adb_timeout
        self.poll_interval = poll_interval
        self._lock = threading.Lock()
        self._by_name: dict[str, list[str]] = {}
        self._ids: set[str] = set()
        self._adb_enabled: set[str] = set()

    def _refresh(self) -> list[Phone]:
        phones = self.client.list_phones()
        by_name: dict[str, list[str]] = defaultdict(list)
        for phone in phones:
            by_name[phone.name].append(phone.id)
        with self._lock:
            self._by_name = dict(by_name)
            self._ids = {p.id for p in phones}
        return phones

    def list_phones(self) -> list[str]:
        """Phone names (Geelark serialName); a phone whose name is empty or shared by another is
        listed by its id, so every entry names exactly one phone."""
        phones = self._refresh()
        names = []
        for phone in phones:
            unique = phone.name and len(self._by_name.get(phone.name, ())) == 1
            names.append(phone.name if unique else phone.id)
        return names

    def phone_id(self, phone: str) -> str:
        """The id of a phone given by name or id."""
        for attempt in range(2):
            with self._lock:
                if phone in self._ids:
                    return phone
                ids = self._by_name.get(phone, [])
            if len(ids) == 1:
                return ids[0]
            if len(ids) > 1:
                raise GeelarkError(f"Geelark phone name {phone!r} is shared by {len(ids)} phones "
                                   f"({', '.join(ids)}): use the id")
            if attempt == 0:
                self._refresh()
        raise GeelarkNotFound(f"Geelark phone {phone!r} not found")

    def ensure_started(self, phone: str) -> str:
        """Start the phone if needed and wait until it runs. Returns its id."""
        phone_id = self.phone_id(phone)
        state = self.client.status(phone_id)
        if state == PhoneState.EXPIRED:
            raise GeelarkExpired(f"Geelark phone {phone} has expired")
        if state == PhoneState.SHUT_DOWN:
            self._start(phone, phone_id)
        if state != PhoneState.STARTED:
            self.client.wait_started(phone_id, self.start_timeout, self.poll_interval)
        return phone_id

    def _start(self, phone: str, phone_id: str) -> None:
        try:
            self.client.start_phones([phone_id]).raise_for(phone_id)
            return
        except GeelarkUnavailable as exc:
            if not exc.maybe_applied:
                raise
            log.warning("start of Geelark phone %s: outcome unknown (%s); checking status",
                        phone, exc)
        # Only start again once we know the first request did not take.
        if self.client.status(phone_id) == PhoneState.SHUT_DOWN:
            self.client.start_phones([phone_id]).raise_for(phone_id)

    def adb_endpoint(self, phone: str) -> tuple[str, int, str]:
        """(host, port, glogin password) of the phone, enabling ADB when needed. The phone must be
        running (`ensure_started`)."""
        phone_id = self.phone_id(phone)
        enabled_now = phone_id not in self._adb_enabled
        if enabled_now:
            self.client.set_adb([phone_id], True)
            self._adb_enabled.add(phone_id)
        deadline = self.client.clock() + self.adb_timeout
        while True:
            try:
                info = self.client.adb_info(phone_id)
                return info.host, info.port, info.password
            except (GeelarkAdbNotReady, GeelarkNotRunning) as exc:
                if self.client.clock() >= deadline:
                    raise GeelarkAdbNotReady(f"ADB of Geelark phone {phone} not ready after "
                                             f"{self.adb_timeout:.0f}s: {exc}") from None
                if not enabled_now:
                    # We enabled it in an earlier session; the phone may have been restarted
                    # since, which switches ADB off. Enable once more, then just wait: enabling
                    # is asynchronous (the docs say to allow about 3 s).
                    self.client.set_adb([phone_id], True)
                    enabled_now = True
            self.client.sleep(self.poll_interval)

    def connect(self, phone: str, adb) -> str:
        """PhoneProvider: start the cloud phone, enable its ADB, `adb connect` and `glogin`
        (skipped when the serial is already connected). Returns the adb serial."""
        self.ensure_started(phone)
        host, port, password = self.adb_endpoint(phone)
        serial = f"{host}:{port}"
        if adb.device_state(serial) != "device":
            serial = adb.connect(host, port)
            adb.glogin(serial, password)
        return serial

    def power_off(self, phone: str) -> None:
        """Stop one cloud phone after its work; raises when Geelark did not stop it (it would go
        on billing)."""
        phone_id = self.phone_id(phone)
        self._adb_enabled.discard(phone_id)
        self.client.stop_phones([phone_id]).raise_for(phone_id)

    def stop(self, phones: Iterable[str]) -> BatchResult:
        ids = [self.phone_id(p) for p in phones]
        for phone_id in ids:
            self._adb_enabled.discard(phone_id)
        return self.client.stop_phones(ids) if ids else BatchResult()
