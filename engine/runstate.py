"""What is alive for a campaign: the run lock, its supervisor, and worker heartbeats.

The run lock is a `filelock.FileLock` held by the supervisor for the whole run; the OS frees it
when the process dies, so a held lock always means a live supervisor. Each worker writes a
heartbeat file; a worker counts as alive when its pid exists with the same create time (pids are
reused) and its heartbeat is fresh.
"""
from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Iterator

import psutil
from filelock import FileLock, Timeout

from .durable import write_atomic
from .problems import Refused, Remedy

HEARTBEAT_EVERY_S = 2.0
# A worker whose heartbeat is older than this is treated as dead even if its pid exists
# (hung in the kernel, stopped with SIGSTOP, or a pid that was reused).
HEARTBEAT_LEASE_S = 30.0
RUN_LOCK_WAIT_S = 0.5
# Set in every worker's environment to the campaign folder it works for: before a signal is sent
# to a pid named in a heartbeat, the process must say it is a worker of this campaign.
WORKER_MARKER_ENV = "POSTDECK_WORKER_OF"


def process_alive(pid: int, create_time: float | None = None) -> bool:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if create_time is not None and abs(proc.create_time() - create_time) > 1.0:
            return False
        return True
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def create_time_of(pid: int) -> float:
    return psutil.Process(pid).create_time()


@dataclass(frozen=True)
class Heartbeat:
    worker_id: str
    pid: int
    create_time: float
    phone: str | None
    appium_port: int
    system_ports: str
    state: str
    job_id: str
    account: str
    at: float
    run_id: str
    path: Path

    @property
    def age(self) -> float:
        return max(0.0, time.time() - self.at)

    def alive(self, lease_s: float = HEARTBEAT_LEASE_S) -> bool:
        return self.age <= lease_s and process_alive(self.pid, self.create_time)


def heartbeat_path(folder: Path, worker_id: str) -> Path:
    """Where worker `worker_id` of a campaign writes its heartbeat (read_heartbeats globs it)."""
    return Path(folder) / f"worker-{worker_id}.json"


def write_heartbeat(folder: Path, **fields) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fields.setdefault("at", time.time())
    path = heartbeat_path(folder, fields["worker_id"])
    # Rewritten every few seconds by every worker: never half-written matters, surviving a power
    # cut does not, so no fsync competes with the store's writes.
    write_atomic(path, json.dumps(fields).encode(), durable=False)


def read_heartbeats(folder: Path) -> list[Heartbeat]:
    beats = []
    if not folder.is_dir():
        return beats
    for path in sorted(folder.glob("worker-*.json")):
        try:
            d = json.loads(path.read_text())
            beats.append(Heartbeat(
                worker_id=str(d["worker_id"]), pid=int(d["pid"]),
                create_time=float(d.get("create_time") or 0), phone=d.get("phone"),
                appium_port=int(d.get("appium_port") or 0),
                system_ports=str(d.get("system_ports") or ""), state=str(d.get("state") or ""),
                job_id=str(d.get("job_id") or ""), account=str(d.get("account") or ""),
                at=float(d.get("at") or 0), run_id=str(d.get("run_id") or ""), path=path))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a heartbeat being replaced or garbage: not a live worker
    return beats


def live_workers(ctx) -> list[Heartbeat]:
    """Workers whose process still exists, fresh heartbeat or not: a hung worker still blocks a
    day reset. Not a licence to signal them: see our_worker."""
    return [hb for hb in read_heartbeats(ctx.heartbeats_dir) if process_alive(hb.pid, hb.create_time)]


def our_worker(hb: Heartbeat, ctx) -> bool:
    """Whether the process a heartbeat names may be signalled: the heartbeat is fresh, the pid
    has the start time it recorded, and the process carries this campaign's worker marker. A
    stale or hand-made heartbeat file never gets some other process killed."""
    if not hb.alive():
        return False
    try:
        marker = psutil.Process(hb.pid).environ().get(WORKER_MARKER_ENV)
    except (psutil.Error, OSError):
        return False
    return marker == str(ctx.root)


