"""Small formatters shared by the panels: short durations, ages, bars and sparklines. Pure
functions of their arguments (the clock is passed in), so snapshots are deterministic."""
from __future__ import annotations

from datetime import datetime, tzinfo

from engine.rules import parse_time

BLOCKS = " ▁▂▃▄▅▆▇█"


def duration(seconds: float | None) -> str:
    """12s, 3m04s, 1h02m, 2d03h; empty for None."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def clock_time(iso: str, tz: tzinfo) -> str:
    """HH:MM:SS of an ISO time in the campaign's time zone ('' when empty or unreadable)."""
    at = parse_time(iso)
    if at is None:
        return ""
    return datetime.fromtimestamp(at, tz).strftime("%H:%M:%S")


def bar(done: int, total: int, width: int = 8) -> str:
    """A text progress bar: `█████░░░`."""
    if total <= 0:
        return "·" * width
    filled = min(width, round(width * done / total))
    return "█" * filled + "░" * (width - filled)


def sparkline(values: list[int]) -> str:
    top = max(values, default=0)
    if top <= 0:
        return BLOCKS[1] * len(values)
    return "".join(BLOCKS[1 + round((len(BLOCKS) - 2) * v / top)] if v else BLOCKS[1]
                   for v in values)


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def opens_text(opens_at: str | None, now: float, tz: tzinfo) -> str:
    """When a closed posting window opens (engine/pacing.py's `opens_at`, a local ISO time) as
    HH:MM on the campaign's clock; "tomorrow HH:MM" when that is past the campaign's midnight,
    since a run then ends instead of waiting (the next day starts with a reset). Empty for None."""
    if not opens_at:
        return ""
    try:
        at = datetime.fromisoformat(opens_at).astimezone(tz)
    except ValueError:
        return ""
    day = "" if at.date() == datetime.fromtimestamp(now, tz).date() else "tomorrow "
    return f"{day}{at:%H:%M}"
