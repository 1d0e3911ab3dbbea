"""Worker processes and the supervisor that runs them.

The supervisor holds the campaign's run lock for the whole run, starts N workers as spawned
`multiprocessing` processes, replaces a worker that dies (after recovering its claim), and ends
when every worker has found nothing more to do today. Workers never share a lock with each other
except the store's file lock: they wake each other through engine/wake.py.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import multiprocessing.connection
import os
import random
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .context import PostingContext
from .devices import PostRequest, WorkerSlot, make_backend
from .devices.base import TaskOutcome, TaskState
from .durable import write_atomic
from .campaigns import VideoFinder, videos_dir_of
from .columns import Phase
from .errors import (ACCOUNT, CONTENT, INFRASTRUCTURE, OUTCOME_UNKNOWN, RUN_STOPPING_TYPES,
                     UNKNOWN, Classification, PostError, classify)
from . import events as ev
from .evidence import attempt_dir, failed_step, prune, write_step
from .events import EventLog
from .logs import file_logger
from .notify import Notifier
from .pacing import jitter
from .pause import clear as clear_pause, paused
from .phones import PhoneLocks
from .power import PhonePower, Power
from .problems import Refused, Remedy
from .runstate import (HEARTBEAT_EVERY_S, HEARTBEAT_LEASE_S, WORKER_MARKER_ENV, WorkerState,
                       create_time_of, heartbeat_path, live_workers, run_info_path,
                       write_heartbeat)
from .lifecycle import Job, RetryPolicy
from .rules import now_iso
from .store import Lease, LocalLease, open_store
from .tracker import ClaimLost
from . import wake

# An idle worker re-reads the store at least this often even without a wake-up: it covers a
# phone released by another campaign, which sends no wake-up to this one.
IDLE_RECHECK_S = 5.0
RESTARTS_PER_SLOT = 5
# The supervisor's name in a claim it took over to watch a remote task (geelark-task) whose
# worker is gone; it asks about such tasks every task_poll_seconds.
WATCHER = "watch"
# A worker bound to a phone that another process holds: restarting it would fail the same way.
EXIT_PHONE_HELD = 4


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable: it rebuilds its context after spawn."""
    index: int
    campaign_root: str
    campaigns_dir: str | None
    legacy: bool
    phone: str | None
    run_id: str
    n_workers: int
    retry: RetryPolicy
    backend: str
    parent_pid: int
    daily_limit: int | None = None
    accounts: frozenset[str] | None = None   # --accounts: only these accounts' jobs
    lease_s: float = HEARTBEAT_LEASE_S

    @property
    def worker_id(self) -> str:
        return str(self.index)


def context_of(spec: WorkerSpec) -> PostingContext:
    if spec.legacy:
        ctx = PostingContext.for_legacy(Path(spec.campaign_root))
    else:
        ctx = PostingContext.for_campaign_dir(Path(spec.campaign_root),
                                              Path(spec.campaigns_dir) if spec.campaigns_dir else None)
    return ctx.with_daily_limit(spec.daily_limit) if spec.daily_limit else ctx


