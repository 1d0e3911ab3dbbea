"""The accounts panel: each account's state (RUNNING, BLOCKED, LIMIT, COOLDOWN, WAITING,
AVAILABLE), posts today against the limit, waiting jobs, cooldown left and the last error.
`enter` filters the job table to that account."""
from __future__ import annotations

from textual.binding import Binding

from engine import columns as C
from engine.accounts import (AVAILABLE, BLOCKED, COOLDOWN, LIMIT, RUNNING, WAITING, AccountState,
                             account_states)
from engine.campaigns import Account
from engine.rules import Day, Usage, parse_time
from engine.settings import Settings

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


class AccountStates:
    """The engine's `account_states`, recomputed only for the accounts a poll can have changed.

    An account's state depends on its own rows, on which phones are held (by claimed jobs of any
    account, or by other campaigns), on what it used today in the host's other progress files,
    and on the time. So after the first poll only these accounts
    are computed again, by the engine's own function on their rows alone: those with a row
    added, removed or changed; those whose use elsewhere changed; those on a phone whose held state
    changed; those cooling down or
    with a retry due later (time moves them). The phones held are passed in full, so each
    account sees what it would see in a full computation. A full computation runs when the
    accounts file or settings change, and every `full_every` seconds anyway."""

    def __init__(self, full_every: float = 30.0) -> None:
        self.full_every = full_every
        self._states: dict[str, AccountState] = {}
        self._groups: dict[str, list[list[str]]] = {}
        self._held: set[str] = set()
        self._key: tuple | None = None
        self._full_at = float("-inf")
        self._now = float("-inf")
        self._elsewhere: dict[str, Usage] = {}

    def compute(self, rows: list[list[str]], settings: Settings, now: float,
                accounts: list[Account], busy: set[str],
                elsewhere: dict[str, Usage] | None = None) -> list[AccountState]:
        groups: dict[str, list[list[str]]] = {}
        held = set(busy)
        retrying: list[list[str]] = []
        for row in rows:
            account = row[C.ACCOUNT]
            group = groups.get(account)
            if group is None:
                group = groups[account] = []
            group.append(row)
            status = row[C.STATUS]
            if status == C.CLAIMED:
                held.add(row[C.PHONE_ID] or account)
            elif status == C.RETRYING:
                retrying.append(row)
        elsewhere = elsewhere or {}
        # A new day changes every account's count: compute them all.
        key = (id(accounts), len(accounts), settings, Day.of(now, settings.tz).label)
        if key != self._key or now - self._full_at >= self.full_every or now < self._now:
            states = account_states(rows, settings, now, accounts, busy, elsewhere)
            self._key, self._full_at = key, now
        else:
            old = self._groups
            stale = {a for a, group in groups.items()
                     if len(group) != len(old.get(a, ())) or
                     any(x is not y for x, y in zip(group, old[a]))}
            stale.update(a for a in old if a not in groups)
            last = self._now
            for row in retrying:        # a retry that fell due since the last poll
                at = parse_time(row[C.RETRY_AT])
                if at is not None and last < at <= now:
                    stale.add(row[C.ACCOUNT])
            old_elsewhere = self._elsewhere
            stale.update(a for a in elsewhere.keys() | old_elsewhere.keys()
                         if elsewhere.get(a) != old_elsewhere.get(a))
            moved = held ^ self._held
            for name, st in self._states.items():
                if st.phone in moved:
                    stale.add(name)
                elif st.state == COOLDOWN:
                    until = parse_time(st.cooldown_until or "")
                    if until is None or until <= now:
                        stale.add(name)
            fresh: dict[str, AccountState] = {}
            if stale:
                mine = [r for a in stale for r in groups.get(a, ())]
                fresh = {s.account: s for s in account_states(
                    mine, settings, now, [a for a in accounts if a.name in stale], held,
                    {a: u for a, u in elsewhere.items() if a in stale})}
            listed = {a.name for a in accounts}
            order = [a.name for a in accounts] + [a for a in groups if a not in listed]
            states = [fresh.get(a) or self._states[a] for a in order]
        self._states = {s.account: s for s in states}
        self._groups, self._held, self._now = groups, held, now
        self._elsewhere = elsewhere
        return states


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
