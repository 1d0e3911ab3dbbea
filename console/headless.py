"""--no-ui actions: each prints a short result on stdout, or one message on stderr and exit 1."""
from __future__ import annotations

import json
import sys

from engine import operations
from engine.context import PostingContext, default_campaigns_dir
from engine.history import history
from engine.problems import InputError, Refused
from engine.status import campaign_status
from engine.store import JobRefused

from .words import CLI_WORDS, JOB_REFUSAL_CLI_WORDS


def _fail(message: str) -> int:
    print(f"postdeck: {message}", file=sys.stderr)
    return 1


def describe_os_error(exc: OSError) -> str:
    """One line for a file the engine could not read or write (a folder where a file belongs, no
    permission, a full disk), naming the file and saying what to do."""
    if not exc.filename:
        return (f"failed: {exc.strerror or exc}; run the command again, and if it fails again see "
                "docs/RUNBOOK.md")
    where = f"{exc.filename}: "
    if isinstance(exc, IsADirectoryError):
        return f"{where}is a folder where postdeck expects a file; move it away and run again"
    if isinstance(exc, (FileExistsError, NotADirectoryError)):   # mkdir, or a path through it
        return (f"{where}a file stands where postdeck needs a folder (this path or one above it); "
                "move it away and run again")
    return (f"{where}cannot be used ({exc.strerror or exc}); check what is there and its "
            "permissions, then run the command again")


def context_for(args) -> PostingContext:
    if args.campaign:
        return PostingContext.for_campaign(args.campaigns_dir or default_campaigns_dir(),
                                           args.campaign)
    return PostingContext.for_legacy()


def run_actions(args, actions: list[str]) -> int:
    try:
        if "list_campaigns" in actions:
            return _list(args)
        ctx = context_for(args)
        if args.force_reseed and "reset_day" not in actions:
            raise Refused("--force-reseed requires --reset-day: reseeding the current day could "
                          "post to accounts twice. Use --reset-day --force-reseed for a new day.")
        if "reset_day" in actions:
            archive = operations.reset_day(ctx)
            print(f"{ctx.describe()}: new day started; "
                  + (f"archived the old one as {archive}" if archive else "there was no "
                     "progress file to archive"))
            if args.force_reseed and not ({"run", "seed_only"} & set(actions)):
                _print_seeded(ctx, operations.seed(ctx, force_reseed=True, reset_done=True))
        if "seed_only" in actions:
            from .runner import accounts_of
            _print_seeded(ctx, operations.seed(ctx, force_reseed=args.force_reseed,
                                               reset_done="reset_day" in actions,
                                               only=accounts_of(args)))
        if "status" in actions:
            return _status(ctx, args.json)
        if "history" in actions:
            return _history(ctx, args.json)
        if "export_day" in actions:
            day = args.day.strip() if args.day else None
            n = operations.export_day(ctx, args.export_day, day)
            print(f"{ctx.describe()}: wrote {'day ' + day if day else 'today'} ({n} job(s)) to "
                  f"{args.export_day}")
            return 0
        if {"pause", "resume"} & set(actions):
            from engine import pause
            said = pause.pause(ctx) if "pause" in actions else pause.resume(ctx)
            print(said.explain(CLI_WORDS))
            return 0
        if "import_ledger" in actions:
            new, known = operations.import_ledger(ctx, args.import_ledger)
            print(f"{ctx.describe()}: imported {new} new ledger entr{'y' if new == 1 else 'ies'}"
                  f" from {args.import_ledger} into {ctx.ledger_file}"
                  + (f"; {known} were already known" if known else "")
                  + ("; nothing new" if not new else ""))
        if "retry_all_failed" in actions:
            n = operations.retry_all_failed(ctx, args.retry_include_non_retryable)
            print(f"{ctx.describe()}: {n} failed job(s) put back in the queue")
        one = {"retry_job", "skip_job", "front_job", "disable_account", "enable_account",
               "disable_phone", "enable_phone"}
        if one & set(actions):
            print(_one_action(ctx, args, actions))
        if {"run", "stop", "stop_all"} & set(actions):
            from .runner import run_action
            return run_action(ctx, args, actions)
        return 0
    except JobRefused as exc:
        return _fail(_job_refusal(exc))
    except (InputError, Refused) as exc:
        return _fail(exc.explain(CLI_WORDS))
    except OSError as exc:   # the net under InputError: never a traceback for a bad path
        return _fail(describe_os_error(exc))


def _history(ctx: PostingContext, as_json: bool) -> int:
    h = history(ctx)
    if as_json:
        print(json.dumps(h, indent=2))
        return 0
    days = h["days"]
    posted = sum(d["success"] for d in days)
    failed = sum(d["failed"] for d in days)
    unknown = sum(d["unknown"] for d in days)
    rate = "-" if h["success_rate"] is None else f"{h['success_rate']:.1%}"
    print(f"{ctx.describe()}: {days[0]['date']} to {days[-1]['date']} "
          f"({ctx.settings.timezone}): {posted} posted, {failed} failed, {unknown} unknown "
          f"outcome(s); success rate {rate}")
    for d in days:
        print(f"  {d['date']}  posted {d['success']:>4}  failed {d['failed']:>4}  "
              f"unknown {d['unknown']:>4}")
    if h["errors_by_type"]:
        print("  failures by error type: "
              + ", ".join(f"{t} {n}" for t, n in h["errors_by_type"].items()))
    for a in h["accounts"]:
        print(f"  {a['account']:<20} posted {a['success']:>4}  failed {a['failed']:>4}")
    for warning in h["warnings"]:
        print(f"  warning: {warning}")
    return 0


