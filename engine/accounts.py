"""Account states, derived from the store on every read and never stored.

Precedence when several hold: RUNNING (a job is claimed), OFF (the operator took it out of
rotation, engine/rotation.py: who and since when are in `off_by`, `off_at`, `off_why`), BLOCKED
(an account error: needs the operator), LIMIT (today's slots are used), COOLDOWN (resting after
failures or a rate limit), WAITING (has jobs it could run but its phone is busy), AVAILABLE.
RUNNING comes before OFF: a job claimed before the account went out still runs to its end.

OFF is the one state not derived from the store: the rotation file is the operator's word, read
by the caller and passed in (`disabled`), as the claim reads it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Mapping

from . import columns as C
from .campaigns import Account
from .rules import (Day, Tally, Usage, account_blocker, counts_today, due, now_iso,
                    parse_time, tally)
from .settings import Settings

RUNNING, OFF, BLOCKED, LIMIT, COOLDOWN, WAITING, AVAILABLE = (
    "RUNNING", "OFF", "BLOCKED", "LIMIT", "COOLDOWN", "WAITING", "AVAILABLE")
STATES = (RUNNING, OFF, BLOCKED, LIMIT, COOLDOWN, WAITING, AVAILABLE)

OFF_FIELDS = ("off_by", "off_at", "off_why")
# account -> {"by", "at", "why"}: engine/rotation.disabled(ctx)
Disabled = Mapping[str, Mapping[str, str]]


@dataclass(frozen=True)
class AccountState:
    account: str
    phone: str
    state: str
    posts_today: int
    limit: int
    waiting: int                  # jobs that are due but not running
    cooldown_until: str | None    # ISO time while in COOLDOWN
    last_error: str
    # Out of rotation (whatever the state: a RUNNING account may be out already): who took it
    # out, since when (ISO time), and why; None while it is in rotation.
    off_by: str | None = None
    off_at: str | None = None
    off_why: str | None = None

    def as_dict(self) -> dict:
        """The fields, the off_* ones only while out of rotation (the listing of an account in
        rotation stays as it always was)."""
        out = asdict(self)
        if self.off_by is None:
            for key in OFF_FIELDS:
                del out[key]
        return out


def account_states(rows: list[list[str]], settings: Settings, now: float,
                   accounts: Iterable[Account] = (),
                   busy_phones: Iterable[str] = (),
                   elsewhere: dict[str, Usage] | None = None,
                   disabled: Disabled | None = None) -> list[AccountState]:
    """One state per account: those of accounts.txt first, in its order, then any account that
    only appears in the progress file. `busy_phones` are phones held by workers of other runs;
    `elsewhere` is what accounts used today in the host's other progress files (archives of
    today, other campaigns), which counts toward their limit as the claim counts it;
    `disabled` the accounts out of rotation (engine/rotation.disabled)."""
    day = Day.of(now, settings.tz)
    elsewhere = elsewhere or {}
    disabled = disabled or {}
    tallies = tally(rows, settings, day, elsewhere)
    limit = settings.daily_limit
    phones: dict[str, str] = {a.name: a.phone for a in accounts}
    due_jobs: dict[str, int] = {}
    successes: dict[str, int] = {}
    held = set(busy_phones)
    for row in rows:
        account = row[C.ACCOUNT]
        phones.setdefault(account, row[C.PHONE_ID] or account)
        status = row[C.STATUS]
        if status == C.SUCCESS and counts_today(row, day):
            successes[account] = successes.get(account, 0) + 1
        elif status == C.CLAIMED:
            held.add(row[C.PHONE_ID] or account)
        if due(row, now):
            due_jobs[account] = due_jobs.get(account, 0) + 1
    out = []
    for account, phone in phones.items():
        t = tallies.get(account) or Tally()
        off = disabled.get(account)
        state = _state(t, limit, now, due_jobs.get(account, 0), phone in held, off is not None)
        posted_elsewhere = elsewhere[account].posted if account in elsewhere else 0
        out.append(AccountState(
            account=account, phone=phone, state=state,
            posts_today=successes.get(account, 0) + posted_elsewhere,
            limit=limit, waiting=due_jobs.get(account, 0),
            cooldown_until=now_iso(t.cooldown_until) if state == COOLDOWN else None,
            last_error=t.last_error,
            off_by=off.get("by") if off else None, off_at=off.get("at") if off else None,
            off_why=off.get("why") if off else None))
    return out


def _state(t: Tally, limit: int, now: float, due_count: int, phone_busy: bool,
           off: bool = False) -> str:
    if t.running:
        return RUNNING
    if off:
        return OFF
    if t.blocked_by:
        return BLOCKED
    reason = account_blocker(t, limit, now)
    if reason == "limit":
        return LIMIT
    if reason == "cooldown":
        return COOLDOWN
    if due_count and phone_busy:
        return WAITING
    return AVAILABLE


def concurrency_metrics(states: Iterable[AccountState]) -> dict[str, int]:
    """The figures of the earlier system's concurrency report: accounts running and waiting, the
    jobs held back, and of those the ones held back only by one-job-per-account."""
    states = list(states)
    return {
        "accounts_running": sum(s.state == RUNNING for s in states),
        "accounts_waiting": sum(s.state == WAITING for s in states),
        "jobs_waiting": sum(s.waiting for s in states if s.state in (RUNNING, WAITING)),
        "concurrency_blocks": sum(s.waiting for s in states if s.state == RUNNING),
    }


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
                elsewhere: dict[str, Usage] | None = None,
                disabled: Disabled | None = None) -> list[AccountState]:
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
        disabled = disabled or {}
        # A new day changes every account's count, and a change of rotation is the operator's
        # (rare, and seen at once): compute them all.
        key = (id(accounts), len(accounts), settings, Day.of(now, settings.tz).label,
               _rotation_key(disabled))
        if key != self._key or now - self._full_at >= self.full_every or now < self._now:
            states = account_states(rows, settings, now, accounts, busy, elsewhere, disabled)
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
                    {a: u for a, u in elsewhere.items() if a in stale}, disabled)}
            listed = {a.name for a in accounts}
            order = [a.name for a in accounts] + [a for a in groups if a not in listed]
            states = [fresh.get(a) or self._states[a] for a in order]
        self._states = {s.account: s for s in states}
        self._groups, self._held, self._now = groups, held, now
        self._elsewhere = elsewhere
        return states


def _rotation_key(disabled: Disabled) -> tuple:
    return tuple(sorted((a, tuple(sorted(e.items()))) for a, e in disabled.items()))
