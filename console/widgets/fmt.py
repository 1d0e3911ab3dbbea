"""Small formatters shared by the panels: short durations, ages, bars, sparklines, sort keys and
times in the campaign's zone. Pure functions of their arguments (the clock is passed in), so
snapshots are deterministic; only `log_line_in_zone` also reads the host's zone (a log's stamps
are in it)."""
from __future__ import annotations

import re
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


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> float | None:
    """Seconds of a `duration()` text (12s, 3m04s, 1h02m, 2d03h); None for anything else."""
    m = _DURATION.match(text)
    if not text or m is None:
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return float(((d * 24 + h) * 60 + mi) * 60 + s)


def sort_value(text: str) -> tuple:
    """How a cell sorts: numbers and durations as numbers, then text (case-folded), then the
    empty cells."""
    if not text:
        return (2, 0.0, "")
    try:
        return (0, float(text), "")
    except ValueError:
        seconds = parse_duration(text)
        if seconds is not None:
            return (0, seconds, "")
    return (1, 0.0, text.casefold())


LOG_STAMP = "%Y-%m-%d %H:%M:%S"


def log_line_in_zone(line: str, tz: tzinfo) -> str:
    """A log line of Python logging (`YYYY-mm-dd HH:MM:SS ...`, written in the host's local
    time) with its leading timestamp moved to the campaign's time zone; any other line as is."""
    if len(line) < 19 or line[4] != "-" or line[10] != " " or line[13] != ":":
        return line
    try:
        at = datetime.strptime(line[:19], LOG_STAMP)
    except ValueError:
        return line
    return at.astimezone(tz).strftime(LOG_STAMP) + line[19:]     # naive: the host's local time


def zone_name(tz: tzinfo, now: float, short: bool = False) -> str:
    """The campaign's zone as the header names it: its key ("Europe/Berlin") or, short, its
    abbreviation now ("CEST")."""
    key = getattr(tz, "key", None)
    if short or not key:
        return datetime.fromtimestamp(now, tz).tzname() or str(key or tz)
    return key
