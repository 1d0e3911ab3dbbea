"""The `geelark-task` backend: Geelark's own Instagram posting automation does the posting.

Instead of driving the phone over ADB and Appium (the `geelark` backend), the worker uploads the
video to Geelark, creates an "Instagram publish Reels" task for the phone and follows it until
Geelark reports it completed (with the post's share link), failed (with a failure code that
`classify_task_failure` maps to postdeck's categories) or cancelled.

The one dangerous moment is creating the task: a lost answer may hide a task that will post. So
every task is named after its job and claim (`task_name`), a create whose outcome is unknown is
looked up by that name and never simply repeated, and the task's id goes to the worker
(`PostRequest.on_task`) as soon as it is known. Recovery (`find_task`) recomputes the name from
the progress row when the worker died before the id was written.
"""
from __future__ import annotations

import hashlib
import logging
import re
from typing import Callable

from ..errors import CONTENT, INFRASTRUCTURE, OUTCOME_UNKNOWN, UNKNOWN, PostError
from .base import PhoneBackend, PostRequest, TaskOutcome, TaskState, WorkerSlot
from .geelark import (
    MAX_REELS_CAPTION, MAX_TASK_NAME, GeelarkClient, GeelarkError, GeelarkPhones,
    GeelarkUnavailable, TaskInfo, TaskStatus, classify_task_failure,
)

log = logging.getLogger("postdeck.geelark_task")

BACKEND_NAME = "geelark-task"
TASK_NAME_PREFIX = "postdeck-"
TASK_CANCELLED = "task_cancelled"
# Enough of the job id for a person to recognise it in Geelark's task list; the digest, not the
# prefix, is what makes the name unique.
_READABLE_CHARS = 48
_DIGEST_CHARS = 16            # 64 bits of sha256: no collision among any farm's claims
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def task_name(job_id: str, claim_id: str) -> str:
    """The Geelark task name of one claim of a job: deterministic, so recovery can recompute it
    from the progress row and find a task created just before a crash; different for every claim
    (a retry is a new claim, so it never finds the previous attempt's task); at most 58
    characters of [A-Za-z0-9._-], well within Geelark's 128, whatever the job id holds."""
    readable = _UNSAFE.sub("_", job_id).strip("_")[:_READABLE_CHARS] or "job"
    # NUL between the parts: ("ab", "c") and ("a", "bc") must not name the same task.
    digest = hashlib.sha256(f"{job_id}\0{claim_id}".encode("utf-8", "surrogatepass"))
    name = f"{TASK_NAME_PREFIX}{readable}-{digest.hexdigest()[:_DIGEST_CHARS]}"
    assert len(name) <= MAX_TASK_NAME
    return name


def _outcome_unknown(message: str) -> PostError:
    """The task may exist and may post: never retried automatically (a retry could post twice)."""
    return PostError(message, error_type=OUTCOME_UNKNOWN, category=UNKNOWN)


def _cancelled_error(task: TaskInfo, why: str = "") -> PostError:
    """A cancelled task posted nothing, so the job may be tried again (infrastructure)."""
    reason = f": {task.fail_code} {task.fail_desc}".rstrip() if task.fail_code else ""
    return PostError(f"Geelark task {task.id} ({task.name or 'unnamed'}) was cancelled"
                     f"{why}{reason}; nothing was posted", error_type=TASK_CANCELLED,
                     category=INFRASTRUCTURE)


def _lost_create(exc: Exception) -> bool:
    """Whether a failed create may still have created the task. GeelarkUnavailable says so for
    a write (transport error, timeout, 5xx); a GeelarkError without a Geelark result code (an
    answer without a taskId, not JSON, an odd HTTP status) means nobody knows either. An error
    with a code is Geelark's definite refusal (41001 balance, 42001 no phone ...): no task."""
    if isinstance(exc, GeelarkUnavailable):
        return exc.maybe_applied
    return isinstance(exc, GeelarkError) and exc.code is None


_PRIORITY = {TaskState.SUCCESS: 0, TaskState.RUNNING: 1, TaskState.FAILED: 2}


def outcome_of(task: TaskInfo) -> TaskOutcome:
    """What a task's status means for its job."""
    if task.status == TaskStatus.COMPLETED:
        return TaskOutcome(TaskState.SUCCESS, task.id, video_id=task.share_link)
    if task.status == TaskStatus.CANCELLED:
        error = _cancelled_error(task)
        return TaskOutcome(TaskState.FAILED, task.id, error=str(error),
                           category=INFRASTRUCTURE, error_type=TASK_CANCELLED)
    if task.status == TaskStatus.FAILED:
        category, error_type = classify_task_failure(task.fail_code, task.fail_desc)
        return TaskOutcome(TaskState.FAILED, task.id, error=str(task.error()),
                           category=category, error_type=error_type)
    # Waiting, in progress, or a status this code does not know: it has not ended as far as we
    # can tell, so it is watched, never written off.
    return TaskOutcome(TaskState.RUNNING, task.id)


class GeelarkTaskBackend(PhoneBackend):
    """Posts through Geelark's "Instagram publish Reels" automation tasks."""

    name = BACKEND_NAME

    def __init__(self, client: GeelarkClient, phones: GeelarkPhones, *,
                 poll_interval: float = 15.0, task_timeout: float = 1800.0,
                 sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] | None = None):
        """`sleep`/`clock` default to the client's, so a test that fakes the client's time fakes
        the polling too."""
        self.client = client
        self.phones = phones
        self.poll_interval = poll_interval
        self.task_timeout = task_timeout
        self.sleep = sleep or client.sleep
        self.clock = clock or client.clock
        self._phone_ids: dict[str, str] = {}

    # ---- phones

    def list_phones(self) -> list[str]:
        return self.phones.list_phones()

    def check(self) -> None:
        """Nothing to check beyond the credentials and the API, which `list_phones` already
        exercises: this backend needs neither adb nor Appium on the host."""

    def prepare(self, phone: str, slot: WorkerSlot) -> None:
        """Only resolves the phone's id (GeelarkNotFound early, before any upload). Nothing is
        started: Geelark's automation runs the phone itself, and its docs do not say the phone
        must be on before a task is created. `power_off` stops the phone after its work, as the
        `geelark` backend does, since a cloud phone bills while it runs."""
        self._phone_ids[phone] = self.phones.phone_id(phone)

    def _phone_id(self, phone: str) -> str:
        if phone not in self._phone_ids:
            self._phone_ids[phone] = self.phones.phone_id(phone)
        return self._phone_ids[phone]

    def power_off(self, phone: str) -> None:
        self.phones.power_off(phone)

    def stop_phones(self, phones: list[str]) -> None:
        if not phones:
            return
        result = self.phones.stop(phones)
        for phone_id, (code, msg) in result.failed.items():
            log.warning("stop-all: Geelark did not stop phone %s: %s %s", phone_id, code, msg)

    # ---- posting

    def post(self, request: PostRequest, slot: WorkerSlot,
             on_publishing: Callable[[], None]) -> str | None:
        """Upload, then (once `on_publishing` allowed it) create the task and follow it. Returns
        the post's share link ("" when Geelark gave none). Every failure after the create that
        leaves the post's fate open is `outcome_unknown`: nothing here ever creates a second
        task for the same claim."""
        if not request.claim_id:
            # Without the claim the name would be the same for every attempt of the job, and a
            # lookup could mistake an earlier attempt's task for this one's.
            raise PostError(f"job {request.job_id}: the geelark-task backend needs the claim id "
                            "to name its task", error_type="claim_id_missing",
                            category=INFRASTRUCTURE)
        if len(request.caption) > MAX_REELS_CAPTION:   # fail before uploading anything
            raise PostError(f"caption too long for Instagram via Geelark: {len(request.caption)} "
                            f"characters, {MAX_REELS_CAPTION} at most", "caption_rejected",
                            CONTENT)
        phone_id = self._phone_id(request.phone)
        video_url = self.client.upload_video(request.video_path)
        on_publishing()                 # raises when the claim was lost: then nothing is created
        name = task_name(request.job_id, request.claim_id)
        task_id = self._create(phone_id, video_url, request.caption, name)
        self._report_task(request, task_id)
        task = self._follow(task_id)
        return self._result(task)

    def _create(self, phone_id: str, video_url: str, caption: str, name: str) -> str:
        """The new task's id. A create whose answer was lost is looked up by name instead of
        being sent again (a second task could post the video twice)."""
        try:
            return self.client.create_reels_task(phone_id, video_url, caption, name=name,
                                                 need_share_link=True)
        except Exception as exc:
            if not _lost_create(exc):
                raise
            log.warning("creating Geelark task %s: outcome unknown (%s); looking it up by name",
                        name, exc)
            return self._find_created(phone_id, name, exc)

    def _find_created(self, phone_id: str, name: str, cause: Exception) -> str:
        # A request that timed out may still be on its way: give it a moment to land.
        self.sleep(self.poll_interval)
        try:
            found = self.client.find_tasks_by_name(name, phone_id=phone_id)
        except GeelarkError as exc:
            raise _outcome_unknown(f"creating Geelark task {name} failed ({cause}) and looking "
                                   f"it up failed too ({exc}): it may exist and post") from exc
        if not found:
            raise _outcome_unknown(f"creating Geelark task {name} failed ({cause}) and no task "
                                   "of that name was found; it may still appear and post, so "
                                   "it is not created again") from cause
        if len(found) > 1:
            log.error("%d Geelark tasks are named %s (%s): following the first", len(found),
                      name, ", ".join(t.id for t in found))
        log.info("Geelark task %s found by name %s after a lost answer", found[0].id, name)
        return found[0].id

    def _report_task(self, request: PostRequest, task_id: str) -> None:
        """Hand the id to the worker before the post can be public. If that fails (the claim was
        lost, the disk is full) the task is cancelled while it still waits, so it cannot post
        with nobody knowing its id; the worker's error goes up unchanged either way."""
        log.info("job %s: Geelark task %s created", request.job_id, task_id)
        if request.on_task is None:
            return
        try:
            request.on_task(task_id)
        except Exception as exc:
            cancelled = self.cancel_task(task_id)
            log.warning("job %s: could not record Geelark task %s (%s); %s", request.job_id,
                        task_id, exc, "cancelled it" if cancelled else
                        "it could not be cancelled and may post")
            raise

    def _follow(self, task_id: str) -> TaskInfo:
        """The task once finished; on timeout, a waiting task is cancelled (nothing posted) and a
        running one left alone (it may be publishing)."""
        task = self._poll(task_id)
        if task is not None and task.finished:
            return task
        if task is not None and task.status == TaskStatus.WAITING and self.cancel_task(task_id):
            raise _cancelled_error(task, f" after waiting {self.task_timeout:.0f}s to start")
        state = (task.status.name.lower() if task is not None and task.status
                 else "status unknown")
        raise _outcome_unknown(f"Geelark task {task_id} did not finish within "
                               f"{self.task_timeout:.0f}s ({state}); it may still post: look "
                               "the task up before retrying the job")

    def _poll(self, task_id: str) -> TaskInfo | None:
        """Query every `poll_interval` until the task finishes or `task_timeout` passes; returns
        the last state seen (None: never seen). A failed query is not the task's failure: it is
        logged and asked again, since the task runs on whatever happens to our connection."""
        deadline = self.clock() + self.task_timeout
        last: TaskInfo | None = None
        while True:
            self.sleep(self.poll_interval)
            try:
                last = self.client.query_task(task_id)
            except GeelarkError as exc:
                log.warning("Geelark task %s: query failed (%s); asking again", task_id, exc)
            if last is not None and last.finished:
                return last
            if self.clock() >= deadline:
                return last

    def _result(self, task: TaskInfo) -> str:
        if task.status == TaskStatus.COMPLETED:
            if not task.share_link:
                log.warning("Geelark task %s completed without a share link; the post has no "
                            "link on record", task.id)
            return task.share_link
        if task.status == TaskStatus.CANCELLED:
            raise _cancelled_error(task)
        # FAILED: GeelarkTaskFailed carries classify_task_failure's category and type (and
        # run_stopping for a balance or phone that is gone).
        raise task.error()

    # ---- recovery and stop-all

    def find_task(self, job_id: str, claim_id: str, task_id: str) -> TaskOutcome:
        """What became of a claim's task: by id when the worker recorded it, else by the name
        `task_name(job_id, claim_id)` gives. MISSING when Geelark knows no such task.

        A Geelark error while asking (network down, rate limit, lock) is raised, not turned into
        an outcome: the caller keeps the job as it is and asks again later."""
        if task_id:
            tasks = [t for t in [self._query(task_id)] if t is not None]
        else:
            tasks = self.client.find_tasks_by_name(task_name(job_id, claim_id))
        if not tasks:
            return TaskOutcome(TaskState.MISSING, str(task_id or ""))
        if len(tasks) > 1:
            log.error("job %s: %d Geelark tasks for one claim (%s)", job_id, len(tasks),
                      ", ".join(t.id for t in tasks))
        # Of several (never expected), the one that posted matters most, then one still running.
        return min((outcome_of(t) for t in tasks), key=lambda o: _PRIORITY[o.state])

    def cancel_task(self, task_id: str) -> bool:
        """Cancel the task only while it is WAITING (queried first); True when Geelark confirms.
        A task in progress is never cancelled: it may be publishing. False also when Geelark
        cannot be asked (logged): "not known to be cancelled" keeps the job as it is, and stop-all
        goes on with its other tasks and phones."""
        try:
            task = self._query(task_id)
            if task is None or task.status != TaskStatus.WAITING:
                return False
            return self._cancel_waiting(task_id)
        except GeelarkError as exc:
            log.warning("could not cancel Geelark task %s: %s", task_id, exc)
            return False

    def _cancel_waiting(self, task_id: str) -> bool:
        try:
            result = self.client.cancel_tasks([task_id])
        except GeelarkUnavailable as exc:
            if not exc.maybe_applied:
                raise
            # The cancel may have landed: only the task's status can say.
            task = self._query(task_id)
            return task is not None and task.status == TaskStatus.CANCELLED
        if task_id in result.ok:
            log.info("Geelark task %s cancelled before it started", task_id)
            return True
        code, msg = result.failed.get(task_id, (None, "no result"))
        log.warning("Geelark refused to cancel task %s: %s %s", task_id, code, msg)
        return False

    def _query(self, task_id: str) -> TaskInfo | None:
        """The task with this id, None when Geelark does not know it."""
        return next((t for t in self.client.query_tasks([task_id]) if t.id == str(task_id)),
                    None)


def make_task_backend(ctx, checking: bool = False) -> GeelarkTaskBackend:
    """Built like make_real_backend builds `geelark`: the same credentials (GeelarkClient.from_env)
    and, unless `checking` (a pre-run check must leave no file behind when the run is refused),
    the host's shared API budget."""
    limiter = None
    if not checking:
        from .api_budget import host_budget
        limiter = host_budget(ctx.host_state_dir)
    client = GeelarkClient.from_env(limiter=limiter)
    return GeelarkTaskBackend(client, GeelarkPhones(client),
                              poll_interval=ctx.settings.task_poll_seconds)


__all__ = ["BACKEND_NAME", "GeelarkTaskBackend", "make_task_backend", "outcome_of", "task_name"]
