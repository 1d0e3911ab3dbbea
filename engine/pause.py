"""Pausing a run without ending it: the workers finish the job they are on, turn their phones
off (a paused cloud phone would bill for nothing) and wait; resuming goes on with the same run,
its workers, its counts and its claims.

The pause is a small file, `.postdeck/paused.json` ({"since", "by"}), so it survives a console
closed over SSH and is seen by every worker without a channel of its own; pausing and resuming
wake the workers at once (engine/wake.py) instead of waiting for their next look.
"""
from __future__ import annotations

import getpass
import json
import time
from dataclasses import dataclass
from pathlib import Path

from .durable import write_atomic
from .problems import Notice, Refused, Remedy
from .runstate import read_heartbeats, running_supervisor
from . import wake


@dataclass(frozen=True)
class Paused:
    since: float
    by: str


def pause_path(ctx) -> Path:
    return ctx.state_dir / "paused.json"


def paused(ctx) -> Paused | None:
    """The run's pause, or None. A file that cannot be read counts as paused since now: a
    worker must not post because a half-seen file said nothing."""
    path = pause_path(ctx)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Paused(float(data["since"]), str(data.get("by") or "?"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return Paused(time.time(), "?") if path.exists() else None


def _wake_workers(ctx) -> None:
    ids = [hb.worker_id for hb in read_heartbeats(ctx.heartbeats_dir)]
    if ids:
        wake.send(str(ctx.root), ids)


def pause(ctx, by: str | None = None) -> Notice:
    """Pause the campaign's run. Refused when no run is going or it is paused already."""
    if running_supervisor(ctx) is None:
        raise Refused(f"{ctx.describe()}: no run is going, so there is nothing to pause",
                      remedies=(Remedy.STATUS,))
    current = paused(ctx)
    if current is not None:
        raise Refused(f"{ctx.describe()}: the run is paused already (since "
                      f"{time.strftime('%H:%M:%S', time.localtime(current.since))} by "
                      f"{current.by})")
    ctx.state_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(pause_path(ctx), json.dumps(
        {"since": time.time(), "by": by or getpass.getuser()}).encode())
    _wake_workers(ctx)
    return Notice(f"{ctx.describe()}: paused; workers finish the job they are on, turn their "
                  "phones off and wait (resume with --resume)")


def resume(ctx) -> Notice:
    """Resume a paused run. Refused when it is not paused."""
    if paused(ctx) is None:
        raise Refused(f"{ctx.describe()}: the run is not paused, so there is nothing to resume")
    try:
        pause_path(ctx).unlink()
    except FileNotFoundError:
        pass
    _wake_workers(ctx)
    return Notice(f"{ctx.describe()}: resumed")


def clear(ctx) -> None:
    """A new run starts unpaused: a pause belongs to the run it was given to."""
    try:
        pause_path(ctx).unlink()
    except FileNotFoundError:
        pass
