"""Starting and stopping runs: in the foreground, detached (the console's start, and --detach),
stop and stop-all. An engine API: it takes RunOptions and returns results or raises Refused; the
front ends parse their input and word the outcome. A detached supervisor has its own session
(engine/daemon.py), so closing the console or losing SSH never stops a run."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Callable

from . import operations
from .context import PostingContext
from .devices import make_backend
from .pacing import PostingWindow, local_iso
from .rules import Day
from .preflight import check_run, fit_workers
from .problems import Notice, Refused, Remedy
from .runstate import (live_workers, our_worker, process_alive, read_run_info,
                       running_supervisor, take_run_lock)
from .store import open_store
from .workers import RunOptions, Supervisor

STOP_ALL_SIGNAL = signal.SIGUSR1
DAEMON_SAYS = "the run did not start: "   # how engine/daemon.py reports a refusal
DEFAULT_MAX_PASSES = 3
DEFAULT_RETRY_DELAY_S = 60.0


def available_phones(ctx: PostingContext, backend: str | None = None) -> list[str]:
    return make_backend(ctx, backend).list_phones()


@dataclass(frozen=True)
class RunResult:
    """How a foreground run ended: the day's counts, how it was stopped (None: it ran out of
    work), and why it could not go on ('' when it could)."""
    counts: dict[str, int]
    stop_mode: str | None
    failure: str = ""


def run_foreground(ctx: PostingContext, options: RunOptions, force_reseed: bool = False,
                   on_tick: Callable[[], None] | None = None,
                   on_notice: Callable[[Notice], None] | None = None) -> RunResult:
    """Seed and run the day in this process, which becomes the supervisor (holding the run lock,
    handling SIGTERM/SIGINT/SIGHUP as stop and SIGUSR1 as stop-all) until the run ends.
    `on_notice` hears what the run decided on its own (fewer workers than asked)."""
    # Everything that can be wrong with the input is checked before any file is written.
    check_run(ctx, options)
    options, notice = fit_workers(ctx, options)
    if on_notice is not None:
        for said in (notice, window_notice(ctx)):
            if said is not None:
                on_notice(said)
    lock = take_run_lock(ctx, "starting a run")
    try:
        supervisor = Supervisor(ctx, options)
        added = operations.seed(ctx, force_reseed=force_reseed, reset_done=force_reseed,
                                only=options.accounts)
        supervisor.log.info("seeded %d job(s)", len(added))
        _install_signals(supervisor)
        supervisor.on_tick = on_tick
        supervisor.start()
        try:
            supervisor.loop()
        finally:
            supervisor.finish()
        return RunResult(supervisor.store.stats(), supervisor.stop_mode,
                         supervisor.all_workers_failed())
    finally:
        lock.release()


def window_notice(ctx: PostingContext, now: float | None = None) -> Notice | None:
    """What a run started outside the posting window does: wait, and until when, or end at once
    when the window opens only after today's midnight (the next day starts with --reset-day)."""
    now = time.time() if now is None else now
    window = PostingWindow.of(ctx.settings)
    opens = window.opens_at(now, ctx.settings.tz) if window else None
    if opens is None:
        return None
    where = f"the posting window {window.text} ({ctx.settings.timezone}) is closed"
    if opens >= Day.of(now, ctx.settings.tz).end:
        return Notice(f"{ctx.describe()}: {where} for the rest of today; it opens "
                      f"{local_iso(opens, ctx.settings.tz)}, so nothing is posted today")
    return Notice(f"{ctx.describe()}: {where}; the run waits until it opens at "
                  f"{local_iso(opens, ctx.settings.tz)}", remedies=(Remedy.STOP,))


def _install_signals(supervisor: Supervisor) -> None:
    def graceful(signum, frame):
        supervisor.request_stop("graceful")

    def now(signum, frame):
        supervisor.request_stop("now")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, graceful)
    signal.signal(STOP_ALL_SIGNAL, now)


@dataclass(frozen=True)
class Started:
    """A detached run that holds its run lock: its supervisor's pid, and what the run decided on
    its own (fewer workers than asked), for the front end to say."""
    pid: int
    notice: Notice | None = None


