"""What the engine tells an operator, structured so each front end can word it for its medium.

Three shapes: InputError (bad input: it names the file and the line and says what to do),
Refused (understood, but must not run now: a run is alive, a phone is held...) and Notice (what
an action did). Each carries its message, the pids it is about, and remedies: what the operator
can do next, as Remedy ids. The engine never names a command-line flag or a key; the headless
CLI words a remedy as its flag (`--stop`), the console as its key (`x`). str() gives neutral
words, for logs and for callers that have no medium of their own.
"""
from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Mapping, Sequence


class Remedy(StrEnum):
    STATUS = "status"                  # watch the run
    STOP = "stop"                      # let workers finish their job, then end the run
    STOP_ALL = "stop_all"              # end the workers now
    RESET_DAY = "reset_day"            # archive the day's file and start a new one
    RESET_AND_SEED = "reset_and_seed"  # a new day, seeded at once
    LIST_CAMPAIGNS = "list_campaigns"  # see which campaigns there are
    CAMPAIGNS_DIR = "campaigns_dir"    # point at another campaigns folder


NEUTRAL_WORDS: dict[Remedy, str] = {
    Remedy.STATUS: "Watch it in the status.",
    Remedy.STOP: "Stop it first (or stop all).",
    Remedy.STOP_ALL: "Wait for them to finish, or stop all to end them now.",
    Remedy.RESET_DAY: "Or reset the day to archive it and start a new day.",
    Remedy.RESET_AND_SEED: "Reset the day and seed it to start a new day.",
    Remedy.LIST_CAMPAIGNS: "See the list of campaigns.",
    Remedy.CAMPAIGNS_DIR: "Or name another campaigns folder.",
}


class Explained:
    """A message with the pids it names and the remedies the front end words."""
    message: str
    pids: tuple[int, ...] = ()
    remedies: tuple[Remedy, ...] = ()

    def _set(self, message: str, pids: Sequence[int], remedies: Sequence[Remedy]) -> None:
        self.message = message
        self.pids = tuple(pids)
        self.remedies = tuple(remedies)

    def headline(self) -> str:
        return self.message

    def explain(self, words: Mapping[Remedy, str] = NEUTRAL_WORDS) -> str:
        text = self.headline()
        advice = " ".join(words[r] for r in self.remedies if words.get(r))
        if not advice:
            return text
        return f"{text}{'' if text.endswith('.') else '.'} {advice}"


class InputError(Explained, Exception):
    def __init__(self, path: Path | str | None, line: int | None, message: str, *,
                 remedies: Sequence[Remedy] = ()):
        self.path = Path(path) if path is not None else None
        self.line = line
        self._set(message, (), remedies)
        super().__init__(self.explain())

    def headline(self) -> str:
        if self.path is None:
            return self.message
        where = f"{self.path}" + (f", line {self.line}" if self.line else "")
        return f"{where}: {self.message}"

    def __str__(self) -> str:
        return self.explain()


class Refused(Explained, Exception):
    """A command that is understood but must not run now (a run is alive, a phone is held...)."""

    def __init__(self, message: str, *, pids: Sequence[int] = (),
                 remedies: Sequence[Remedy] = ()):
        self._set(message, pids, remedies)
        super().__init__(self.explain())

    def __str__(self) -> str:
        return self.explain()


class Notice(Explained):
    """What an action did (a stop requested, orphans ended), for the front end to word."""

    def __init__(self, message: str, *, pids: Sequence[int] = (),
                 remedies: Sequence[Remedy] = ()):
        self._set(message, pids, remedies)

    def __str__(self) -> str:
        return self.explain()


def read_input(path: Path, what: str) -> bytes | None:
    """An operator's or postdeck's file, as bytes; None when there is none. Anything else in its
    place (a folder, a file that cannot be read) is one InputError naming it, never a
    traceback, and the thing is left as it is."""
    path = Path(path)
    if path.exists() and not path.is_file():   # a pipe would block the read for ever
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise InputError(path, None, f"is {kind}, but {what} must be a file; move it away")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(path, None, f"cannot be read ({exc.strerror or exc}); check {what} "
                                     "and its permissions") from None


def decode_utf8(path: Path, raw: bytes, advice: str = "save it as UTF-8") -> str:
    """UTF-8 with or without a BOM; a byte that is not names the line it is on."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(path, raw[: exc.start].count(b"\n") + 1,
                         f"is not UTF-8 text; {advice}") from None
