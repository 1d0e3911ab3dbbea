"""The accounts panel: each account's state (RUNNING, BLOCKED, LIMIT, COOLDOWN, WAITING,
AVAILABLE), posts today against the limit, waiting jobs, how long until it may post again and the
last error. `enter` filters the job table to that account; `d` takes it out of rotation (asks
first) or puts it back.

An account out of rotation (state OFF, or RUNNING while the job it had runs to its end): "next",
which has no time to give until it is put back, says who took it out (`by maria`), so even 80
columns show who; the last error column says since when and why (`out 12m: checking the login`).
A time in "next" would read as when the account posts again, so the time is not there.

"next" is one column for both reasons an account with work must wait: its cooldown (the state
says COOLDOWN) or its phone's rest between posts, `min_gap_seconds` (the state says AVAILABLE or
WAITING, so the cell says `gap`). Both answer the operator's one question, when does it post
again, and the later of the two is the answer; a second column would cost width on a narrow
terminal to show a time that is not the answer."""
from __future__ import annotations

from textual.binding import Binding

from engine.accounts import (AVAILABLE, BLOCKED, COOLDOWN, LIMIT, OFF, RUNNING, WAITING,
                             AccountState)
from engine.pacing import gap_ends
from engine.power import PowerRecord
from engine.rules import parse_time
from engine.settings import Settings

from .fmt import duration, first_line
from .live_table import Cell, Column, LiveTable, Row

COLUMNS = (
    Column("account", "account", 16),
    Column("phone", "phone", 12, drop=1),
    Column("state", "state", 9),
    Column("posts", "today", 5, right=True),
    Column("waiting", "wait", 4, right=True),
    Column("next", "next", 10, right=True),
    Column("error", "last error", 12, flex=True),
)

TONES = {RUNNING: "busy", BLOCKED: "bad", LIMIT: "ok", COOLDOWN: "warn", WAITING: "info",
         AVAILABLE: "dim", OFF: "warn"}


def gaps_of(states: list[AccountState], records: dict[str, PowerRecord], settings: Settings,
            now: float) -> dict[str, float]:
    """engine/status.py's `gap_until`, as epoch seconds: for each account with waiting work whose
    phone still rests after its last post, when the rest ends."""
    out: dict[str, float] = {}
    for s in states:
        record = records.get(s.phone) if s.waiting else None
        ends = gap_ends(record.last_post_end, settings) if record is not None else None
        if ends is not None and ends > now:
            out[s.account] = ends
    return out


def _next_cell(s: AccountState, now: float, gap_until: float | None) -> Cell:
    """How long until the account may post: the later of its cooldown and its phone's gap."""
    until = parse_time(s.cooldown_until or "") or 0.0
    if gap_until is not None and gap_until > max(until, now):
        return (f"gap {duration(gap_until - now)}", "info")
    return (duration(until - now), "warn") if until > now else ""


def _ago(seconds: float) -> str:
    """How long ago, to the minute (the row is drawn again each poll: seconds would flicker)."""
    m = max(0, int(seconds)) // 60
    if m < 1:
        return "<1m"
    if m < 60:
        return f"{m}m"
    if m < 48 * 60:
        return f"{m // 60}h{m % 60:02d}m"
    return duration(m * 60)


def off_text(s: AccountState, now: float, with_who: bool = True) -> str:
    """Out of rotation: for how long, by whom (unless "next" says it), why."""
    at = parse_time(s.off_at or "")
    since = f" {_ago(now - at)}" if at is not None else ""
    who = f" by {s.off_by}" if with_who else ""
    why = f": {first_line(s.off_why)}" if s.off_why else ""
    return f"out{since}{who}{why}"


def account_row(s: AccountState, now: float, gap_until: float | None = None) -> tuple[str, Row]:
    posts = f"{s.posts_today}/{s.limit}"
    after = _next_cell(s, now, gap_until)
    if s.off_by is not None:
        # Out of rotation, "next" has no time to give (it posts once put back): it names who
        # took it out, so a narrow terminal still shows who; the last error says since when, why.
        who_in_next = after == ""
        if who_in_next:
            after = (f"by {s.off_by}", "warn")
        last: Cell = (off_text(s, now, with_who=not who_in_next), "warn")
    else:
        last = (first_line(s.last_error), "bad") if s.last_error else ""
    return s.account, (
        s.account, s.phone, (s.state, TONES.get(s.state, "dim")),
        (posts, "ok") if s.posts_today >= s.limit else posts,
        str(s.waiting) if s.waiting else "", after, last)


class AccountRows:
    """Account rows, reused while an account's state is unchanged. A row that counts down (a
    cooldown or a gap) or up (the time out of rotation) is drawn again each poll and never kept: the time moves it, and once the
    wait is over the row must not come back from the cache with the old time in it."""

    def __init__(self) -> None:
        self._cache: dict[AccountState, Row] = {}

    def build(self, states: list[AccountState], now: float,
              gaps: dict[str, float] | None = None) -> dict[str, Row]:
        cache, fresh, out = self._cache, {}, {}
        gaps = gaps or {}
        for s in states:
            gap = gaps.get(s.account)
            timed = s.state == COOLDOWN or gap is not None or s.off_by is not None
            cells = None if timed else cache.get(s)
            if cells is None:
                cells = account_row(s, now, gap)[1]
            if not timed:
                fresh[s] = cells
            out[s.account] = cells
        self._cache = fresh
        return out


class AccountsPanel(LiveTable):
    title = "Accounts"
    empty_text = "no accounts"
    BINDINGS = [
        Binding("enter", "select", "Its jobs", id="account-jobs"),
        Binding("d", "app.toggle_account", "Out/in", id="account-rotation",
                tooltip="take the account out of rotation (asks first), or put it back"),
        Binding("D", "app.toggle_phone", "Phone out/in", id="phone-rotation", show=False,
                tooltip="take the account's phone out of rotation (asks first), or put it back"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(COLUMNS, **kwargs)
