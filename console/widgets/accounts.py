"""The accounts panel: each account's state (RUNNING, BLOCKED, LIMIT, COOLDOWN, WAITING,
AVAILABLE), posts today against the limit, waiting jobs, cooldown left and the last error.
`enter` filters the job table to that account."""
from __future__ import annotations

from textual.binding import Binding

from engine.accounts import AVAILABLE, BLOCKED, COOLDOWN, LIMIT, RUNNING, WAITING, AccountState
from engine.rules import parse_time

from .fmt import duration, first_line
from .live_table import Column, LiveTable, Row

COLUMNS = (
    Column("account", "account", 16),
    Column("phone", "phone", 12, drop=1),
    Column("state", "state", 9),
    Column("posts", "today", 5, right=True),
    Column("waiting", "wait", 4, right=True),
    Column("cooldown", "cooldown", 8, right=True),
    Column("error", "last error", 14, flex=True),
)

TONES = {RUNNING: "busy", BLOCKED: "bad", LIMIT: "ok", COOLDOWN: "warn", WAITING: "info",
         AVAILABLE: "dim"}


def account_row(s: AccountState, now: float) -> tuple[str, Row]:
    until = parse_time(s.cooldown_until or "")
    cooldown = duration(until - now) if until and until > now else ""
    posts = f"{s.posts_today}/{s.limit}"
    return s.account, (
        s.account, s.phone, (s.state, TONES.get(s.state, "dim")),
        (posts, "ok") if s.posts_today >= s.limit else posts,
        str(s.waiting) if s.waiting else "", (cooldown, "warn") if cooldown else "",
        (first_line(s.last_error), "bad") if s.last_error else "")


class AccountRows:
    """Account rows, reused while an account's state is unchanged (a cooldown counts down, so
    those are drawn again)."""

    def __init__(self) -> None:
        self._cache: dict[AccountState, Row] = {}

    def build(self, states: list[AccountState], now: float) -> dict[str, Row]:
        cache, fresh, out = self._cache, {}, {}
        for s in states:
            cells = cache.get(s) if s.state != COOLDOWN else None
            if cells is None:
                cells = account_row(s, now)[1]
            fresh[s] = out[s.account] = cells
        self._cache = fresh
        return out


class AccountsPanel(LiveTable):
    title = "Accounts"
    empty_text = "no accounts"
    BINDINGS = [Binding("enter", "select", "Its jobs", id="account-jobs")]

    def __init__(self, **kwargs) -> None:
        super().__init__(COLUMNS, **kwargs)