# --- the worker ----------------------------------------------------------------------------------
class Worker:
    def __init__(self, spec: WorkerSpec):
        self.spec = spec
        self.ctx = context_of(spec)
        self.slot = WorkerSlot.for_index(spec.index, self.ctx.logs_dir)
        self.log = file_logger(f"postdeck.worker.{spec.index}",
                               self.ctx.logs_dir / f"worker-{spec.index}.log", library=True)
        self.store = open_store(self.ctx, retry=spec.retry, run_id=spec.run_id)
        self.backend = make_backend(self.ctx, spec.backend)
        self.locks = PhoneLocks(self.ctx.phones_dir, {
            "campaign": self.ctx.name, "campaign_root": str(self.ctx.root),
            "worker_id": spec.worker_id, "run_id": spec.run_id})
        self.waker = wake.Waker(str(self.ctx.root), spec.worker_id)
        self.videos = VideoFinder(self.ctx.root, self.ctx.legacy,
                                  videos_dir_of(self.ctx.root, self.ctx.settings))
        self.power = PhonePower(self.ctx.power_dir, self.ctx.settings.tz)
        self.events = EventLog(self.ctx.events_file)
        self.check_videos = self.ctx.settings.videos_checked(spec.backend)
        self.kept: str | None = None      # a phone left on for its next job
        self._rng = random.Random()
        self._jitter: float | None = None  # drawn when a job ends, waited before the next claim
        self.stopping = False
        self.state = WorkerState.STARTING
        self.job: Job | None = None
        self._beat_stop = threading.Event()
        self._create_time = create_time_of(os.getpid())
        self.lease: Lease = LocalLease()

    # Heartbeats run in a thread so a long post never looks like a dead worker. The same thread
    # renews the store's lease and waits for the store's changes (LISTEN/NOTIFY on a shared
    # store: a job freed on another host wakes this worker as a local one would).
    def _heartbeat_loop(self) -> None:
        due = time.monotonic() + HEARTBEAT_EVERY_S
        while not self._beat_stop.is_set():
            try:
                changed = self.lease.wait_changes(due - time.monotonic())
            except Exception as exc:   # the store is away: the lease decides at the next write
                self.log.warning("could not wait for the store's changes: %s", exc)
                changed = False
                self._beat_stop.wait(max(0.0, due - time.monotonic()))
            if changed:
                wake.send(str(self.ctx.root), [self.spec.worker_id])
            if time.monotonic() < due or self._beat_stop.is_set():
                continue
            due = time.monotonic() + HEARTBEAT_EVERY_S
            if os.getppid() != self.spec.parent_pid:
                if not self.stopping:
                    self.log.warning("supervisor is gone; finishing the current job and leaving")
                self.stopping = True
                wake.send(str(self.ctx.root), [self.spec.worker_id], wake.STOP)
            self.beat()
            self._renew()

    def _renew(self) -> None:
        job = self.job
        try:
            alive = self.lease.renew(str(self.state), job.job_id if job else "",
                                     job.phone_id if job else (self.spec.phone or ""))
        except Exception as exc:
            self.log.warning("could not renew the lease: %s", exc)
            return
        if not alive and not self.stopping:
            # Another host may have recovered this worker's claim already: every later write
            # of it is rejected, and the worker leaves instead of claiming under a dead lease.
            self.log.error("this worker's lease expired (it was stopped or cut off for longer "
                           "than %.0fs); leaving", self.spec.lease_s)
            self.stopping = True
            wake.send(str(self.ctx.root), [self.spec.worker_id], wake.STOP)

    def beat(self) -> None:
        job = self.job
        try:
            write_heartbeat(
                self.ctx.heartbeats_dir, worker_id=self.spec.worker_id, pid=os.getpid(),
                create_time=self._create_time,
                phone=self.spec.phone or (job.phone_id if job else None),
                appium_port=self.slot.appium_port,
                system_ports=f"{self.slot.system_port_start}-{self.slot.system_port_end}",
                state=self.state, job_id=job.job_id if job else "",
                account=job.account if job else "",
                run_id=self.spec.run_id)
        except OSError as exc:
            self.log.warning("could not write heartbeat: %s", exc)

    def _messages(self, got: bytes) -> None:
        if wake.STOP in got or wake.STOP_NOW in got:
            self.stopping = True

    def run(self) -> int:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; Ctrl-C goes to it
        signal.signal(signal.SIGTERM, lambda *_: os._exit(3))
        if self.spec.phone and not self.locks.try_hold(self.spec.phone):
            self.log.error("phone %s is held by another worker; leaving", self.spec.phone)
            return EXIT_PHONE_HELD
        self.lease = self.store.lease(self.spec.worker_id, os.getpid(), self.spec.lease_s,
                                      self.spec.run_id)
        self.beat()
        beat = threading.Thread(target=self._heartbeat_loop, daemon=True)
        beat.start()
        self.log.info("worker %s started (pid %s, phone %s, appium port %s, systemPort %s-%s)",
                      self.spec.worker_id, os.getpid(), self.spec.phone or "any",
                      self.slot.appium_port, self.slot.system_port_start, self.slot.system_port_end)
        try:
            while True:
                self._messages(self.waker.drain())
                if not self.stopping and self._hold_while_paused():
                    continue
                if not self.stopping:
                    wait = self._jitter if self._jitter is not None else jitter(
                        self.ctx.settings, self._rng)
                    self._jitter = None
                    self._pause(wait)
                if self.stopping:
                    self.log.info("stop requested; leaving between jobs")
                    break
                job = self.store.claim(self.spec.worker_id, phone=self.spec.phone,
                                       phone_free=None if self.spec.phone else self.locks.try_hold,
                                       accounts=self.spec.accounts, prefer_phone=self.kept)
                if job is not None and self.kept is not None and job.phone_id != self.kept:
                    self._put_away(self.kept)
                if job is None:
                    if not self._idle():
                        self.log.info("nothing more to do today; leaving")
                        break
                    continue
                self._do(job)
        finally:
            self.state = WorkerState.STOPPED
            self._beat_stop.set()
            self.lease.interrupt()
            beat.join(timeout=HEARTBEAT_EVERY_S + 5)
            try:
                self.lease.close()
            except Exception as exc:   # it runs out by itself
                self.log.warning("could not give the lease up: %s", exc)
            try:
                if self.kept is not None:
                    self._put_away(self.kept)
                self.backend.shutdown(self.slot)
            finally:
                self.locks.release_all()
                self.waker.close()
        return 0

    def _hold_while_paused(self) -> bool:
        """While the run is paused: the phone kept on goes off (it would bill for nothing) and
        the worker waits, woken by the resume; True when it waited."""
        if paused(self.ctx) is None:
            return False
        if self.kept is not None:
            self._put_away(self.kept)
        self.state = WorkerState.PAUSED
        self.beat()
        self.log.info("the run is paused; waiting")
        while not self.stopping and paused(self.ctx) is not None:
            self._messages(self.waker.wait(IDLE_RECHECK_S))
        self.log.info("resumed" if not self.stopping else "stop requested while paused")
        return True

    def _pause(self, seconds: float) -> None:
        """Wait `seconds` (pacing), but leave at once on a stop."""
        if seconds <= 0:
            return
        self.state = WorkerState.WAITING
        deadline = time.time() + seconds
        while not self.stopping:
            left = deadline - time.time()
            if left <= 0:
                return
            self._messages(self.waker.wait(left))

    # --- phones on only while they work -----------------------------------------------------------
    def _set_power(self, phone: str, state: Power) -> None:
        try:
            self.power.set_state(phone, state, worker_id=self.spec.worker_id,
                                 campaign_root=str(self.ctx.root))
        except OSError as exc:   # the record is for the operator's bill; the post goes on
            self.log.warning("could not record phone %s as %s: %s", phone, state, exc)

    def _power_off(self, phone: str) -> bool:
        """Turn the phone off; False (and it stays recorded as on, still billing) if the backend
        could not."""
        if self.kept == phone:
            self.kept = None
        try:
            self.backend.power_off(phone)
        except Exception as exc:
            self.log.error("could not turn phone %s off: %s", phone, exc)
            self._event(ev.PHONE_FAILED, phone=phone, error=f"could not turn it off: {exc}")
            return False
        self._set_power(phone, Power.OFF)
        self.log.info("phone %s off", phone)
        return True

    def _put_away(self, phone: str) -> None:
        """Done with the phone: off, and free for other workers."""
        self._power_off(phone)
        if not self.spec.phone:
            self.locks.release(phone)

    def _next_job_soon(self, phone: str) -> bool:
        """Whether this worker's next job is on `phone` and starts within keep_phone_on_seconds
        (its gap, the jitter and its account's limits included): then stopping and booting the
        phone again would cost more than leaving it on."""
        if self.stopping:
            return False
        _, earliest = self.store.next_chance(phone, self.spec.accounts)
        if earliest is None:
            return False
        now = time.time()
        starts = max(earliest, now + (self._jitter or 0.0))
        return starts - now <= self.ctx.settings.keep_phone_on_seconds

    def _after_job(self, phone: str, phone_on: bool) -> None:
        self._jitter = jitter(self.ctx.settings, self._rng)
        if not phone_on:
            if not self.spec.phone:
                self.locks.release(phone)
            return
        try:
            keep = self._next_job_soon(phone)
        except Exception as exc:   # a store that cannot be read now: err on the side of the bill
            self.log.warning("could not look ahead for phone %s: %s", phone, exc)
            keep = False
        if keep:
            self.kept = phone
            self.log.info("keeping phone %s on for its next job", phone)
        else:
            self._put_away(phone)

    def _event(self, name: str, **fields: object) -> None:
        self.events.record(ev.event(name, self.ctx.name, worker_id=self.spec.worker_id, **fields))

    def _idle(self) -> bool:
        """Wait for the earliest moment a job may become claimable; False when none can today."""
        if self.kept is not None:
            self._after_job(self.kept, True)   # still worth keeping on?
        others, earliest = self.store.next_chance(self.spec.phone, self.spec.accounts)
        if earliest is None and not others:
            return False
        now = time.time()
        timeout = IDLE_RECHECK_S if earliest is None else max(0.0, earliest - now)
        timeout = min(timeout, IDLE_RECHECK_S)
        self.state = WorkerState.WAITING
        self._messages(self.waker.wait(timeout))
        return True

    def _do(self, job: Job) -> None:
        job_id, claim_id, phone = job.job_id, job.claim_id, job.phone_id
        self.job = job
        self.state = WorkerState.PREPARING
        self.beat()
        self.log.info("claimed %s (account %s, phone %s, attempt %s)", job_id, job.account,
                      phone, job.attempts)
        published = False
        phone_on = self.kept == phone
        step = "find_video"
        evidence = attempt_dir(self.ctx.state_dir, job_id, job.attempts)
        try:
            self.store.set_phase(job_id, claim_id, Phase.PREPARING)
            video, why = self.videos.find(job.video_path)
            if video is None:   # checked before any phone starts
                raise PostError(f"{why}; nothing was pushed to the phone",
                                error_type="video_missing", category=CONTENT)
            if self.check_videos:
                step = "check_video"
                self._check_video(video)
            step = "prepare"
            if not phone_on:
                self._set_power(phone, Power.STARTING)
                phone_on = True
            self.kept = None
            try:
                self.backend.prepare(phone, self.slot)
            except Exception as exc:
                self._event(ev.PHONE_FAILED, phone=phone, job_id=job_id, account=job.account,
                            error=str(exc))
                raise
            self._set_power(phone, Power.ON)
            step = "post"
            self.state = WorkerState.POSTING
            self.beat()

            def on_publishing() -> None:
                nonlocal published
                # Raises ClaimLost if the claim was recovered: the backend then never shares.
                self.store.set_phase(job_id, claim_id, Phase.PUBLISHING)
                published = True
                self.state = WorkerState.PUBLISHING
                self.beat()
                self.log.info("publishing %s", job_id)

            request = PostRequest(job_id, job.account, phone, video, job.caption,
                                  evidence_dir=evidence, claim_id=claim_id,
                                  on_task=lambda task_id: self.store.set_task(job_id, claim_id,
                                                                              task_id))
            video_id = self.backend.post(request, self.slot, on_publishing)
        except ClaimLost as exc:
            self.log.warning("lost the claim on %s: %s", job_id, exc)
        except Exception as exc:  # every failure is classified and recorded, none kills the loop
            write_step(evidence, step=failed_step(exc) or step, error=str(exc),
                       at=now_iso(time.time()), job_id=job_id, account=job.account,
                       phone=phone, attempt=job.attempts)
            self._record_failure(job, exc, published)
        else:
            self._record_success(job, video_id)
        finally:
            self.job = None
            self.state = WorkerState.IDLE
            if step in ("prepare", "post"):
                try:
                    self.power.post_ended(phone)
                except OSError as exc:
                    self.log.warning("could not record the end of a post on %s: %s", phone, exc)
            self._after_job(phone, phone_on)
            wake.send(str(self.ctx.root), range(self.spec.n_workers))
            self.beat()

    def _check_video(self, video: Path) -> None:
        """A file that is not a playable video fails as content before any phone starts: it
        would fail on every phone, and a cloud phone bills while it finds out."""
        from .videos import probe   # PyAV is loaded only by workers that check videos
        problem = probe(video)
        if problem:
            raise PostError(f"{video.name} {problem}; nothing was pushed to the phone",
                            error_type="corrupted_video", category=CONTENT)


    def _record_failure(self, job: Job, exc: Exception, published: bool) -> None:
        job_id, claim_id = job.job_id, job.claim_id
        cls = classify(exc)
        if published and not (isinstance(exc, PostError) and exc.error_type):
            # The share step was reached: the post may be public, so a retry could post twice.
            # Only a backend that knows what happened (it names the error type) says otherwise.
            cls = Classification(UNKNOWN, OUTCOME_UNKNOWN)
        try:
            row = self.store.fail(job_id, claim_id, exc, cls)
            self.log.warning("failed %s: %s [%s/%s] -> %s", job_id, exc, cls.category,
                             cls.error_type, row["status"])
        except ClaimLost as lost:
            self.log.warning("lost the claim on %s while failing it: %s", job_id, lost)
            return
        self._alert_failure(job, cls, str(exc))

    def _alert_failure(self, job: Job, cls: Classification, error: str) -> None:
        fields = {"job_id": job.job_id, "account": job.account, "phone": job.phone_id,
                  "error_type": cls.error_type, "error": error}
        if cls.error_type == OUTCOME_UNKNOWN:
            self._event(ev.OUTCOME_UNKNOWN, **fields)
        elif cls.category == ACCOUNT:
            self._event(ev.ACCOUNT_BLOCKED, **fields)
        elif cls.error_type in RUN_STOPPING_TYPES:
            # Every later job would fail the same way: stop claiming, and say why.
            self.log.error("stopping the run: %s", error)
            self._event(ev.RUN_BLOCKED, **fields)
            self.stopping = True
            wake.send(str(self.ctx.root), range(self.spec.n_workers), wake.STOP)

    def _record_success(self, job: Job, video_id: str | None) -> None:
        """The post is public. If recording it fails (a full disk), the job must still never be
        retried: it ends as an unknown outcome, or, if even that cannot be written, stays
        claimed in phase publishing, which recovery turns into an unknown outcome."""
        job_id, claim_id = job.job_id, job.claim_id
        try:
            self.store.complete(job_id, claim_id, video_id or "")
            self.log.info("success %s (video id %s)", job_id, video_id or "-")
            return
        except ClaimLost as exc:
            self.log.warning("lost the claim on %s after posting: %s", job_id, exc)
            return
        except Exception as exc:
            self.log.error("posted %s but could not record the success: %s", job_id, exc)
            error = exc
        message = (f"posted, but the success could not be recorded ({error}); check the "
                   "account before retrying it")
        try:
            self.store.fail(job_id, claim_id, message, Classification(UNKNOWN, OUTCOME_UNKNOWN))
            self._alert_failure(job, Classification(UNKNOWN, OUTCOME_UNKNOWN), message)
        except Exception as exc:
            self.log.error("could not record %s as an unknown outcome either: %s", job_id, exc)


def worker_main(spec: WorkerSpec) -> None:
    code = Worker(spec).run()
    raise SystemExit(code)


# --- the supervisor ------------------------------------------------------------------------------
@dataclass
class RunOptions:
    workers: int = 1
    phones: list[str] | None = None
    max_passes: int = 3
    retry_delay: float = 60.0
    backend: str | None = None
    lease_s: float | None = None          # default: the campaign's lease_seconds
    accounts: list[str] | None = None     # only these accounts of the campaign


@dataclass
class Slot:
    spec: WorkerSpec
    process: mp.Process | None = None
    restarts: list[float] = field(default_factory=list)
    done: bool = False
    exit_codes: list[int] = field(default_factory=list)
    start_at: float = 0.0        # stagger_seconds: when its first start is due


class Supervisor:
    """Runs one campaign's day. Create it in the process that will hold the run lock."""

    def __init__(self, ctx: PostingContext, options: RunOptions, log=None, on_tick=None):
        self.ctx = ctx
        self.options = options
        self.lease_s = options.lease_s or ctx.settings.lease_seconds
        self.backend_name = options.backend or ctx.settings.backend
        self.run_id = uuid.uuid4().hex[:12]
        self.log = log or file_logger("postdeck.supervisor", ctx.logs_dir / "supervisor.log")
        self.store = open_store(ctx, run_id=self.run_id)
        self.slots: list[Slot] = []
        self.stop_mode: str | None = None   # None, "graceful", "now"
        self.on_tick = on_tick
        self._mp = mp.get_context("spawn")
        self.events = EventLog(ctx.events_file)
        self.notifier = Notifier(ctx.settings.notify, self.log)
        self._events_at = 0
        self._phones_backend = None
        self.watched: dict[str, str] = {}     # job_id -> claim_id of tasks watched here
        self._watched_at = 0.0
        self.blocked = ""                     # why the run stopped claiming (run_blocked)
        # The supervisor's own lease: the claims it watches (WATCHER) are held under it.
        self.lease: Lease = LocalLease()
        self._renewed_at = 0.0

    def wait_for_orphans(self, timeout: float = 60.0) -> None:
        """Workers of a supervisor that died finish their job and leave; wait for them rather
        than recover a claim that is still being worked on."""
        deadline = time.time() + timeout
        while True:
            alive = live_workers(self.ctx)
            if not alive:
                return
            if time.time() > deadline:
                raise Refused("workers of an earlier run are still alive (pids "
                              f"{', '.join(str(h.pid) for h in alive)})",
                              pids=[h.pid for h in alive], remedies=(Remedy.STOP_ALL,))
            time.sleep(0.2)

    # --- the run ---------------------------------------------------------------------------------
    def start(self) -> None:
        info = {"pid": os.getpid(), "create_time": create_time_of(os.getpid()),
                "run_id": self.run_id, "started_at": time.time(), "workers": self.options.workers,
                "backend": self.backend_name}
        self.ctx.state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(run_info_path(self.ctx), json.dumps(info).encode())
        os.environ[WORKER_MARKER_ENV] = str(self.ctx.root)   # inherited by every spawned worker
        self._events_at = self.events.end()
        clear_pause(self.ctx)          # a pause belongs to the run it was given to
        self.wait_for_orphans()
        pruned = prune(self.ctx.state_dir, self.ctx.settings.evidence_days, time.time())
        if pruned:
            self.log.info("pruned %d evidence folder(s) older than %d days", pruned,
                          self.ctx.settings.evidence_days)
        self.lease = self.store.hold_run(os.getpid(), self.lease_s, self.run_id)
        self._resolve_tasks(set())
        recovered = self.store.recover_stale(live_workers=self._live_ids(), run_id=self.run_id)
        for job in recovered:
            self.log.warning("recovered stale claim %s -> %s (%s)", job["job_id"], job["status"],
                             job["error_type"])
        self._alert_recovered(recovered)
        # A run that was killed outright (SIGKILL, a power cut) left its phones on: they bill.
        self.power_off_left_on()
        retry = RetryPolicy(self.options.retry_delay, self.options.max_passes)
        for i in range(self.options.workers):
            phone = self.options.phones[i] if self.options.phones else None
            spec = WorkerSpec(index=i, campaign_root=str(self.ctx.root),
                              campaigns_dir=str(self.ctx.host_state_dir.parent),
                              legacy=self.ctx.legacy, phone=phone, run_id=self.run_id,
                              n_workers=self.options.workers, retry=retry,
                              backend=self.backend_name, parent_pid=os.getpid(),
                              daily_limit=self.ctx.daily_limit,
                              accounts=(frozenset(self.options.accounts)
                                        if self.options.accounts else None),
                              lease_s=self.lease_s)
            self.slots.append(Slot(spec, start_at=time.time() + i * self.ctx.settings.stagger_seconds))
        self._spawn_due()
        self.log.info("run %s started: %d worker(s), backend %s", self.run_id,
                      self.options.workers, self.backend_name)
        self._alert(ev.RUN_STARTED, run_id=self.run_id, workers=self.options.workers,
                    backend=self.backend_name, counts=self.store.stats())

    def _spawn_due(self) -> float | None:
        """Start the workers whose stagger delay is over; when the next one is due, or None."""
        now, pending = time.time(), None
        for slot in self.slots:
            if slot.process is None and not slot.done:
                if self.stop_mode is not None:
                    slot.done = True          # stopped before its turn: it never starts
                elif slot.start_at <= now:
                    self._spawn(slot)
                else:
                    pending = slot.start_at if pending is None else min(pending, slot.start_at)
        return pending

    # --- alerts ----------------------------------------------------------------------------------
    def _alert(self, name: str, **fields: object) -> None:
        """An event of the supervisor's own: into the journal, like the workers' ones, so the
        journal is the one record of what was alerted."""
        self.events.record(ev.event(name, self.ctx.name, **fields))
        self._deliver()

    def _deliver(self) -> None:
        """Hand the journal's new events to the notifier (which sends them in its own thread)."""
        items, self._events_at = self.events.read_from(self._events_at)
        for item in items:
            if item.get("event") == ev.RUN_BLOCKED and not self.blocked:
                self.blocked = str(item.get("error") or "a worker stopped the run")
                self.request_stop("graceful")
            self.notifier.send(item)

    def _alert_recovered(self, jobs) -> None:
        for job in jobs:
            if job["error_type"] == OUTCOME_UNKNOWN:
                self.events.record(ev.event(
                    ev.OUTCOME_UNKNOWN, self.ctx.name, job_id=job["job_id"],
                    account=job["account"], phone=job["phone_id"], error_type=OUTCOME_UNKNOWN,
                    error=job["error"]))

    # --- phones left on --------------------------------------------------------------------------
    def _backend(self):
        if self._phones_backend is None:
            self._phones_backend = make_backend(self.ctx, self.backend_name)
        return self._phones_backend

    def power_off_left_on(self, worker_id: str | None = None) -> list[str]:
        """Turn off this campaign's phones that are still recorded as on (or starting) by a
        worker that is gone: `worker_id`'s after it died, or every one at the end of the run.
        Geelark bills a cloud phone by the minute, so none is left on by a crash or an end."""
        power = PhonePower(self.ctx.power_dir, self.ctx.settings.tz)
        live = self._live_ids()
        off = []
        for record in power.records(self._known_phones()):
            if not record.running or record.campaign_root != str(self.ctx.root):
                continue
            if worker_id is not None and record.worker_id != worker_id:
                continue
            if worker_id is None and record.worker_id in live:
                continue
            try:
                self._backend().power_off(record.phone)
            except Exception as exc:
                self.log.error("could not turn phone %s off: %s", record.phone, exc)
                self.events.record(ev.event(ev.PHONE_FAILED, self.ctx.name, phone=record.phone,
                                            error=f"could not turn it off: {exc}"))
                continue
            power.set_state(record.phone, Power.OFF)
            off.append(record.phone)
        if off:
            self.log.warning("turned off phone(s) left on: %s", ", ".join(off))
        return off

    def _known_phones(self) -> list[str]:
        phones = list(self.options.phones or []) + self._campaign_phones()
        try:
            phones += [r["phone_id"] for r in self.store.jobs() if r["phone_id"]]
        except Exception:   # an unreadable file: the accounts' phones still get turned off
            pass
        return list(dict.fromkeys(phones))

    def _spawn(self, slot: Slot) -> None:
        proc = self._mp.Process(target=worker_main, args=(slot.spec,),
                                name=f"postdeck-worker-{slot.spec.index}", daemon=False)
        proc.start()
        slot.process = proc
        self.log.info("worker %s started as pid %s", slot.spec.worker_id, proc.pid)

    def request_stop(self, mode: str) -> None:
        if self.stop_mode == "now":
            return
        self.stop_mode = "now" if mode == "now" or self.stop_mode == "graceful" else "graceful"
        self.log.info("stop requested (%s)", self.stop_mode)
        ids = [s.spec.worker_id for s in self.slots]
        wake.send(str(self.ctx.root), ids, wake.STOP if self.stop_mode == "graceful" else wake.STOP_NOW)

    def loop(self, poll_s: float = 0.25) -> None:
        handled_now = False
        while True:
            if self.stop_mode == "now" and not handled_now:
                self._stop_now()
                handled_now = True
            alive = 0
            for slot in self.slots:
                proc = slot.process
                if proc is None or slot.done:
                    continue
                if proc.exitcode is None:
                    alive += 1
                    self._check_hung(slot)
                    continue
                self._reap(slot)
                if not slot.done:
                    alive += 1
            pending = self._spawn_due()
            if pending is not None:
                alive += 1
            if self.stop_mode != "now":
                self._poll_watched()
                if self.watched:
                    alive += 1           # a watched task keeps the run going until it ends
            self._renew_and_recover()
            self._deliver()
            if self.on_tick:
                self.on_tick()
            if alive == 0:
                return
            timeout = poll_s if pending is None else min(poll_s, max(0.0, pending - time.time()))
            mp.connection.wait([s.process.sentinel for s in self.slots
                                if s.process is not None and not s.done], timeout=timeout)

    def _renew_and_recover(self) -> None:
        """Every few seconds: renew the supervisor's lease, and on a store shared by several
        hosts recover the claims whose lease expired (another host's workers that died with
        their host), settling their remote tasks first."""
        if time.time() - self._renewed_at < HEARTBEAT_EVERY_S:
            return
        self._renewed_at = time.time()
        try:
            self.lease.renew("supervising")
            if not self.store.shared:
                return
            live = self._live_ids()
            if not self.store.stale_claims(live, self.run_id):
                return
            self._resolve_tasks(live)
            recovered = self.store.recover_stale(self._live_ids(), run_id=self.run_id)
        except Exception as exc:   # the store is away for now: the next tick asks again
            self.log.warning("could not check for expired leases: %s", exc)
            return
        for job in recovered:
            self.log.warning("recovered %s -> %s %s (%s)", job["job_id"], job["status"],
                             job["error_type"], job["error"])
        self._alert_recovered(recovered)
        if recovered:
            wake.send(str(self.ctx.root), [s.spec.worker_id for s in self.slots])

    def _live_ids(self) -> set[str]:
        live = {s.spec.worker_id for s in self.slots
                if s.process is not None and s.process.exitcode is None}
        return live | {WATCHER} if self.watched else live

    # --- remote tasks whose worker is gone (geelark-task) ----------------------------------------
    def _resolve_tasks(self, live: set[str], cancel: bool = False) -> None:
        """Before lost claims are recovered: a publishing claim whose post is a remote task is
        settled by asking the task, not guessed. Posted: a success; ended: its failure; still
        running: watched by this supervisor, the account busy meanwhile. Only a claim with no
        findable task is left to recovery, which makes it an unknown outcome. `cancel`
        (stop-all): a task that has not started is cancelled and its job retried later."""
        try:
            rows = self.store.stale_claims(live, self.run_id)
        except Exception as exc:   # recovery goes on without; the claims stay as they are
            self.log.error("could not read the jobs to settle their tasks: %s", exc)
            return
        for row in rows:
            if row["phase"] == "publishing":
                self._settle(row, cancel)

    def _settle(self, row: dict, cancel: bool = False) -> None:
        job_id, claim_id, task_id = row["job_id"], row["claim_id"], row["task_id"]
        backend = self._backend()
        try:
            outcome = backend.find_task(job_id, claim_id, task_id)
        except Exception as exc:   # the service is down: ask again later, guess nothing
            self.log.warning("could not ask about the task of %s: %s; watching it", job_id, exc)
            outcome = TaskOutcome(TaskState.RUNNING, task_id)
        if outcome is None or outcome.state == TaskState.MISSING:
            self.watched.pop(job_id, None)
            return
        try:
            if self.store.shared and job_id not in self.watched:
                # Take the claim over first: its holder's lease may have expired (another host),
                # and only the lease's holder may finish a claim.
                self.store.watch(job_id, claim_id, WATCHER)
            if outcome.state == TaskState.RUNNING and cancel and outcome.task_id \
                    and backend.cancel_task(outcome.task_id):
                outcome = TaskOutcome(TaskState.FAILED, outcome.task_id,
                                      error="cancelled by stop-all before it started",
                                      category=INFRASTRUCTURE, error_type="task_cancelled")
            if outcome.state == TaskState.SUCCESS:
                self.store.complete(job_id, claim_id, outcome.video_id)
                self.log.info("task %s of %s posted: success %s", outcome.task_id, job_id,
                              outcome.video_id or "(no link)")
            elif outcome.state == TaskState.FAILED:
                cls = Classification(outcome.category or UNKNOWN,
                                     outcome.error_type or "geelark_task_failed")
                self.store.fail(job_id, claim_id, f"{outcome.error} (task {outcome.task_id})",
                                cls)
                self.log.warning("task %s of %s ended without posting: %s", outcome.task_id,
                                 job_id, outcome.error)
            else:
                if job_id not in self.watched and not self.store.shared:
                    self.store.watch(job_id, claim_id, WATCHER)
                    self.log.info("watching task %s of %s (its worker is gone)",
                                  outcome.task_id or "(by name)", job_id)
                self.watched[job_id] = claim_id
                return
        except ClaimLost as exc:
            self.log.warning("the claim on %s changed while settling its task: %s", job_id, exc)
        self.watched.pop(job_id, None)

    def _poll_watched(self) -> None:
        if not self.watched or time.time() - self._watched_at < self.ctx.settings.task_poll_seconds:
            return
        self._watched_at = time.time()
        rows = {r["job_id"]: r for r in self.store.jobs()}
        for job_id, claim_id in list(self.watched.items()):
            row = rows.get(job_id)
            if row is None or row["status"] != "claimed" or row["claim_id"] != claim_id:
                self.watched.pop(job_id, None)
                continue
            self._settle(row)

    def _reap(self, slot: Slot) -> None:
        code = slot.process.exitcode
        slot.exit_codes.append(code)
        wid = slot.spec.worker_id
        if code == 0:
            slot.done = True
            self.log.info("worker %s finished", wid)
            return
        self.log.error("worker %s (pid %s) died with exit code %s", wid, slot.process.pid, code)
        self._resolve_tasks(self._live_ids())
        recovered = self.store.recover_stale(self._live_ids(), run_id=self.run_id)
        for job in recovered:
            self.log.warning("recovered %s from worker %s -> %s %s", job["job_id"], wid,
                             job["status"], job["error_type"])
        phones = self.power_off_left_on(wid)
        if code != EXIT_PHONE_HELD and self.stop_mode != "now":   # stop-all ends them itself
            self._alert(ev.WORKER_CRASHED, worker_id=wid, pid=slot.process.pid, exit_code=code,
                        jobs_recovered=[j["job_id"] for j in recovered], phones_turned_off=phones)
        self._alert_recovered(recovered)
        wake.send(str(self.ctx.root), [s.spec.worker_id for s in self.slots])
        now = time.time()
        slot.restarts = [t for t in slot.restarts if now - t < 60] + [now]
        if self.stop_mode is not None:
            slot.done = True
        elif code == EXIT_PHONE_HELD:
            slot.done = True  # its phone is held elsewhere: restarting would fail the same way
        elif len(slot.restarts) > RESTARTS_PER_SLOT:
            self.log.error("worker %s died %d times in a minute; not restarting it", wid,
                           len(slot.restarts))
            slot.done = True
        else:
            self._spawn(slot)

    def all_workers_failed(self) -> str:
        """Why the run could not go on ('' when it could): no worker ever ended well, and the
        operator did not stop them. A run whose every worker died must not exit 0."""
        if self.blocked:
            return f"stopped claiming: {self.blocked}"
        if self.stop_mode is not None or not self.slots:
            return ""
        if any(0 in s.exit_codes for s in self.slots):
            return ""
        codes = sorted({c for s in self.slots for c in s.exit_codes})
        why = ("the phone each was bound to is held by another process"
               if codes == [EXIT_PHONE_HELD] else f"exit codes {', '.join(map(str, codes))}")
        return (f"every worker died ({why}); see the logs in {self.ctx.logs_dir} "
                "(worker-N.log)")

    def _check_hung(self, slot: Slot) -> None:
        """A live pid whose heartbeat is older than the lease is hung: kill it, then recover."""
        path = heartbeat_path(self.ctx.heartbeats_dir, slot.spec.worker_id)
        try:
            beat = json.loads(path.read_text())
        except (OSError, ValueError):
            return
        if beat.get("pid") != slot.process.pid:
            return
        if time.time() - float(beat.get("at", 0)) > self.lease_s:
            self.log.error("worker %s heartbeat is %.0fs old; killing it", slot.spec.worker_id,
                           time.time() - float(beat.get("at", 0)))
            slot.process.kill()

    def _stop_now(self) -> None:
        for slot in self.slots:
            if slot.process is not None and slot.process.exitcode is None:
                slot.process.terminate()
        deadline = time.time() + 5
        for slot in self.slots:
            if slot.process is not None:
                slot.process.join(max(0.0, deadline - time.time()))
                if slot.process.exitcode is None:
                    slot.process.kill()
                    slot.process.join(2)
        self._resolve_tasks(self._live_ids(), cancel=True)
        released = self.store.recover_stale(self._live_ids(), run_id=self.run_id, counted=False)
        for job in released:
            self.log.warning("released %s -> %s", job["job_id"], job["status"])
        phones = list(self.options.phones or []) or self._campaign_phones()
        try:
            self._backend().stop_phones(phones)
        except Exception as exc:  # stopping phones is best effort; the claims are already safe
            self.log.error("could not stop phones: %s", exc)
        else:
            power = PhonePower(self.ctx.power_dir, self.ctx.settings.tz)
            for phone in phones:
                if power.read(phone).running:
                    power.set_state(phone, Power.OFF)

    def _campaign_phones(self) -> list[str]:
        try:
            return list(dict.fromkeys(a.phone for a in self.ctx.load_accounts()))
        except Exception:
            return []

    def finish(self) -> None:
        for slot in self.slots:
            try:
                heartbeat_path(self.ctx.heartbeats_dir, slot.spec.worker_id).unlink()
            except FileNotFoundError:
                pass
        try:
            self.power_off_left_on()
        except Exception as exc:   # the run's end must still be recorded and alerted
            self.log.error("could not check for phones left on: %s", exc)
        counts = self.store.stats()
        try:
            self.lease.close()
        except Exception as exc:   # it runs out by itself
            self.log.warning("could not give the supervisor's lease up: %s", exc)
        self.log.info("run %s ended: %s", self.run_id, counts)
        self._alert(ev.RUN_ENDED, run_id=self.run_id, counts=counts,
                    stopped=self.stop_mode, failure=self.all_workers_failed() or None)
        self.notifier.close(timeout=5.0)
