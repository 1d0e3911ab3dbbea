"""What a run needs, checked before any worker starts or any file is written.

A run that cannot work must say so at once, not exit 0 with every job pending or burn the day's
jobs one 30-second timeout at a time: the campaign's files parse, its folders can be written,
the backend can be built (credentials readable, the flow loads), its tools are there (adb,
Appium), the phone service answers, and --phones names phones the backend has and nobody else
holds. Each failure is one Refused or InputError naming what to fix.
"""
from __future__ import annotations

import errno
import os
from dataclasses import replace
from pathlib import Path

from .context import PostingContext
from .devices import make_backend
from .errors import PostError
from .phones import held_phones
from .problems import InputError, Notice, Refused
from .store import open_store
from .workers import RunOptions


def check_run(ctx: PostingContext, options: RunOptions) -> None:
    from .operations import check_accounts, load_inputs, require_enabled
    require_enabled(ctx)
    for folder in (ctx.state_dir, ctx.host_state_dir):
        require_folder(folder)
    open_store(ctx).validate()
    accounts, _ = load_inputs(ctx)
    if options.accounts is not None:
        check_accounts(ctx, options.accounts, accounts)
    name = options.backend or ctx.settings.backend
    known = check_backend(ctx, name)
    check_phones(ctx, options.workers, options.phones, name, known)
    check_folders(ctx)     # last: the only check that writes (a probe file, removed again)


def fit_workers(ctx: PostingContext, options: RunOptions) -> tuple[RunOptions, Notice | None]:
    """Never more workers than the campaign has phones: a worker drives one phone at a time,
    so the rest would only wait (60 workers for 10 phones, or 1000, made a host unusable)."""
    if options.phones:
        return options, None
    from .operations import load_inputs
    accounts, _ = load_inputs(ctx)
    chosen = set(options.accounts) if options.accounts else None
    phones = len({a.phone for a in accounts if chosen is None or a.name in chosen})
    if options.workers <= phones:
        return options, None
    return replace(options, workers=phones), Notice(
        f"{ctx.describe()}: starting {phones} worker(s), not {options.workers}: the campaign has "
        f"{phones} phone(s) and a worker drives one at a time")


def check_backend(ctx: PostingContext, name: str) -> list[str]:
    """Build the backend as a worker will, check its tools, and ask it for its phones (for
    Geelark that is one API call: credentials and the service are checked with it)."""
    try:
        backend = make_backend(ctx, name, checking=True)
        backend.check()
        return backend.list_phones()
    except PostError as exc:
        raise Refused(f"the {name} backend cannot run: {exc}") from None


def binding_problem(workers: int, phones: list[str] | None) -> str:
    """What is wrong with binding `workers` workers to `phones` ('' when nothing is): one phone
    per worker, no empty name, no repeats. The console's start form asks this too, so the rule
    is the same wherever a run is started."""
    if not phones:
        return ""
    if any(not p.strip() for p in phones):
        return "a phone name is empty; write the phones as a,b,c"
    if len(phones) != workers:
        return f"{len(phones)} phone(s) named for {workers} worker(s); give one phone per worker"
    repeated = sorted({p for p in phones if phones.count(p) > 1})
    if repeated:
        return f"phone(s) {', '.join(repeated)} named twice; each worker needs its own phone"
    return ""


def check_phones(ctx: PostingContext, workers: int, phones: list[str] | None, backend: str,
                 known: list[str]) -> None:
    """Phones bound to workers: a binding_problem refused, each known to the backend and not
    held by another run."""
    if not phones:
        return
    problem = binding_problem(workers, phones)
    if problem:
        raise Refused(problem)
    unknown = [p for p in phones if p not in set(known)]
    if unknown:
        raise Refused(f"phone(s) {', '.join(unknown)} not found in the {backend} "
                      f"backend (it has: {', '.join(sorted(known)) or 'none'})")
    held = held_phones(ctx.phones_dir)
    busy = [f"{p} (campaign {held[p].get('campaign')}, pid {held[p].get('pid')})"
            for p in phones if p in held]
    if busy:
        raise Refused(f"phone(s) held by another run: {', '.join(busy)}",
                      pids=[held[p]["pid"] for p in phones if p in held])


def check_folders(ctx: PostingContext) -> None:
    """The campaign's state folder and the host's must be folders we can write to, with room
    for the progress file's next version. Probed with a small file of our own, removed again;
    a folder this check had to create is removed too when the probe fails."""
    created = not ctx.state_dir.exists()
    probe = ctx.state_dir / f".probe.{os.getpid()}"
    try:
        ctx.state_dir.mkdir(parents=True, exist_ok=True)
        room = max(64 * 1024, 2 * _size(ctx.progress_file))
        with open(probe, "xb") as fh:
            fh.write(b"\0" * room)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        _remove(probe)
        if created:
            try:
                ctx.state_dir.rmdir()
            except OSError:
                pass
        why = ("the disk is full" if exc.errno == errno.ENOSPC
               else exc.strerror or type(exc).__name__)
        raise InputError(ctx.state_dir, None, f"cannot be written ({why}); free some space or "
                                              "fix the folder, then start the run again") from None
    _remove(probe)


def require_folder(folder: Path) -> None:
    """postdeck keeps locks, heartbeats and logs in `folder`: something else by that name stops
    every writing command with one message instead of an error deep in a worker."""
    if folder.exists() and not folder.is_dir():
        raise InputError(folder, None, "is a file, but postdeck keeps its locks, heartbeats and "
                                       "logs in a folder by this name; move the file away")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass
