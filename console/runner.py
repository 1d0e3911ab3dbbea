"""The --run, --stop and --stop-all actions for a terminal: the command line becomes RunOptions,
the engine runs (engine/runs.py), and its outcome is worded here, with a rich progress bar on a
terminal and plain lines otherwise (cron, pipes, log files)."""
from __future__ import annotations

import sys
import time

from engine import runs
from engine.context import PostingContext
from engine.problems import Refused
from engine.store import JobStore, open_store
from engine.workers import RunOptions

from .words import CLI_WORDS


def options_from_args(args) -> RunOptions:
    phones = [p.strip() for p in args.phones.split(",")] if args.phones else None
    if phones is not None and any(not p for p in phones):
        raise Refused("--phones has an empty name; write --phones a,b,c")
    workers = args.workers or (len(phones) if phones else 1)
    return RunOptions(workers=workers, phones=phones, accounts=accounts_of(args),
                      max_passes=args.max_passes or runs.DEFAULT_MAX_PASSES,
                      retry_delay=runs.DEFAULT_RETRY_DELAY_S if args.retry_delay is None
                      else args.retry_delay,
                      backend=args.backend)


def accounts_of(args) -> list[str] | None:
    """--accounts a,b,c (the earlier system's flag), checked against the campaign by the
    engine."""
    return [a.strip() for a in args.accounts.split(",")] if args.accounts else None


def run_action(ctx: PostingContext, args, actions: list[str]) -> int:
    if "stop" in actions or "stop_all" in actions:
        print(runs.request_stop(ctx, now="stop_all" in actions).explain(CLI_WORDS))
        return 0
    options = options_from_args(args)
    force_reseed = args.force_reseed and "reset_day" in actions
    if args.detach:
        started = runs.start_detached(ctx, options, force_reseed=force_reseed)
        if started.notice is not None:
            print(started.notice.explain(CLI_WORDS))
        print(f"{ctx.describe()}: run started in the background (supervisor pid {started.pid}); "
              "watch it with --status or the console")
        return 0
    display = Display(open_store(ctx))
    try:
        result = runs.run_foreground(ctx, options, force_reseed=force_reseed,
                                     on_tick=display.tick,
                                     on_notice=lambda n: print(n.explain(CLI_WORDS), flush=True))
    finally:
        display.close()
    print(summary(ctx, result))
    if result.failure:
        raise Refused(f"the run could not go on: {result.failure}")
    return 0


def summary(ctx: PostingContext, result: runs.RunResult) -> str:
    s = result.counts
    how = {None: "ended", "graceful": "stopped", "now": "stopped at once"}[result.stop_mode]
    return (f"{ctx.describe()}: run {how}. success {s['success']}, failed {s['failed']}, "
            f"retrying {s['retrying']}, pending {s['pending']}, skipped {s['skipped']} "
            f"(total {s['total']})")


class Display:
    """A rich progress bar on a terminal, plain lines otherwise."""

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
