"""postdeck's front door: parses the command line, runs headless actions with --no-ui, otherwise
opens the console. Exit codes: 0 done, 1 refused or failed (one message on stderr), 2 usage."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ACTIONS = ("list_campaigns", "status", "seed_only", "run", "reset_day", "retry_all_failed",
           "stop", "stop_all")


class UsageError(Exception):
    pass


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
    o = p.add_argument_group("options")
    o.add_argument("--json", action="store_true", help="machine-readable output (status, list)")
    o.add_argument("--force-reseed", action="store_true", help="with --reset-day: seed the new "
                   "day at once")
    o.add_argument("--workers", type=int, metavar="N", help="worker processes for --run")
    o.add_argument("--phones", metavar="a,b,c", help="bind worker i to phone i")
    o.add_argument("--max-passes", type=int, metavar="N", help="passes over retryable failures")
    o.add_argument("--retry-delay", type=float, metavar="S", help="seconds before a failed job "
                   "is retried")
    o.add_argument("--retry-include-non-retryable", action="store_true", help="with "
                   "--retry-all-failed: also account/content errors and unknown outcomes")
    o.add_argument("--backend", choices=("simulated", "geelark", "adb"), help="override the "
                   "campaign's phone backend")
    o.add_argument("--detach", action="store_true", help="with --run: run in the background")
    return p


def chosen_actions(args) -> list[str]:
    chosen = [a for a in ACTIONS if getattr(args, a)]
    allowed_chains = ({"reset_day", "run"}, {"reset_day", "seed_only"})
    if len(chosen) > 1 and set(chosen) not in allowed_chains:
        raise UsageError("give one action (only --reset-day may be combined, with --run or "
                         f"--seed-only); got {', '.join('--' + c.replace('_', '-') for c in chosen)}")
    return chosen


def validate_options(args, actions: list[str]) -> None:
    if args.json and not set(actions) & {"status", "list_campaigns"}:
        raise UsageError("--json goes with --status or --list-campaigns")
    if args.detach and "run" not in actions:
        raise UsageError("--detach goes with --run")
    if args.retry_include_non_retryable and "retry_all_failed" not in actions:
        raise UsageError("--retry-include-non-retryable goes with --retry-all-failed")
    for name in ("workers", "max_passes"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    if args.retry_delay is not None and args.retry_delay < 0:
        raise UsageError("--retry-delay must be 0 or more seconds")
    run_only = ("workers", "phones", "max_passes", "retry_delay", "backend")
    for name in run_only:
        if getattr(args, name) is not None and "run" not in actions:
            raise UsageError(f"--{name.replace('_', '-')} goes with --run")


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
    if not args.no_ui:
        from .launch import open_console
        return open_console(args)
    from .headless import run_actions
    return run_actions(args, actions)


def entry() -> int:
    try:
        return main()
    except BrokenPipeError:  # `postdeck ... | head` closed the pipe: not an error
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(entry())
