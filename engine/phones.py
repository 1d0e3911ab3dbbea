"""Host-wide phone locks: at most one worker drives a phone, whichever campaign it belongs to.

A worker holds `<host state>/phones/<phone>.lock` (a FileLock: freed by the OS when the worker
dies) for as long as it drives the phone, and writes who it is beside it so others can name it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from filelock import FileLock, Timeout

from .runstate import process_alive


MAX_NAME = 80


def _safe(phone: str) -> str:
    """A file name for a phone's lock. Phone names are the operator's (often account names):
    any character, any length. Two names must never share a lock, so a name that had to be
    changed or cut carries a digest of the original."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", phone)
    if safe == phone and len(phone) <= MAX_NAME and not phone.startswith("."):
        return phone
    digest = hashlib.sha1(phone.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{safe[:MAX_NAME - 17]}-{digest}"


class PhoneLocks:
    """The phone locks one worker process holds. Made inside the worker, after spawn."""

    def __init__(self, folder: Path, owner: dict):
        self.folder = Path(folder)
        self.owner = owner
        self._held: dict[str, FileLock] = {}

    def try_hold(self, phone: str) -> bool:
        if phone in self._held:
            return True
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.folder / f"{_safe(phone)}.lock"), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            return False
        self._held[phone] = lock
        info = self.folder / f"{_safe(phone)}.json"
        info.write_text(json.dumps({**self.owner, "phone": phone, "pid": os.getpid()}))
        return True

    def release(self, phone: str) -> None:
        lock = self._held.pop(phone, None)
        if lock is not None:
            try:
                (self.folder / f"{_safe(phone)}.json").unlink()
            except FileNotFoundError:
                pass
            lock.release()

    def release_all(self) -> None:
        for phone in list(self._held):
            self.release(phone)


def held_phones(folder: Path) -> dict[str, dict]:
    """Phones held by a live process, with the owner it wrote."""
    out: dict[str, dict] = {}
    if not Path(folder).is_dir():
        return out
    for info in Path(folder).glob("*.json"):
        try:
            owner = json.loads(info.read_text())
        except (OSError, ValueError):
            continue
        pid = owner.get("pid")
        if isinstance(pid, int) and process_alive(pid):
            out[str(owner.get("phone"))] = owner
    return out
