"""Starting and stopping runs: the `--run`, `--stop` and `--stop-all` actions, and the detached
start the console uses. A detached supervisor has its own session, so closing the console or
losing SSH never stops a run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from . import operations
from .context import PostingContext
from .devices import make_backend
from .preflight import check_run
from .problems import Refused
from .runstate import (live_workers, our_worker, process_alive, read_run_info,
                       running_supervisor, take_run_lock)
from .store import JobStore, open_store
from .workers import RunOptions, Supervisor

STOP_ALL_SIGNAL = signal.SIGUSR1
DEFAULT_MAX_PASSES = 3
DEFAULT_RETRY_DELAY_S = 60.0


def available_phones(ctx: PostingContext, backend: str | None = None) -> list[str]:
    return make_backend(ctx, backend).list_phones()


def options_from_args(args) -> RunOptions:
    phones = [p.strip() for p in args.phones.split(",")] if args.phones else None
    if phones is not None and any(not p for p in phones):
        raise Refused("--phones has an empty name; write --phones a,b,c")
    workers = args.workers or (len(phones) if phones else 1)
    return RunOptions(workers=workers, phones=phones,
                      max_passes=args.max_passes or DEFAULT_MAX_PASSES,
                      retry_delay=DEFAULT_RETRY_DELAY_S if args.retry_delay is None
                      else args.retry_delay,
                      backend=args.backend)


def cli_action(ctx: PostingContext, args, actions: list[str]) -> int:
    if "stop" in actions:
        return _print(request_stop(ctx, now=False))
    if "stop_all" in actions:
        return _print(request_stop(ctx, now=True))
    options = options_from_args(args)
    if args.detach:
        pid = start_detached(ctx, options.workers, options.phones, options.max_passes,
                             options.retry_delay, options.backend,
                             force_reseed=args.force_reseed and "reset_day" in actions)
        print(f"{ctx.describe()}: run started in the background (supervisor pid {pid}); "
              "watch it with --status or the console")
        return 0
    return run_foreground(ctx, options, force_reseed=args.force_reseed and "reset_day" in actions)


def _print(message: str) -> int:
    print(message)
    return 0


def run_foreground(ctx: PostingContext, options: RunOptions, force_reseed: bool = False) -> int:
    # Everything that can be wrong with the input is checked before any file is written.
    check_run(ctx, options.workers, options.phones, options.backend)
    lock = take_run_lock(ctx, "--run")
    try:
        supervisor = Supervisor(ctx, options)
        added = operations.seed(ctx, force_reseed=force_reseed, reset_done=force_reseed)
        supervisor.log.info("seeded %d job(s)", len(added))
        _install_signals(supervisor)
        display = _Display(supervisor.store)
        supervisor.on_tick = display.tick
        supervisor.start()
        try:
            supervisor.loop()
        finally:
            supervisor.finish()
            display.close()
        _summary(ctx, supervisor)
        failed = supervisor.all_workers_failed()
        if failed:
            raise Refused(f"the run could not go on: {failed}")
        return 0
    finally:
        lock.release()


def _install_signals(supervisor: Supervisor) -> None:
    def graceful(signum, frame):
        supervisor.request_stop("graceful")

    def now(signum, frame):
        supervisor.request_stop("now")

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, graceful)
    signal.signal(STOP_ALL_SIGNAL, now)


class _Display:
    """A rich progress bar on a terminal, plain lines otherwise (cron, pipes, log files)."""

    def __init__(self, store: JobStore):
        self.store = store
        self.last: tuple | None = None
        self.progress = None
        if sys.stdout.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("{task.fields[detail]}"))
            self.task = self.progress.add_task("posting", total=1, detail="")
            self.progress.start()

    def tick(self) -> None:
        try:
            s = self.store.stats()
        except Exception:
            return  # a read between writes of a corrupted file: the workers will say why
        done = s["success"] + s["failed"] + s["skipped"]
        key = (done, s["total"], s["claimed"], s["retrying"])
        if key == self.last:
            return
        self.last = key
        detail = (f"ok {s['success']}  failed {s['failed']}  retrying {s['retrying']}  "
                  f"running {s['claimed']}")
        if self.progress is not None:
            self.progress.update(self.task, completed=done, total=max(1, s["total"]),
                                 detail=detail)
        else:
            print(f"{time.strftime('%H:%M:%S')} {done}/{s['total']} done  {detail}", flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _summary(ctx: PostingContext, supervisor: Supervisor) -> None:
    s = supervisor.store.stats()
    how = {None: "ended", "graceful": "stopped", "now": "stopped at once"}[supervisor.stop_mode]
    print(f"{ctx.describe()}: run {how}. success {s['success']}, failed {s['failed']}, "
          f"retrying {s['retrying']}, pending {s['pending']}, skipped {s['skipped']} "
          f"(total {s['total']})")


def start_detached(ctx: PostingContext, workers: int = 1, phones: list[str] | None = None,
                   max_passes: int | None = None, retry_delay: float | None = None,
                   backend: str | None = None, force_reseed: bool = False,
                   wait_s: float = 30.0) -> int:
    """Launch a supervisor in its own session and return its pid once it holds the run lock.
    If it refuses, its message is raised here."""
    operations.require_enabled(ctx)
    existing = running_supervisor(ctx)
    if existing is not None:
        raise Refused(f"a run of {ctx.describe()} is already going (supervisor pid "
                      f"{existing.pid}); stop it with --stop")
    cmd = [sys.executable, "-m", "console", "--no-ui", "--run"]
    if not ctx.legacy:
        cmd += ["--campaigns-dir", str(ctx.host_state_dir.parent), "--campaign", str(ctx.root)]
    cmd += ["--workers", str(workers)]
    if phones:
        cmd += ["--phones", ",".join(phones)]
    if max_passes is not None:
        cmd += ["--max-passes", str(max_passes)]
    if retry_delay is not None:
        cmd += ["--retry-delay", str(retry_delay)]
    if backend:
        cmd += ["--backend", backend]
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
            return proc.pid
        if code is not None:
            tail = out_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise Refused(f"the run did not start: {tail[0].removeprefix('postdeck: ')}")
        time.sleep(0.05)
    raise Refused(f"the run did not report within {wait_s:.0f}s; see {out_path}")


def request_stop(ctx: PostingContext, now: bool = False, wait_s: float = 30.0) -> str:
    """--stop: workers finish their current job and claim no more. --stop-all: end now, release
    claims, stop the phones. With no supervisor alive, --stop-all still ends orphaned workers."""
    info = read_run_info(ctx)
    alive = info is not None and running_supervisor(ctx) is not None and process_alive(
        info.pid, info.create_time)
    if alive:
        os.kill(info.pid, STOP_ALL_SIGNAL if now else signal.SIGTERM)
        if not now:
            return (f"{ctx.describe()}: stop requested (supervisor pid {info.pid}); workers "
                    "finish their current job, then the run ends")
        deadline = time.time() + wait_s
        while time.time() < deadline and process_alive(info.pid, info.create_time):
            time.sleep(0.1)
        if process_alive(info.pid, info.create_time):
            raise Refused(f"supervisor pid {info.pid} did not end within {wait_s:.0f}s")
        return f"{ctx.describe()}: stopped at once; claims released, phones stopped"
    alive = live_workers(ctx)
    orphans = [hb for hb in alive if our_worker(hb, ctx)]
    unsure = [hb for hb in alive if hb not in orphans]
    left = (f"; left alone pid(s) {', '.join(str(h.pid) for h in unsure)}: their heartbeat is "
            "stale or they are not this campaign's workers, so postdeck will not signal them"
            if unsure else "")
    if not orphans:
        return f"{ctx.describe()}: no run is going{left}"
    if not now:
        return (f"{ctx.describe()}: no supervisor, but workers {', '.join(str(h.pid) for h in orphans)}"
                " are finishing their job and will leave; use --stop-all to end them now")
    for hb in orphans:
        try:
            os.kill(hb.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.time() + 5
    while time.time() < deadline and any(process_alive(h.pid, h.create_time) for h in orphans):
        time.sleep(0.05)
    released = open_store(ctx).recover_stale(
        [h.worker_id for h in unsure], counted=False)
    return (f"{ctx.describe()}: ended {len(orphans)} orphaned worker(s); released "
            f"{len(released)} claim(s){left}")
