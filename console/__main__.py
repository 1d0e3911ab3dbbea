"""postdeck's front door: parses the command line, runs headless actions with --no-ui, otherwise
opens the console. Exit codes: 0 done, 1 refused or failed (one message on stderr), 2 usage."""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

from engine.settings import BACKENDS

ACTIONS = ("list_campaigns", "status", "seed_only", "run", "reset_day", "retry_all_failed",
           "stop", "stop_all", "import_ledger", "retry_job", "skip_job", "front_job",
           "disable_account", "enable_account", "disable_phone", "enable_phone", "pause",
           "resume", "history", "export_day")
# The actions that name one job or one account: their value must not be blank.
NAMED = {"retry_job": "a job id", "skip_job": "a job id", "front_job": "a job id",
         "disable_account": "an account name", "enable_account": "an account name",
         "disable_phone": "a phone name", "enable_phone": "a phone name"}
# Upper bounds of the numeric options: far past any real farm or schedule, so a typo (an extra
# zero, 1e12, inf) is a usage error now instead of a run that never ends or crashes later.
MAX_WORKERS = 1000
MAX_PASSES = 100
MAX_RETRY_DELAY_S = 24 * 60 * 60   # a day


class UsageError(Exception):
    pass


class OutputError(Exception):
    """stdout could not be written (a full disk, a closed pipe). Not an OSError on purpose: it must
    not be mistaken for a failure on the campaign's own files."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


class _GuardedStdout:
    """sys.stdout while a headless action runs: a failed write or flush raises OutputError, so
    entry() can tell a full disk behind `> file` from an error reading progress.csv."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise OutputError(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise OutputError(exc) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded_stdout():
    """Run a headless action with stdout guarded (see _GuardedStdout), flushing it at the end."""
    real = sys.stdout
    if real is None:   # started with stdout closed: print() writes nowhere and never fails
        yield
        return
    sys.stdout = _GuardedStdout(real)
    try:
        yield
        sys.stdout.flush()   # what print() buffered fails here, not in the interpreter's exit
    finally:
        sys.stdout = real


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 on its own errors; keep that, one line
        self.print_usage(sys.stderr)
        print(f"postdeck: usage error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> Parser:
    p = Parser(prog="postdeck", description="Operator console for phone farms that post short "
               "videos. Without --no-ui the console opens.")
    p.add_argument("--campaigns-dir", type=Path, help="folder of campaigns (default: "
                   "$POSTDECK_CAMPAIGNS_DIR, else ./campaigns)")
    p.add_argument("--campaign", metavar="NAME|PATH", help="the campaign to act on; without it "
                   "--no-ui works in legacy mode on the working directory")
    p.add_argument("--no-ui", action="store_true", help="run the action headless (cron, scripts)")
    a = p.add_argument_group("actions (with --no-ui)")
    a.add_argument("--list-campaigns", action="store_true", help="list the campaigns")
    a.add_argument("--status", action="store_true", help="show the campaign's progress")
    a.add_argument("--seed-only", action="store_true", help="add today's jobs without running")
    a.add_argument("--run", action="store_true", help="seed and run the day")
    a.add_argument("--reset-day", action="store_true", help="archive today's progress and start "
                   "a new day (refused while a run is alive)")
    a.add_argument("--retry-all-failed", action="store_true", help="put failed jobs back in the "
                   "queue")
    a.add_argument("--stop", action="store_true", help="let workers finish their job, then end")
    a.add_argument("--stop-all", action="store_true", help="end now, release claims, stop phones")
    a.add_argument("--pause", action="store_true", help="workers finish their job, turn their "
                   "phones off and wait; the run goes on after --resume")
    a.add_argument("--resume", action="store_true", help="resume a paused run")
    a.add_argument("--history", action="store_true", help="posts per day over the last 30 "
                   "days (archives too), failures by error type, per-account totals")
    a.add_argument("--import-ledger", type=Path, metavar="FILE", help="import the earlier "
                   "system's master ledger (account|video|timestamp): its videos are never "
                   "seeded again")
    a.add_argument("--retry-job", metavar="ID", help="put one failed job back in the queue "
                   "(with --retry-include-non-retryable for account/content errors and unknown "
                   "outcomes)")
    a.add_argument("--skip-job", metavar="ID", help="take one job that is not running out of "
                   "the queue for good (see --reason)")
    a.add_argument("--front-job", metavar="ID", help="move a pending job to the front of the "
                   "queue")
    a.add_argument("--disable-account", metavar="NAME", help="take an account out of rotation: "
                   "its jobs wait, none is claimed (see --reason)")
    a.add_argument("--enable-account", metavar="NAME", help="put an account back in rotation")
    a.add_argument("--disable-phone", metavar="NAME", help="take a phone out of rotation: no "
                   "job on it is claimed, whichever account (see --reason)")
    a.add_argument("--enable-phone", metavar="NAME", help="put a phone back in rotation")
    a.add_argument("--export-day", type=Path, metavar="FILE", help="write a day's jobs as a "
                   "progress CSV to FILE (a new file): today's, or the closed day --day names")
    o = p.add_argument_group("options")
    o.add_argument("--store", metavar="URL", help="the job store: a postgresql://user@host/db "
                   "URL shared by several hosts (default: POSTDECK_STORE, else the campaign's "
                   "CSV file); a password goes in PGPASSWORD or ~/.pgpass, never here")
    o.add_argument("--day", metavar="YYYYMMDD[_N]", help="with --export-day: a closed day, as "
                   "its archive name says it")
    o.add_argument("--json", action="store_true", help="machine-readable output (status, list, "
                   "history)")
    o.add_argument("--force-reseed", action="store_true", help="with --reset-day: seed the new "
                   "day at once")
    o.add_argument("--workers", type=int, metavar="N", help="worker processes for --run")
    o.add_argument("--phones", metavar="a,b,c", help="bind worker i to phone i")
    o.add_argument("--accounts", metavar="a,b,c", help="with --seed-only or --run: only these "
                   "accounts of the campaign")
    o.add_argument("--max-passes", type=int, metavar="N", help="passes over retryable failures")
    o.add_argument("--retry-delay", type=float, metavar="S", help="seconds before a failed job "
                   "is retried")
    o.add_argument("--retry-include-non-retryable", action="store_true", help="with "
                   "--retry-all-failed or --retry-job: also account/content errors and unknown "
                   "outcomes (an unknown outcome may already be public: check it first)")
    o.add_argument("--reason", metavar="TEXT", help="with --skip-job (default: skipped by the "
                   "operator) or --disable-account: why")
    o.add_argument("--backend", choices=BACKENDS, help="override the "
                   "campaign's phone backend")
    o.add_argument("--detach", action="store_true", help="with --run: run in the background")
    return p


def chosen_actions(args) -> list[str]:
    # `is not None`: a blank job id or account name is still the action (and a usage error).
    chosen = [a for a in ACTIONS if getattr(args, a) not in (None, False)]
    allowed_chains = ({"reset_day", "run"}, {"reset_day", "seed_only"})
    if len(chosen) > 1 and set(chosen) not in allowed_chains:
        raise UsageError("give one action (only --reset-day may be combined, with --run or "
                         f"--seed-only); got {', '.join('--' + c.replace('_', '-') for c in chosen)}")
    return chosen


def validate_options(args, actions: list[str]) -> None:
    if args.json and not set(actions) & {"status", "list_campaigns", "history"}:
        raise UsageError("--json goes with --status, --list-campaigns or --history")
    if args.detach and "run" not in actions:
        raise UsageError("--detach goes with --run")
    if args.retry_include_non_retryable and not {"retry_all_failed", "retry_job"} & set(actions):
        raise UsageError("--retry-include-non-retryable goes with --retry-all-failed or "
                         "--retry-job")
    for action, what in NAMED.items():
        if action in actions and not getattr(args, action).strip():
            raise UsageError(f"--{action.replace('_', '-')} needs {what}")
    if args.reason is not None and not {"skip_job", "disable_account",
                                        "disable_phone"} & set(actions):
        raise UsageError("--reason goes with --skip-job or --disable-account")
    if args.reason is not None and not args.reason.strip():
        raise UsageError("--reason needs a text (leave it out for the default)")
    if args.campaign is not None and not args.campaign.strip():
        raise UsageError("--campaign needs a campaign name or path; leave it out to work on the "
                         "working directory (legacy mode)")
    for name, most in (("workers", MAX_WORKERS), ("max_passes", MAX_PASSES)):
        value = getattr(args, name)
        if value is not None and not 1 <= value <= most:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1 and at most {most}, "
                             f"not {value}")
    # `not (a <= x <= b)` also refuses nan, which float() accepts and every comparison fails.
    if args.retry_delay is not None and not 0 <= args.retry_delay <= MAX_RETRY_DELAY_S:
        raise UsageError(f"--retry-delay must be 0 or more seconds and at most "
                         f"{MAX_RETRY_DELAY_S} (a day), not {args.retry_delay:g}")
    if args.accounts is not None and not {"run", "seed_only"} & set(actions):
        raise UsageError("--accounts goes with --seed-only or --run")
    if args.accounts is not None and any(not a.strip() for a in args.accounts.split(",")):
        raise UsageError("--accounts needs account names, like --accounts a,b,c (no empty "
                         "name)")
    if args.day is not None and "export_day" not in actions:
        raise UsageError("--day goes with --export-day")
    if args.day is not None and not args.day.strip():
        raise UsageError("--day needs a day, like --day 20261201 (or 20261201_1 after a second "
                         "reset that date)")
    if args.store is not None:
        _check_store(args.store)
    run_only = ("workers", "phones", "max_passes", "retry_delay", "backend")
    for name in run_only:
        if getattr(args, name) is not None and "run" not in actions:
            raise UsageError(f"--{name.replace('_', '-')} goes with --run")


