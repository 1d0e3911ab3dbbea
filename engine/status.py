"""The status of a campaign as one plain dict: what `--status --json` prints and what the console
draws. Reads without taking the store's lock."""
from __future__ import annotations

import time

from . import columns as C
from .accounts import account_states, concurrency_metrics
from .context import PostingContext
from .pacing import gap_ends, local_iso, window_status
from .phones import held_phones
from . import rotation
from .pause import paused
from .power import PhonePower
from .problems import InputError
from .rules import Day
from .runstate import (WORKER_DEAD, Heartbeat, live_workers, read_heartbeats,
                       running_supervisor, supervisor_pid)
from .store import JobStore, open_store


def campaign_status(ctx: PostingContext, now: float | None = None) -> dict:
    now = time.time() if now is None else now
    store = open_store(ctx)
    table = store.read()
    counts = status_counts(table.rows)
    try:
        accounts = ctx.load_accounts()
    except InputError:
        accounts = []  # status still shows the jobs; the accounts file error shows on --run
    without_video = _captions_without_video(ctx)
    supervisor = running_supervisor(ctx)
    beats = read_heartbeats(ctx.heartbeats_dir)
    alive = {hb.worker_id for hb in live_workers(ctx)}
    other_phones = _phones_held_elsewhere(ctx)
    elsewhere = store.usage_elsewhere(Day.of(now, ctx.settings.tz))
    warnings = _ledger_warnings(store)
    try:
        off = rotation.effective(ctx, accounts)
    except InputError as exc:     # the status still shows; --run refuses with the same message
        off, warnings = {}, warnings + [str(exc)]
    states = account_states(table.rows, ctx.settings, now, accounts, other_phones, elsewhere,
                            off)
    day = Day.of(now, ctx.settings.tz)
    power = {r.phone: r for r in PhonePower(ctx.power_dir, ctx.settings.tz).records(
        _phones_of(states, table.rows))}
    return {
        "campaign": ctx.name,
        "legacy": ctx.legacy,
        "progress_file": str(ctx.progress_file),
        "store": store_description(ctx),
        "host": ctx.host,
        # every host's workers on a shared store (their leases); [] for the CSV file
        "leases": [{**lease, "expires_in": round(float(lease["expires_in"]), 1)}
                   for lease in store.leases()],
        "running": supervisor is not None,
        "supervisor_pid": supervisor_pid(supervisor),
        "run_id": supervisor.run_id if supervisor else None,
        "daily_limit": ctx.daily_limit,
        "backend": ctx.settings.backend,
        "enabled": ctx.settings.enabled,
        "counts": counts,
        "total": len(table.rows),
        "workers": [{
            "worker_id": hb.worker_id, "pid": hb.pid, "phone": hb.phone,
            "appium_port": hb.appium_port, "system_ports": hb.system_ports,
            "state": worker_state(hb, hb.worker_id in alive), "job_id": hb.job_id or None,
            "account": hb.account or None, "heartbeat_age_s": round(hb.age, 1),
        } for hb in shown_workers(beats, alive, supervisor is not None)],
        "accounts": [{**s.as_dict(), "gap_until": _gap_until(s, power, ctx, now)}
                     for s in states],
        "phones": [{"phone": r.phone, "state": r.state, "worker_id": r.worker_id or None,
                    "on_seconds_today": round(r.on_seconds_today(now, day), 1)}
                   for r in power.values()],
        "posting_window": window_status(ctx.settings, now),
        "paused": _paused(ctx),
        "concurrency": concurrency_metrics(states),
        "warnings": warnings,
        "captions_without_video": without_video,
    }


def store_description(ctx: PostingContext) -> str:
    """Which store a status reads: the database (without its password) or the CSV file."""
    if ctx.store_url:
        from .pg_store import describe_url
        return describe_url(ctx.store_url)
    return "csv"


def _paused(ctx: PostingContext) -> dict | None:
    """The run's pause ({since, by}), or None; a pause without a run is not shown."""
    pause = paused(ctx)
    if pause is None or running_supervisor(ctx) is None:
        return None
    return {"since": local_iso(pause.since, ctx.settings.tz), "by": pause.by}


def _phones_of(states, rows: list[list[str]]) -> list[str]:
    """The campaign's phones: its accounts' phones, then any a job ran on."""
    phones = [s.phone for s in states] + [r[C.PHONE_ID] for r in rows if r[C.PHONE_ID]]
    return list(dict.fromkeys(phones))


def _gap_until(state, power: dict, ctx: PostingContext, now: float) -> str | None:
    """When an account with work waiting may post next because its phone rests between posts
    (min_gap_seconds); None when nothing waits on the gap."""
    if not state.waiting:
        return None
    record = power.get(state.phone)
    ends = gap_ends(record.last_post_end if record else None, ctx.settings)
    return local_iso(ends, ctx.settings.tz) if ends is not None and ends > now else None


def _captions_without_video(ctx: PostingContext) -> int | None:
    """How many captions name a video that is not on disk; None in legacy mode, or when the
    campaign's files do not load (--run says why)."""
    if ctx.legacy:
        return None
    try:
        return ctx.load_campaign().captions_without_video
    except InputError:
        return None


def _ledger_warnings(store: JobStore) -> list[str]:
    """Damage in the ledger is never skipped silently: each damaged line is named here (its
    videos still count as posted); a ledger that cannot be read at all is named too."""
    try:
        damaged = store.read_ledger().damaged
    except InputError as exc:
        return [str(exc)]
    return [f"{store.ledger_path}, line {d.line}: not a whole ledger entry (a cut-off write or "
            "an edit); the videos it names are treated as posted. Fix the line by hand"
            for d in damaged]


def _phones_held_elsewhere(ctx: PostingContext) -> set[str]:
    """Phones that workers of other campaigns hold right now (host-wide phone locks)."""
    return {phone for phone, owner in held_phones(ctx.phones_dir).items()
            if owner.get("campaign_root") != str(ctx.root)}


# --- the same rules, one piece at a time, for readers that poll (the console) ----------------------


def status_counts(rows: list[list[str]]) -> dict[str, int]:
    """How many jobs are in each status, every status named: `counts` of --status --json."""
    counts = dict.fromkeys(C.STATUSES, 0)
    for row in rows:
        counts[row[C.STATUS]] += 1
    return counts


def shown_workers(beats: list[Heartbeat], alive: set[str], running: bool) -> list[Heartbeat]:
    """The workers a status lists: the live ones, and while a run goes every one with a
    heartbeat (a dead one shows as dead: the run lost it)."""
    return [hb for hb in beats if hb.worker_id in alive or running]


def worker_state(hb: Heartbeat, alive: bool) -> str:
    """A listed worker's state: what its heartbeat says, or WORKER_DEAD."""
    return hb.state if alive else WORKER_DEAD


def phones_held_elsewhere(ctx: PostingContext) -> set[str]:
    """Phones that workers of other campaigns hold right now (host-wide phone locks)."""
    return _phones_held_elsewhere(ctx)