def _one_action(ctx: PostingContext, args, actions: list[str]) -> str:
    """Act on one job or one account; the line that says what was done."""
    where = ctx.describe()
    if "retry_job" in actions:
        job = operations.retry_job(ctx, args.retry_job.strip(), args.retry_include_non_retryable)
        return (f"{where}: job {job['job_id']} put back in the queue: retrying, due now, with "
                "fresh attempts")
    if "skip_job" in actions:
        job = operations.skip_job(ctx, args.skip_job.strip(), args.reason or "")
        return f"{where}: job {job['job_id']} skipped ({job['error']}); it will not be posted"
    if "front_job" in actions:
        job = operations.move_to_front(ctx, args.front_job.strip())
        return (f"{where}: job {job['job_id']} is first in the queue; the next free worker "
                "takes it when its account and phone may post")
    if "disable_account" in actions:
        name = args.disable_account.strip()
        entry = operations.disable_account(ctx, name, args.reason or "")
        return (f"{where}: account {name} is out of rotation (since {entry['at']}, by "
                f"{entry['by']}: {entry['why']}); its jobs wait until --enable-account {name}")
    if "disable_phone" in actions:
        name = args.disable_phone.strip()
        entry = operations.disable_phone(ctx, name, args.reason or "")
        return (f"{where}: phone {name} is out of rotation (since {entry['at']}, by "
                f"{entry['by']}: {entry['why']}); no job on it is claimed until --enable-phone "
                f"{name}")
    if "enable_phone" in actions:
        name = args.enable_phone.strip()
        if operations.enable_phone(ctx, name):
            return f"{where}: phone {name} is back in rotation"
        return f"{where}: phone {name} was not out of rotation; nothing changed"
    name = args.enable_account.strip()
    if operations.enable_account(ctx, name):
        return f"{where}: account {name} is back in rotation; its jobs are claimed again"
    return f"{where}: account {name} was not out of rotation; nothing changed"


def _job_refusal(exc: JobRefused) -> str:
    """The engine's refusal and, when there is one, what to do in this CLI's flags."""
    advice = JOB_REFUSAL_CLI_WORDS.get(exc.reason, "")
    text = exc.explain(CLI_WORDS)
    return f"{text}{'' if text.endswith('.') else '.'} {advice}" if advice else text


def _without_video(n: int | None) -> str:
    return f"  ({n} caption(s) without a video yet)" if n else ""


ERROR_WIDTH = 80


def one_line(text: str, width: int = ERROR_WIDTH) -> str:
    """A long or multi-line error on one line of a status listing, cut with an ellipsis; the
    JSON keeps it whole."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1].rstrip() + "…"


def _print_seeded(ctx: PostingContext, added: list[dict]) -> None:
    accounts = len({j["account"] for j in added})
    print(f"{ctx.describe()}: seeded {len(added)} job(s) for {accounts} account(s)")


def _list(args) -> int:
    rows = operations.list_campaigns(args.campaigns_dir or default_campaigns_dir())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no campaigns")
    for r in rows:
        if r.get("error"):
            print(f"{r['name']:<20} BROKEN  {r['error']}")
            continue
        state = "running" if r["running"] else ("enabled" if r["enabled"] else "disabled")
        c = r["counts"]
        print(f"{r['name']:<20} {state:<8} {r['accounts']:>3} accounts  limit {r['daily_limit']}"
              f"  {c['success']}/{r['total']} posted  {c['failed']} failed  {r['backend']}"
              + _without_video(r["captions_without_video"]))
    return 0


def _status(ctx: PostingContext, as_json: bool) -> int:
    status = campaign_status(ctx)
    if as_json:
        print(json.dumps(status, indent=2))
        return 0
    c = status["counts"]
    run = f"running (supervisor pid {status['supervisor_pid']})" if status["running"] else "idle"
    print(f"{ctx.describe()}: {run}; daily limit {status['daily_limit']}"
          + _without_video(status["captions_without_video"]))
    print("  " + "  ".join(f"{k} {v}" for k, v in c.items()) + f"  (total {status['total']})")
    window = status["posting_window"]
    if not window["open"]:
        print(f"  posting window {window['window']} closed; opens {window['opens_at']}")
    for p in status["phones"]:
        if p["state"] != "off" or p["on_seconds_today"]:
            print(f"  phone {p['phone']} {p['state']}, on {p['on_seconds_today'] / 60:.1f} min "
                  "today")
    for w in status["workers"]:
        print(f"  worker {w['worker_id']} pid {w['pid']} phone {w['phone'] or '-'} "
              f"port {w['appium_port']} {w['state']} {w['job_id'] or ''} "
              f"heartbeat {w['heartbeat_age_s']}s ago")
    if status["store"] != "csv":
        print(f"  store {status['store']} (this host: {status['host']})")
    for lease in status["leases"]:
        left = lease["expires_in"]
        print(f"  host {lease['host']} worker {lease['worker_id']} pid {lease['pid']} "
              f"{lease['state'] or '-'} {lease['job_id'] or ''} "
              + (f"lease {left:.0f}s left" if left > 0 else f"lease expired {-left:.0f}s ago"))
    for a in status["accounts"]:
        extra = f" until {a['cooldown_until']}" if a["cooldown_until"] else ""
        if a["gap_until"]:
            extra += f"  next post on its phone at {a['gap_until']}"
        if a.get("off_by"):
            extra += (f"  out of rotation since {a['off_at']} by {a['off_by']}: "
                      f"{one_line(a['off_why'] or '')}")
        err = f"  last error: {one_line(a['last_error'])}" if a["last_error"] else ""
        print(f"  {a['account']:<20} {a['state']:<9} {a['posts_today']}/{a['limit']}"
              f"  waiting {a['waiting']}{extra}{err}")
    for warning in status["warnings"]:
        print(f"  warning: {warning}")
    return 0
