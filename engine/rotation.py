"""Accounts and phones out of rotation: the operator's word that an account (or every account
on a phone) takes no new job until it is put back (its account is being checked, its phone is
in a drawer...).

Kept in the campaign's state folder as `.postdeck/rotation.json`, never in the operator's
accounts.txt (postdeck does not write the operator's files):

    {"disabled": {"acc_a": {"by": "maria", "at": "2025-06-15T12:00:00.000+00:00",
                            "why": "checking the login"}},
     "phones": {"phone-07": {"by": "maria", "at": "...", "why": "screen cracked"}}}

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
ACCOUNTS, PHONES = "disabled", "phones"      # the file's two sections


def rotation_path(ctx) -> Path:
    return Path(ctx.state_dir) / ROTATION_FILE


# --- reading --------------------------------------------------------------------------------------
def disabled(ctx) -> Entries:
    """The accounts out of rotation: account -> {by, at, why}. InputError when the file cannot
    be read as one (naming it)."""
    return read_rotation(rotation_path(ctx))


def phones_out(ctx) -> Entries:
    """The phones out of rotation: phone -> {by, at, why}."""
    return read_document(rotation_path(ctx))[PHONES]


def effective(ctx, accounts) -> Entries:
    """The accounts that take no job, as account states show them: those out of rotation, and
    those whose phone is (`why` says which phone)."""
    doc = read_document(rotation_path(ctx))
    out = dict(doc[ACCOUNTS])
    for account in accounts:
        entry = doc[PHONES].get(account.phone)
        if entry is not None and account.name not in out:
            out[account.name] = {**entry, "why": f"phone {account.phone} out: {entry['why']}"}
    return out


def read_rotation(path: Path) -> Entries:
    return read_document(path)[ACCOUNTS]


def read_document(path: Path) -> dict[str, Entries]:
    """Both sections of the file: accounts out ("disabled") and phones out ("phones")."""
    if not path.parent.is_dir():
        return {ACCOUNTS: {}, PHONES: {}}   # no state folder (refused elsewhere): none out
    raw = read_input(path, "the rotation file")
    if raw is None:
        return {ACCOUNTS: {}, PHONES: {}}
    text = decode_utf8(path, raw, _FIX)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, f"is not valid JSON ({exc.msg}); {_FIX}") from None
    if not isinstance(data, dict):
        data = {}
    return {ACCOUNTS: _entries(path, data.get(ACCOUNTS)),
            PHONES: _entries(path, data.get(PHONES, {}))}


def _entries(path: Path, entries: object) -> Entries:
    if not isinstance(entries, dict) or not all(
            isinstance(name, str) and isinstance(e, dict)
            and all(isinstance(e.get(k), str) for k in ("by", "at", "why"))
            for name, e in entries.items()):
        raise InputError(path, None, 'is not a rotation file (expected {"disabled": {account: '
                                     '{"by", "at", "why"}}, "phones": {phone: {...}}}); '
                                     f'{_FIX}')
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
        self._phones: frozenset[str] = frozenset()

    def accounts(self) -> frozenset[str]:
        self._refresh()
        return self._names

    def phones(self) -> frozenset[str]:
        """The phones out of rotation: no job on them is claimed."""
        self._refresh()
        return self._phones

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            self._key, self._names, self._phones = None, frozenset(), frozenset()
            return
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key == self._key:
            return
        try:
            doc = read_document(self.path)
        except InputError:
            if self._key is None:
                raise
            return
        self._key = key
        self._names, self._phones = frozenset(doc[ACCOUNTS]), frozenset(doc[PHONES])


# --- changing -------------------------------------------------------------------------------------
def disable(ctx, account: str, by: str, why: str) -> dict[str, str]:
    """Take `account` (one of accounts.txt) out of rotation; the entry in effect is returned.
    Taken out again, it keeps the time it went out (`at`) and takes the new `by` and `why`."""
    account = account.strip()
    _check_account(ctx, account)
    return _update(ctx, _taking_out(account, by, why))


def _taking_out(name: str, by: str, why: str) -> Callable[[Entries], dict[str, str]]:
    def change(entries: Entries) -> dict[str, str]:
        at = entries.get(name, {}).get("at") or now_iso(time.time())
        entries[name] = {"by": by, "at": at, "why": " ".join(why.split()) or NO_REASON}
        return entries[name]
    return change


def disable_phone(ctx, phone: str, by: str, why: str) -> dict[str, str]:
    """Take a phone (one of accounts.txt's phones) out of rotation: no job on it is claimed,
    whichever account it is for; the accounts keep their own entries."""
    phone = phone.strip()
    _check_phone(ctx, phone)
    return _update(ctx, _taking_out(phone, by, why), PHONES)


def enable_phone(ctx, phone: str) -> bool:
    """Put a phone back in rotation; False when it was not out."""
    phone = phone.strip()
    if phone not in phones_out(ctx):
        _check_phone(ctx, phone)
        return False
    return _update(ctx, lambda entries: entries.pop(phone, None) is not None, PHONES)


def _check_phone(ctx, phone: str) -> None:
    phones = {a.phone for a in ctx.load_accounts()}
    if phone not in phones:
        raise InputError(ctx.accounts_file, None, f"names no phone {phone!r}; its phones are "
                         f"{', '.join(sorted(phones)) or 'none'}")


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


def _update(ctx, change: Callable[[Entries], object], section: str = ACCOUNTS):
    """Read-modify-write of the rotation file under its lock; a change is written only when it
    changed something, and a refusal (a damaged file) leaves the file as it was."""
    path = rotation_path(ctx)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S):
            doc = read_document(path)
            before = json.dumps(doc, sort_keys=True)
            result = change(doc[section])
            if json.dumps(doc, sort_keys=True) != before:
                # "phones" is written only once a phone is out: the file stays as it was for
                # a campaign that never takes one out
                kept = {k: v for k, v in doc.items() if v or k == ACCOUNTS}
                data = json.dumps(kept, indent=2, sort_keys=True) + "\n"
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
