"""The account rules shared by claiming, seeding and the account-state view.

Everything is derived from the rows of one day's progress file, so the store is the only record
and no second copy of an account's state can disagree with it. `tally()` walks the rows once; the
claim, the seeder and engine/accounts.py all read the same tallies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone, tzinfo

from . import columns as C
from .errors import ACCOUNT, BLOCKING_TYPES, OUTCOME_UNKNOWN, RATE_LIMITED
from .settings import Settings


_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def now_iso(now: float) -> str:
    """A UTC ISO time. A moment past year 9999 (a cooldown after a damaged file's far-future
    time) is written as the last moment there is, not a crash."""
    try:
        when = datetime.fromtimestamp(now, timezone.utc)
    except (OverflowError, OSError, ValueError):
        when = _LATEST if now > 0 else datetime.min.replace(tzinfo=timezone.utc)
    return when.isoformat(timespec="milliseconds")


def parse_time(text: str, tz: tzinfo | None = None) -> float | None:
    """Epoch seconds from an ISO time. The earlier system wrote naive local times: with `tz`
    (the campaign's zone) they are read in it, so the count does not depend on the shell's TZ."""
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
        if tz is not None and when.tzinfo is None:
            when = when.replace(tzinfo=tz)
        return when.timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def as_int(text: str, default: int = 0) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def counts_toward_limit(row: list[str]) -> bool:
    """Successes, running claims and unknown outcomes use a slot of the daily limit: an unknown
    outcome may have been posted, so it is counted as if it was."""
    status = row[C.STATUS]
    return status == C.SUCCESS or status == C.CLAIMED or (
        status == C.FAILED and row[C.ERROR_TYPE] == OUTCOME_UNKNOWN)


def is_blocking(row: list[str]) -> bool:
    return (row[C.STATUS] == C.FAILED and row[C.ERROR_CATEGORY] == ACCOUNT
            and row[C.ERROR_TYPE] in BLOCKING_TYPES)


@dataclass(frozen=True)
class Day:
    """One calendar day in a time zone, as epoch seconds [start, end)."""
    start: float
    end: float
    label: str          # YYYYMMDD, as archive names carry it
    start_iso: str = ""  # `start` as now_iso writes times: those compare as text
    tz: tzinfo | None = None   # the zone naive times are read in

    @classmethod
    def of(cls, now: float, tz: tzinfo) -> "Day":
        date = datetime.fromtimestamp(now, tz).date()
        start = datetime.combine(date, time(), tz).timestamp()
        end = datetime.combine(date + timedelta(days=1), time(), tz).timestamp()
        return cls(start, end, date.strftime("%Y%m%d"), now_iso(start), tz)


def counts_today(row: list[str], day: Day, current: bool = True,
                 file_is_today: bool = True) -> bool:
    """Whether `row` uses a slot of its account's limit on `day`: it falls on the day of its
    completed_at (a claim: running now in a current file, else its claimed_at); a time at or after
    the day's midnight counts (a clock that ran ahead must not free a slot); a row with no readable
    time falls on its file's day. engine/limits.py applies it to every progress file of the host."""
    if not counts_toward_limit(row):
        return False
    if row[C.STATUS] == C.CLAIMED:
        if current:
            return True
        text = row[C.CLAIMED_AT]
    else:
        text = row[C.COMPLETED_AT]
    if len(text) == 29 and text.endswith("+00:00") and day.start_iso:
        return text >= day.start_iso     # postdeck's own UTC times: no parsing on the hot path
    at = parse_time(text, day.tz)
    if at is None:
        return file_is_today
    return at >= day.start


@dataclass
class Usage:
    """One account's slots used today outside the store's own current file."""
    used: int = 0       # successes + claims + unknown outcomes
    running: int = 0    # claims in other campaigns' current files
    posted: int = 0     # successes


@dataclass
class Tally:
    used: int = 0                  # successes + claims + unknown outcomes
    running: int = 0               # claimed jobs
    open_jobs: int = 0             # pending + claimed + success: seeding skips the account
    blocked_by: str = ""           # error type that blocked it
    last_error: str = ""
    last_error_at: float = 0.0
    outcomes: list[tuple[float, int, str, bool]] = field(default_factory=list)
    cooldown_until: float = 0.0

    def add(self, u: Usage) -> None:
        """Count what the account used today outside this file toward its limit; a claim in
        another campaign also makes it busy (one running job per account, host-wide)."""
        self.used += u.used
        self.running += u.running


def tally(rows: list[list[str]], settings: Settings, day: Day | None = None,
          elsewhere: dict[str, Usage] | None = None) -> dict[str, Tally]:
    """Each account's tally over the rows of its current progress file. With `day`, only the
    rows that fall on that day use a slot (engine/limits.py says which); `elsewhere` adds what
    the account used today in the host's other progress files."""
    out: dict[str, Tally] = {}
    for row in rows:
        account = row[C.ACCOUNT]
        t = out.get(account)
        if t is None:
            t = out[account] = Tally()
        status = row[C.STATUS]
        if counts_toward_limit(row) and (day is None or counts_today(row, day)):
            t.used += 1
        if status == C.CLAIMED:
            t.running += 1
        if status in (C.PENDING, C.CLAIMED, C.SUCCESS):
            t.open_jobs += 1
        if is_blocking(row):
            t.blocked_by = row[C.ERROR_TYPE]
        if status in (C.SUCCESS, C.FAILED, C.RETRYING):
            at = parse_time(row[C.COMPLETED_AT])
            if at is not None:
                failed = status != C.SUCCESS and bool(row[C.ERROR])
                t.outcomes.append((at, max(1, as_int(row[C.ATTEMPTS], 1)), row[C.ERROR_TYPE],
                                   failed))
                if failed and at >= t.last_error_at:
                    t.last_error, t.last_error_at = row[C.ERROR], at
    for t in out.values():
        if t.outcomes:
            t.cooldown_until = _cooldown_until(t.outcomes, settings)
    for account, u in (elsewhere or {}).items():
        t = out.get(account)
        if t is None:
            t = out[account] = Tally()
        t.add(u)
    return out


def _cooldown_until(outcomes: list[tuple[float, int, str, bool]], settings: Settings) -> float:
    """After `cooldown_after_consecutive` failed attempts in a row the account rests
    `cooldown_minutes`; after rate-limit errors it rests the next of `rate_limit_steps`."""
    outcomes.sort(key=lambda o: o[0], reverse=True)
    consecutive = rate_limited = 0
    rate_run = True
    last_failure = 0.0
    for at, attempts, error_type, failed in outcomes:
        if not failed:
            break
        last_failure = max(last_failure, at)
        consecutive += attempts
        if rate_run and error_type == RATE_LIMITED:
            rate_limited += attempts
        else:
            rate_run = False
    until = 0.0
    if consecutive and consecutive >= settings.cooldown_after_consecutive:
        until = last_failure + settings.cooldown_minutes * 60
    if rate_limited:
        steps = settings.rate_limit_steps
        until = max(until, last_failure + steps[min(rate_limited, len(steps)) - 1])
    return until


def account_blocker(t: Tally | None, limit: int, now: float) -> str:
    """Why an account may not take a new job now ('' when it may): rules 2-4 of DESIGN.md."""
    if t is None:
        return ""
    if t.running:
        return "running"
    if t.used >= limit:
        return "limit"
    if t.blocked_by:
        return "blocked"
    if t.cooldown_until > now:
        return "cooldown"
    return ""


def due(row: list[str], now: float) -> bool:
    """Rule 1: pending, or retrying with retry_at passed (an empty retry_at is due at once)."""
    status = row[C.STATUS]
    if status == C.PENDING:
        return True
    if status == C.RETRYING:
        at = parse_time(row[C.RETRY_AT])
        return at is None or at <= now
    return False
