"""The run's events (an account blocked, an unknown outcome, a worker crashed...), as one JSON
line each in `.postdeck/events.jsonl`.

Workers only append a line: delivering an alert (a command, a webhook) must never sit in the
posting path. The supervisor tails the file and hands each new event to the notifier
(engine/notify.py), so a hung webhook slows nobody, and the file stays as the run's record of
what it alerted about. Lines are small and written with one O_APPEND write, so lines of several
workers never interleave.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from .rules import now_iso

RUN_STARTED = "run_started"
RUN_ENDED = "run_ended"
ACCOUNT_BLOCKED = "account_blocked"
OUTCOME_UNKNOWN = "outcome_unknown"
WORKER_CRASHED = "worker_crashed"
PHONE_FAILED = "phone_failed"
RUN_BLOCKED = "run_blocked"      # the run stops: the service's balance or a phone is gone

log = logging.getLogger("postdeck.events")


def event(name: str, campaign: str, **fields: object) -> dict:
    """One event as a notifier receives it."""
    return {"event": name, "campaign": campaign, "at": now_iso(time.time()), **fields}


class EventLog:
    def __init__(self, path: Path):
        self.path = Path(path)

    def record(self, item: dict) -> None:
        """Append one event; a full disk loses the alert, never the post (logged, not raised)."""
        line = (json.dumps(item, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            log.warning("could not record event %s in %s: %s", item.get("event"), self.path, exc)

    def end(self) -> int:
        """Where the file ends now: a run delivers only what happens after its start."""
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def read_from(self, offset: int) -> tuple[list[dict], int]:
        """The whole lines after `offset`, and the offset after them (a line still being
        written waits for the next read; a line that is not JSON is skipped and logged)."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except OSError:
            return [], offset
        done = data.rfind(b"\n") + 1
        items = []
        for raw in data[:done].splitlines():
            try:
                item = json.loads(raw)
            except ValueError:
                log.warning("skipping a damaged line in %s", self.path)
                continue
            if isinstance(item, dict):
                items.append(item)
        return items, offset + done