@dataclass(frozen=True)
class RunInfo:
    pid: int
    create_time: float
    run_id: str
    started_at: float
    workers: int


def run_info_path(ctx) -> Path:
    return ctx.state_dir / "run.json"


def read_run_info(ctx) -> RunInfo | None:
    try:
        d = json.loads(run_info_path(ctx).read_text())
        return RunInfo(int(d["pid"]), float(d["create_time"]), str(d["run_id"]),
                       float(d["started_at"]), int(d.get("workers", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def running_supervisor(ctx) -> RunInfo | None:
    """The live supervisor of this campaign, or None. The run lock is the truth (the OS frees it
    when the holder dies); run.json only says who holds it. The probe holds the lock for an
    instant, so take_run_lock waits a little before it calls a run 'already going'."""
    if not ctx.run_lock_file.exists():
        return None
    lock = FileLock(str(ctx.run_lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        info = read_run_info(ctx)
        return info or RunInfo(pid=0, create_time=0, run_id="", started_at=0, workers=0)
    lock.release()
    return None


def take_run_lock(ctx, action: str) -> FileLock:
    """The campaign's run lock, held by the caller until it releases it; refused, naming the
    supervisor's pid, while a run holds it."""
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    # A short wait, not 0: a status probe (running_supervisor) may hold the lock for an instant.
    lock = FileLock(str(ctx.run_lock_file), timeout=RUN_LOCK_WAIT_S, poll_interval=0.01)
    try:
        lock.acquire()
    except Timeout:
        info = read_run_info(ctx)
        workers = [hb.pid for hb in live_workers(ctx)]
        who = f"supervisor pid {info.pid}" if info else "another process"
        if workers:
            who += f", worker pids {', '.join(map(str, workers))}"
        raise Refused(f"{action} refused: a run of {ctx.describe()} is already going ({who})",
                      pids=([info.pid] if info else []) + workers,
                      remedies=(Remedy.STATUS, Remedy.STOP)) from None
    return lock


@contextmanager
def quiet_campaign(ctx, action: str) -> Iterator[None]:
    """Hold the run lock while doing `action` so no run can start meanwhile; refuse (naming the
    pids) while a run holds it or any worker of the campaign is still alive."""
    lock = take_run_lock(ctx, action)
    try:
        alive = live_workers(ctx)
        if alive:
            pids = ", ".join(str(hb.pid) for hb in alive)
            raise Refused(f"{action} refused: workers of {ctx.describe()} are still alive "
                          f"(pids {pids})", pids=[hb.pid for hb in alive],
                          remedies=(Remedy.STOP_ALL,))
        yield
    finally:
        lock.release()


class WorkerState(StrEnum):
    """What a worker writes in its heartbeat (engine/workers.py sets it)."""
    STARTING = "starting"
    WAITING = "waiting"       # nothing claimable yet: sleeps until a wake-up or a due time
    PREPARING = "preparing"   # a job in hand: phone, adb, Appium
    POSTING = "posting"
    PUBLISHING = "publishing"  # past the share step
    IDLE = "idle"
    PAUSED = "paused"          # the run is paused: its phone off, it waits for --resume
    STOPPED = "stopped"


# With a job in hand, and without one. WORKER_DEAD is what a status shows for a worker whose
# process is gone.
WORKER_BUSY_STATES = frozenset({WorkerState.PREPARING, WorkerState.POSTING,
                                WorkerState.PUBLISHING})
WORKER_IDLE_STATES = frozenset(set(WorkerState) - WORKER_BUSY_STATES)
WORKER_DEAD = "dead"


def supervisor_pid(info: RunInfo | None) -> int | None:
    """The pid a status names for a run: None when no run goes, or when the run lock is held but
    run.json does not say by whom yet (running_supervisor gives pid 0 then)."""
    return info.pid if info and info.pid else None