def _check_store(url: str) -> None:
    """--store is a PostgreSQL URL without a password: a command line shows in `ps` and in the
    shell's history, so a secret never comes from it."""
    from engine.pg_store import check_url, has_password
    from engine.problems import InputError
    try:
        check_url(url, "--store")
    except InputError as exc:
        raise UsageError(exc.message) from None
    if has_password(url):
        raise UsageError("--store must not carry a password (a command line shows in ps and in "
                         "the shell's history): put it in PGPASSWORD or ~/.pgpass (mode 0600), "
                         "or give the whole URL in POSTDECK_STORE")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        actions = chosen_actions(args)
        validate_options(args, actions)
        if actions and not args.no_ui:
            raise UsageError("actions run headless: add --no-ui")
        if args.no_ui and not actions:
            raise UsageError("--no-ui needs an action, e.g. --status")
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"postdeck: usage error: {exc}", file=sys.stderr)
        return 2
    if args.store is not None:
        # In the environment, so every process of the run (spawned workers, a detached
        # supervisor) and the console use the same store.
        from engine.context import STORE_ENV
        os.environ[STORE_ENV] = args.store
    if not args.no_ui:
        from .launch import open_console
        return open_console(args)
    from .headless import run_actions
    with guarded_stdout():
        return run_actions(args, actions)


def entry() -> int | str | None:
    try:
        try:
            code = main()
        except SystemExit as exc:   # argparse, after --help or a usage error
            code = exc.code
    except OutputError as exc:
        return _output_failed(exc.error)
    except BrokenPipeError as exc:  # a write outside the guard
        return _output_failed(exc)
    try:
        if sys.stdout is not None:
            sys.stdout.flush()   # output outside the guard (--help) fails here, not at exit
    except OSError as exc:
        return _output_failed(exc)
    return code


def _output_failed(error: OSError) -> int:
    _discard_stdout()
    if isinstance(error, BrokenPipeError):  # `postdeck ... | head` closed the pipe: not an error
        sys.stderr.close()
        return 0
    print(f"postdeck: cannot write the output: {error.strerror or error}; send it somewhere "
          "writable and run the command again", file=sys.stderr)
    return 1


def _discard_stdout() -> None:
    """Point stdout at /dev/null. The bytes print() left in its buffer would fail again in the
    interpreter's final flush and print 'Exception ignored ...' after our one message."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    sys.stdout = open(os.devnull, "w", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(entry())
