"""Account states, derived from the store on every read and never stored.

Precedence when several hold: RUNNING (a job is claimed), BLOCKED (an account error: needs the
operator), LIMIT (today's slots are used), COOLDOWN (resting after failures or a rate limit),
WAITING (has jobs it could run but its phone is busy), AVAILABLE.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable

from . import columns as C
from .campaigns import Account
from .rules import Day, Tally, Usage, account_blocker, counts_today, due, now_iso, tally
from .settings import Settings

RUNNING, BLOCKED, LIMIT, COOLDOWN, WAITING, AVAILABLE = (
    "RUNNING", "BLOCKED", "LIMIT", "COOLDOWN", "WAITING", "AVAILABLE")
STATES = (RUNNING, BLOCKED, LIMIT, COOLDOWN, WAITING, AVAILABLE)


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

    def as_dict(self) -> dict:
        return asdict(self)


def account_states(rows: list[list[str]], settings: Settings, now: float,
                   accounts: Iterable[Account] = (),
                   busy_phones: Iterable[str] = (),
                   elsewhere: dict[str, Usage] | None = None) -> list[AccountState]:
    """One state per account: those of accounts.txt first, in its order, then any account that
    only appears in the progress file. `busy_phones` are phones held by workers of other runs;
    `elsewhere` is what accounts used today in the host's other progress files (archives of
    today, other campaigns), which counts toward their limit as the claim counts it."""
    day = Day.of(now, settings.tz)
    elsewhere = elsewhere or {}
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
        state = _state(t, limit, now, due_jobs.get(account, 0), phone in held)
        posted_elsewhere = elsewhere[account].posted if account in elsewhere else 0
        out.append(AccountState(
            account=account, phone=phone, state=state,
            posts_today=successes.get(account, 0) + posted_elsewhere,
            limit=limit, waiting=due_jobs.get(account, 0),
            cooldown_until=now_iso(t.cooldown_until) if state == COOLDOWN else None,
            last_error=t.last_error))
    return out


def _state(t: Tally, limit: int, now: float, due_count: int, phone_busy: bool) -> str:
    if t.running:
        return RUNNING
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
