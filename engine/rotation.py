"""Accounts out of rotation: the operator's word that an account takes no new job until it is
put back (its account is being checked, its phone is in a drawer...).

Kept in the campaign's state folder as `.postdeck/rotation.json`, never in the operator's
accounts.txt (postdeck does not write the operator's files):

    {"disabled": {"acc_a": {"by": "maria", "at": "2025-06-15T12:00:00.000+00:00",
                            "why": "checking the login"}}}

The claim never takes a job of an account listed here (claim rule "in rotation", in
engine/tracker.py); its pending jobs stay pending and are posted once it is back. Every change is
a read-modify-write under `rotation.json.lock`, written atomically (engine/durable.py), so two
operators cannot lose each other's change. A file that does not parse is refused with its name,
never guessed at: a lost entry would put an account back to work.
"""
from __future__ import annotations

import getpass
import json
import os
import time
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from .durable import write_atomic
from .problems import InputError, decode_utf8, read_input
from .rules import now_iso

ROTATION_FILE = "rotation.json"
LOCK_TIMEOUT_S = 30.0
NO_REASON = "no reason given"
_FIX = "fix it, or move it away to put every account back in rotation"

Entries = dict[str, dict[str, str]]


def rotation_path(ctx) -> Path:
    return Path(ctx.state_dir) / ROTATION_FILE


# --- reading --------------------------------------------------------------------------------------
def disabled(ctx) -> Entries:
    """The accounts out of rotation: account -> {by, at, why}. InputError when the file cannot
    be read as one (naming it)."""
    return read_rotation(rotation_path(ctx))


def read_rotation(path: Path) -> Entries:
    if not path.parent.is_dir():
        return {}       # no state folder (or a file in its place, refused elsewhere): none out
    raw = read_input(path, "the rotation file")
    if raw is None:
        return {}
    text = decode_utf8(path, raw, _FIX)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, f"is not valid JSON ({exc.msg}); {_FIX}") from None
    entries = data.get("disabled") if isinstance(data, dict) else None
    if not isinstance(entries, dict) or not all(
            isinstance(name, str) and isinstance(e, dict)
            and all(isinstance(e.get(k), str) for k in ("by", "at", "why"))
            for name, e in entries.items()):
        raise InputError(path, None, 'is not a rotation file (expected {"disabled": {account: '
                                     f'{{"by", "at", "why"}}}}}}); {_FIX}')
    return {name: {k: e[k] for k in ("by", "at", "why")} for name, e in entries.items()}


class Rotation:
    """The names of the accounts out of rotation, for the claim: asked on every claim, so the
    file is read again only when it changed (every write replaces it: a new inode, mtime and
    size). A file damaged while a run goes keeps the last names read (no account goes back to
    work by a bad edit); damaged from the start, it is refused (InputError)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._key: tuple[int, int, int] | None = None
        self._names: frozenset[str] = frozenset()

    def accounts(self) -> frozenset[str]:
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            self._key, self._names = None, frozenset()
            return self._names
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self._key:
            return self._names
        try:
            names = frozenset(read_rotation(self.path))
        except InputError:
            if self._key is None:
                raise
            return self._names
        self._key, self._names = key, names
        return names


# --- changing -------------------------------------------------------------------------------------
def disable(ctx, account: str, by: str, why: str) -> dict[str, str]:
    """Take `account` (one of accounts.txt) out of rotation; the entry in effect is returned.
    Taken out again, it keeps the time it went out (`at`) and takes the new `by` and `why`."""
    account = account.strip()
    _check_account(ctx, account)

    def change(entries: Entries) -> dict[str, str]:
        at = entries.get(account, {}).get("at") or now_iso(time.time())
        entries[account] = {"by": by, "at": at, "why": " ".join(why.split()) or NO_REASON}
        return entries[account]

    return _update(ctx, change)


def enable(ctx, account: str) -> bool:
    """Put `account` back in rotation; False when it was not out. An account out of rotation
    may be put back even after it left accounts.txt; any other name must be one of it."""
    account = account.strip()

    def change(entries: Entries) -> bool:
        return entries.pop(account, None) is not None

    if account not in disabled(ctx):
        _check_account(ctx, account)
        return False
    return _update(ctx, change)


def current_user() -> str:
    """Who takes an account out: the OS user running postdeck (over SSH, the operator)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):    # no user name in the environment or passwd
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def _check_account(ctx, account: str) -> None:
    # One home for "an account the operator names is one of accounts.txt" (and its message).
    from .operations import check_accounts
    check_accounts(ctx, [account], ctx.load_accounts())


def _update(ctx, change: Callable[[Entries], object]):
    """Read-modify-write of the rotation file under its lock; a change is written only when it
    changed something, and a refusal (a damaged file) leaves the file as it was."""
    path = rotation_path(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
            entries = read_rotation(path)
            before = json.dumps(entries, sort_keys=True)
            result = change(entries)
            if json.dumps(entries, sort_keys=True) != before:
                data = json.dumps({"disabled": entries}, indent=2, sort_keys=True) + "\n"
                try:
                    write_atomic(path, data.encode("utf-8"))
                except OSError as exc:
                    raise InputError(path, None, f"could not be written ({exc.strerror or exc});"
                                     " it is left as it was. Free some space or fix the "
                                     "folder") from None
            return result
    except Timeout:
        raise InputError(path, None, f"the lock {path}.lock has been held for over "
                                     f"{LOCK_TIMEOUT_S:.0f}s; is a process stuck?") from None
