"""Pacing that looks human: the posting window, the gap between posts on a phone, the jitter
before a claim. Accounts that post in bursts at 3 a.m. get flagged; these rules keep a farm's
rhythm inside the hours a person would post.

The window is read in the campaign's time zone with zoneinfo, so a daylight-saving change moves
it with the clock on the wall, as an operator expects ("09:00" stays 09:00 local).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .settings import Settings, window_bounds

DAY_MINUTES = 24 * 60


@dataclass(frozen=True)
class PostingWindow:
    """Minutes after local midnight: open from `start` (inclusive) to `end` (exclusive). A window
    whose end is before its start wraps past midnight ("20:00-02:00")."""
    start: int
    end: int
    text: str

    @classmethod
    def of(cls, settings: Settings) -> "PostingWindow | None":
        """The campaign's window, or None when it may post at any time."""
        text = settings.posting_window.strip()
        bounds = window_bounds(text) if text else None
        return cls(bounds[0], bounds[1], text) if bounds else None

    def _minute(self, local: datetime) -> float:
        return local.hour * 60 + local.minute + local.second / 60

    def is_open(self, now: float, tz: ZoneInfo) -> bool:
        m = self._minute(datetime.fromtimestamp(now, tz))
        if self.start < self.end:
            return self.start <= m < self.end
        return m >= self.start or m < self.end

    def opens_at(self, now: float, tz: ZoneInfo) -> float | None:
        """When the window next opens (epoch seconds); None while it is open."""
        if self.is_open(now, tz):
            return None
        local = datetime.fromtimestamp(now, tz)
        hour, minute = divmod(self.start, 60)
        day = local.date()
        if self._minute(local) >= self.start:
            day += timedelta(days=1)
        return datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).timestamp()


def window_status(settings: Settings, now: float) -> dict:
    """`posting_window` of --status --json: whether it is open and, if not, when it opens."""
    window = PostingWindow.of(settings)
    opens = window.opens_at(now, settings.tz) if window else None
    return {"window": window.text if window else None, "open": opens is None,
            "opens_at": local_iso(opens, settings.tz) if opens is not None else None}


def local_iso(at: float, tz: ZoneInfo) -> str:
    """An instant as the campaign's wall-clock time with its offset: what an operator reads."""
    return datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")


def gap_ends(last_post_end: float | None, settings: Settings) -> float | None:
    """When a phone may take its next claim after a post that ended at `last_post_end`."""
    if last_post_end is None or settings.min_gap_seconds <= 0:
        return None
    return last_post_end + settings.min_gap_seconds


def jitter(settings: Settings, rng: random.Random | None = None) -> float:
    """The random extra wait before a claim: 0..jitter_seconds, uniform."""
    if settings.jitter_seconds <= 0:
        return 0.0
    return (rng or random).uniform(0, settings.jitter_seconds)