def start_detached(ctx: PostingContext, options: RunOptions, force_reseed: bool = False,
                   wait_s: float = 30.0) -> Started:
    """Launch a supervisor in its own session (engine/daemon.py) and return once it holds the
    run lock. If it refuses, its message is raised here."""
    operations.require_enabled(ctx)
    _, notice = fit_workers(ctx, options)
    closed = window_notice(ctx)
    if closed is not None:
        notice = closed if notice is None else Notice(f"{notice.message}; {closed.message}",
                                                      pids=notice.pids,
                                                      remedies=notice.remedies + closed.remedies)
    existing = running_supervisor(ctx)
    if existing is not None:
        raise Refused(f"a run of {ctx.describe()} is already going (supervisor pid "
                      f"{existing.pid})", pids=[existing.pid],
                      remedies=(Remedy.STATUS, Remedy.STOP))
    spec = {"legacy": ctx.legacy, "root": str(ctx.root),
            "campaigns_dir": str(ctx.campaigns_dir) if ctx.campaigns_dir else None,
            "options": asdict(options), "force_reseed": force_reseed}
    cmd = [sys.executable, "-m", "engine.daemon", json.dumps(spec)]
    ctx.logs_dir.mkdir(parents=True, exist_ok=True)
    out_path = ctx.logs_dir / "detached.out"
    before = read_run_info(ctx)
    with open(out_path, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=str(ctx.root), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.time() + wait_s
    while time.time() < deadline:
        code = proc.poll()
        info = read_run_info(ctx)
        if info and info.pid == proc.pid and (before is None or info.run_id != before.run_id):
            return Started(proc.pid, notice)
        if code is not None:
            tail = out_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise Refused(f"the run did not start: {tail[0].split(DAEMON_SAYS, 1)[-1]}")
        time.sleep(0.05)
    raise Refused(f"the run did not report within {wait_s:.0f}s; see {out_path}")


def request_stop(ctx: PostingContext, now: bool = False, wait_s: float = 30.0) -> Notice:
    """Stop: workers finish their current job and claim no more. Stop-all: end now, release
    claims, stop the phones. With no supervisor alive, stop-all still ends orphaned workers, but
    only live workers of this campaign (runstate.our_worker), never a pid a stale heartbeat
    names."""
    info = read_run_info(ctx)
    alive = info is not None and running_supervisor(ctx) is not None and process_alive(
        info.pid, info.create_time)
    if alive:
        os.kill(info.pid, STOP_ALL_SIGNAL if now else signal.SIGTERM)
        if not now:
            return Notice(f"{ctx.describe()}: stop requested (supervisor pid {info.pid}); workers "
                          "finish their current job, then the run ends", pids=[info.pid])
        deadline = time.time() + wait_s
        while time.time() < deadline and process_alive(info.pid, info.create_time):
            time.sleep(0.1)
        if process_alive(info.pid, info.create_time):
            raise Refused(f"supervisor pid {info.pid} did not end within {wait_s:.0f}s",
                          pids=[info.pid])
        return Notice(f"{ctx.describe()}: stopped at once; claims released, phones stopped")
    alive = live_workers(ctx)
    orphans = [hb for hb in alive if our_worker(hb, ctx)]
    unsure = [hb for hb in alive if hb not in orphans]
    left = (f"; left alone pid(s) {', '.join(str(h.pid) for h in unsure)}: their heartbeat is "
            "stale or they are not this campaign's workers, so postdeck will not signal them"
            if unsure else "")
    if not orphans:
        return Notice(f"{ctx.describe()}: no run is going{left}")
    pids = [h.pid for h in orphans]
    if not now:
        return Notice(f"{ctx.describe()}: no supervisor, but workers "
                      f"{', '.join(map(str, pids))} are finishing their job and will leave",
                      pids=pids, remedies=(Remedy.STOP_ALL,))
    for hb in orphans:
        try:
            os.kill(hb.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 5
    while time.time() < deadline and any(process_alive(h.pid, h.create_time) for h in orphans):
        time.sleep(0.05)
    released = open_store(ctx).recover_stale([h.worker_id for h in unsure], counted=False)
    return Notice(f"{ctx.describe()}: ended {len(orphans)} orphaned worker(s); released "
                  f"{len(released)} claim(s){left}", pids=pids)
