"""Checks on what a test left in a PostgreSQL store, read with plain SQL (not through the store
that wrote it): the account-safety invariants of DESIGN.md over every campaign and day."""
from __future__ import annotations

from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg

from engine.campaigns import video_name
from engine.rules import parse_time


def db_rows(url: str) -> list[dict]:
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('postdeck.jobs') IS NOT NULL").fetchone()[0]:
            return []
        cur = conn.execute("SELECT c.name, j.* FROM postdeck.jobs j JOIN postdeck.campaigns c "
                           "ON c.id = j.campaign ORDER BY c.name, j.day_no, j.pos")
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def db_ledger(url: str) -> list[dict]:
    with psycopg.connect(url, autocommit=True) as conn:
        if not conn.execute("SELECT to_regclass('postdeck.ledger') IS NOT NULL").fetchone()[0]:
            return []
        cur = conn.execute("SELECT c.name, l.* FROM postdeck.ledger l JOIN postdeck.campaigns c "
                           "ON c.id = l.campaign ORDER BY l.seq")
        names = [d.name for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]


def assert_db_safe(url: str, limit: int | None = None, tz: str = "UTC") -> None:
    """No account above `limit` on any calendar day (every campaign and day of the database),
    no account with two claims, no video posted twice in a campaign, and no success without
    its ledger entry."""
    rows = db_rows(url)
    zone = ZoneInfo(tz)
    used: Counter = Counter()
    claims: Counter = Counter()
    posted: Counter = Counter()
    for r in rows:
        if r["status"] == "claimed":
            claims[r["account"]] += 1
            at = r["claimed_at"]
        elif r["status"] == "success" or r["error_type"] == "outcome_unknown":
            at = r["completed_at"]
        else:
            continue
        if r["status"] == "success":
            posted[(r["name"], video_name(r["video_path"]))] += 1
        when = parse_time(at)
        day = datetime.fromtimestamp(when, zone).date().isoformat() if when else "?"
        used[(r["account"], day)] += 1
    if limit is not None:
        over = {k: n for k, n in used.items() if n > limit}
        assert not over, f"accounts above their daily limit of {limit}: {over}"
    two = {a: n for a, n in claims.items() if n > 1}
    assert not two, f"accounts with more than one claim: {two}"
    twice = {k: n for k, n in posted.items() if n > 1}
    assert not twice, f"videos posted twice: {twice}"
    held = {(e["name"], e["job_id"]) for e in db_ledger(url)}
    lost = [r["job_id"] for r in rows if r["status"] == "success"
            and (r["name"], r["job_id"]) not in held]
    assert not lost, f"successes the ledger does not hold: {lost}"
