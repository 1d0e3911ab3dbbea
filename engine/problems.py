"""The one kind of error an operator sees for bad input: it names the file and the line and says
what to do. Commands print it and exit 1 without changing anything."""
from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    def __init__(self, path: Path | str | None, line: int | None, message: str):
        self.path = Path(path) if path is not None else None
        self.line = line
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        where = f"{self.path}" + (f", line {self.line}" if self.line else "")
        return f"{where}: {self.message}"


class Refused(Exception):
    """A command that is understood but must not run now (a run is alive, a phone is held...)."""
