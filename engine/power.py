"""Whether each phone is on, and for how long it was on today: Geelark bills every minute a cloud
phone runs, so postdeck keeps a phone on only while it works and shows what it cost.

One small JSON file per phone under `<host state>/power/`, host-wide because a phone is billed
whichever campaign drives it. Only the process that holds the phone's lock (engine/phones.py)
writes its record, or the supervisor once that worker is dead, so a record never has two
writers at once; every write replaces the file atomically, so a reader never sees half of one.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from .durable import write_atomic
from .phones import _safe
from .rules import Day


class Power(StrEnum):
    OFF = "off"
    STARTING = "starting"
    ON = "on"


@dataclass(frozen=True)
class PowerRecord:
    phone: str
    state: str = Power.OFF
    since: float = 0.0            # when it entered `state`
    worker_id: str = ""           # who drives it while starting or on
    campaign_root: str = ""
    day_start: float = 0.0        # the day `on_seconds` belongs to
    on_seconds: float = 0.0       # on (or starting) time of that day, closed intervals only
    last_post_end: float | None = None   # min_gap_seconds counts from here

    @property
    def running(self) -> bool:
        return self.state != Power.OFF

    def on_seconds_today(self, now: float, day: Day) -> float:
        """Closed intervals of today plus the open one, cut at today's midnight."""
        closed = self.on_seconds if self.day_start == day.start else 0.0
        if self.running:
            closed += max(0.0, now - max(self.since, day.start))
        return closed


class PhonePower:
    """Reads and writes the power records of one host."""

    def __init__(self, folder: Path, tz: ZoneInfo, clock: Callable[[], float] = time.time):
        self.folder = Path(folder)
        self.tz = tz
        self.clock = clock
        self._seen: dict[str, tuple[tuple[int, int], PowerRecord]] = {}   # file -> (stat, record)

    def _path(self, phone: str) -> Path:
        return self.folder / f"{_safe(phone)}.json"

    def read(self, phone: str) -> PowerRecord:
        """The phone's record; a phone never seen, or a record that cannot be read, is off (a
        damaged record must not stop a run; the next write replaces it)."""
        try:
            data = json.loads(self._path(phone).read_text(encoding="utf-8"))
            if data.get("phone") == phone:
                return PowerRecord(**{k: data[k] for k in PowerRecord.__dataclass_fields__
                                      if k in data})
        except (OSError, ValueError, TypeError):
            pass
        return PowerRecord(phone)

    def _write(self, record: PowerRecord) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self._path(record.phone), json.dumps(asdict(record)).encode(),
                     durable=False)

    def set_state(self, phone: str, state: Power, *, worker_id: str = "",
                  campaign_root: str = "") -> PowerRecord:
        """Move the phone to `state`; leaving on/starting closes an interval into today's sum."""
        now = self.clock()
        day = Day.of(now, self.tz)
        old = self.read(phone)
        closed = old.on_seconds if old.day_start == day.start else 0.0
        if old.running and state != Power.OFF:
            # starting -> on: the same interval goes on (cut at midnight if it crossed one)
            since = max(old.since, day.start)
        else:
            if old.running:
                closed += max(0.0, now - max(old.since, day.start))
            since = now
        record = replace(old, state=state, since=since,
                         worker_id=worker_id if state != Power.OFF else "",
                         campaign_root=campaign_root or old.campaign_root,
                         day_start=day.start, on_seconds=closed)
        self._write(record)
        return record

    def post_ended(self, phone: str) -> None:
        """A post (or an attempt that reached the phone) ended now: the gap counts from here."""
        self._write(replace(self.read(phone), last_post_end=self.clock()))

    def records(self, phones: list[str]) -> list[PowerRecord]:
        """The records of many phones, for readers that poll (the console, every second, for a
        campaign of a thousand phones): one listing of the folder, and a file is read again
        only when it changed since this object last read it. A phone with no file is off."""
        try:
            present = {entry.name: entry for entry in os.scandir(self.folder)}
        except OSError:
            present = {}
        out = []
        for phone in phones:
            name = f"{_safe(phone)}.json"
            entry = present.get(name)
            if entry is None:
                out.append(PowerRecord(phone))
                continue
            try:
                st = entry.stat()
            except OSError:
                out.append(PowerRecord(phone))
                continue
            key = (st.st_mtime_ns, st.st_size)
            seen = self._seen.get(name)
            if seen is None or seen[0] != key or seen[1].phone != phone:
                seen = self._seen[name] = (key, self.read(phone))
            out.append(seen[1])
        return out
