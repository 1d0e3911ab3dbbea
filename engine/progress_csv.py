"""The progress file's codec: parse (strictly, naming the line of any problem), re-parse
incrementally after another process's write, and serialize. The store (engine/tracker.py) and
every reader of progress files (the console, the daily-limit count over archives and other
campaigns) use this one module, so the format has one home."""
from __future__ import annotations

import csv
import io
from itertools import compress
from operator import ne
from pathlib import Path
from typing import Iterable

from . import columns as C
from .problems import InputError, Remedy


class CorruptProgressFile(InputError):
    def __init__(self, path: Path, line: int | None, problem: str):
        super().__init__(path, line, f"{problem}. The file is left as it is: inspect it",
                         remedies=(Remedy.RESET_DAY,))


class Table:
    """The parsed file: rows as lists of 20 strings, in file order.

    `raw[i]` is row i's bytes as they stand in the file (None when not known) and `orig[i]` a
    copy of the row's values when those bytes were taken. Writing re-serializes only the rows
    that no longer equal their `orig` (the ones a change touched), and a re-read after another
    process's write re-parses only the rows that differ (`reparse`): both cost a join or a
    comparison per row instead of the csv module's work on the whole file."""

    def __init__(self, rows: list[list[str]], raw: list[bytes | None] | None = None,
                 orig: list[list[str] | None] | None = None):
        self.rows = rows
        self.raw: list[bytes | None] = raw if raw is not None else [None] * len(rows)
        self.orig: list[list[str] | None] = orig if orig is not None else [
            None if t is None else r[:] for r, t in zip(rows, self.raw)]
        self.index = {row[C.JOB_ID]: i for i, row in enumerate(rows)}

    def get(self, job_id: str) -> list[str] | None:
        i = self.index.get(job_id)
        return None if i is None else self.rows[i]

    def append(self, row: list[str]) -> None:
        self.index[row[C.JOB_ID]] = len(self.rows)
        self.rows.append(row)
        self.raw.append(None)
        self.orig.append(None)


def job_dict(row: list[str]) -> dict[str, str]:
    return dict(zip(C.COLUMNS, row))


HEADER_BYTES = (",".join(C.COLUMNS) + "\n").encode()
_STATUSES = frozenset(C.STATUSES)


def _lines(text):
    """`text` (str or bytes) cut after each newline, as io.StringIO(text, newline="") iterates
    it when the text holds no carriage return. A str and its UTF-8 bytes cut alike."""
    nl = "\n" if isinstance(text, str) else b"\n"
    parts = text.split(nl)
    lines = [p + nl for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _raw(lines: list[bytes], start: int, after: int) -> bytes:
    """The bytes of the row on lines start..after-1 (1-based, as csv's line_num counts)."""
    return lines[start - 1] if after == start + 1 else b"".join(lines[start - 1:after - 1])


def parse_progress(path: Path, data: bytes) -> Table:
    """Validate and parse a progress file's bytes. Header-only is a valid, empty day."""
    if not data:
        raise CorruptProgressFile(path, 1, "is empty (zero bytes), not even a header")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptProgressFile(path, data[: exc.start].count(b"\n") + 1,
                                  "is not UTF-8 text") from None
    # Without "\r" the file's lines are exactly its "\n"-cut pieces, so each row's bytes can be
    # kept (Table.raw); with "\r" (the earlier system wrote CRLF) the file is read as before.
    lines = _lines(text) if "\r" not in text else None
    reader = csv.reader(lines if lines is not None else io.StringIO(text, newline=""),
                        strict=True)
    rows: list[list[str]] = []
    raws: list[bytes | None] = []
    seen: dict[str, int] = {}
    try:
        header = tuple(next(reader))
        if header not in C.ACCEPTED_HEADERS:
            raise CorruptProgressFile(path, 1, "has a header that is not a progress file's "
                                               f"(expected: {','.join(C.COLUMNS)})")
        width = len(header)
        pad = [""] * (C.WIDTH - width)
        blines = _lines(data) if lines is not None and not pad else None
        statuses = _STATUSES
        line = reader.line_num + 1
        for row in reader:
            start, line = line, reader.line_num + 1
            if len(row) != width:
                raise CorruptProgressFile(path, start, f"has a row with {len(row)} fields where "
                                                       f"the header has {width}")
            if row[C.STATUS] not in statuses:
                raise CorruptProgressFile(path, start, f"has an unknown status '{row[C.STATUS]}'")
            job_id = row[C.JOB_ID]
            if job_id in seen:
                raise CorruptProgressFile(path, start, f"has job '{job_id}' twice (first on line "
                                                       f"{seen[job_id]})")
            seen[job_id] = start
            rows.append(row + pad if pad else row)
            if blines is not None:
                raw = _raw(blines, start, line)
                raws.append(raw if raw.endswith(b"\n") else None)
    except StopIteration:
        raise CorruptProgressFile(path, 1, "has no header line") from None
    except csv.Error as exc:
        raise CorruptProgressFile(path, reader.line_num, f"is not valid CSV ({exc}); the last "
                                                         "write may have been cut off") from None
    return Table(rows, raws if blines is not None else None)


def reparse(old: Table, data: bytes) -> Table | None:
    """Parse `data` reusing the rows of `old` (a parse of an earlier version of the file) whose
    bytes it still holds: its common start and end are taken as they are, and in between every
    line that is byte-for-byte one of old's rows is that row again; only the other records are
    parsed. None when that is not possible or anything looks wrong: the caller then parses the
    whole file with parse_progress, which reports any problem with its line.

    Sound because CSV parsing is deterministic from the start of a record: the common prefix
    ends on a row boundary of `old`, so it parses to the same rows. In the middle each step starts
    at a record boundary; a record ends at the first line end outside quotes, that is where its
    count of quote characters turns even (quotes inside a field are doubled). A record equal to
    an old row's bytes is that row; any other is parsed on its own and must give exactly one
    valid row. The bytes kept in common were valid UTF-8 in
    `old`; the rest is decoded here."""
    raws = old.raw
    if not raws or raws[0] is None or b"\r" in data or not data.startswith(HEADER_BYTES):
        return None
    pos, n, i = len(HEADER_BYTES), len(raws), 0
    while i < n:
        raw = raws[i]
        if raw is None or not data.startswith(raw, pos):
            break
        pos += len(raw)
        i += 1
    end, k = len(data), n
    while k > i:
        raw = raws[k - 1]
        if raw is None or end - len(raw) < pos or not data.endswith(raw, pos, end):
            break
        end -= len(raw)
        k -= 1
    middle = data[pos:end]
    if middle and not middle.endswith(b"\n"):
        return None
    known: dict[bytes, int] | None = None    # built only if rows moved or went away
    rows: list[list[str]] = []
    new_raw: list[bytes | None] = []
    origs: list[list[str] | None] = []
    j = i       # the next old row, in the common case where rows keep their order
    while pos < end:
        raw = raws[j] if j < k else None
        if raw is not None and data.startswith(raw, pos):
            rows.append(old.rows[j])
            new_raw.append(raw)
            origs.append(old.orig[j])
            pos += len(raw)
            j += 1
            continue
        stop = _record_end(data, pos, end)
        if stop < 0:
            return None
        record = data[pos:stop]
        pos = stop
        if known is None:
            known = {raws[m]: m for m in range(i, k) if raws[m] is not None}
        m = known.get(record)
        if m is not None:            # a row that moved: the same row again
            rows.append(old.rows[m])
            new_raw.append(record)
            origs.append(old.orig[m])
            j = max(j, m + 1)
            continue
        row = _one_row(record)
        if row is None:
            return None
        rows.append(row)
        new_raw.append(record)
        origs.append(row[:])
        if j < k and old.rows[j][C.JOB_ID] == row[C.JOB_ID]:
            j += 1                   # the old row this record replaced
    table = Table(old.rows[:i] + rows + old.rows[k:], raws[:i] + new_raw + raws[k:],
                  old.orig[:i] + origs + old.orig[k:])
    if len(table.index) != len(table.rows):
        return None  # a duplicate job_id: the full parse names its lines
    return table


def _record_end(data: bytes, pos: int, end: int) -> int:
    """Where the record starting at `pos` ends: after the first line end at which its count of
    quote characters is even. -1 when it runs past `end`."""
    quotes = 0
    while True:
        nl = data.find(b"\n", pos, end)
        if nl < 0:
            return -1
        quotes += data.count(b'"', pos, nl)
        pos = nl + 1
        if quotes % 2 == 0:
            return pos


def _one_row(record: bytes) -> list[str] | None:
    """The single valid progress row `record` holds, or None."""
    try:
        parsed = list(csv.reader(_lines(record.decode("utf-8")), strict=True))
    except (UnicodeDecodeError, csv.Error):
        return None
    if len(parsed) != 1:
        return None
    row = parsed[0]
    if len(row) != C.WIDTH or row[C.STATUS] not in _STATUSES:
        return None
    return row


def serialize(rows: Iterable[list[str]]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(C.COLUMNS)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def serialize_table(table: Table) -> bytes:
    """The same bytes as serialize(table.rows) for every row written by postdeck; a row nobody
    changed keeps its bytes as they were read."""
    rows, raws, origs = table.rows, table.raw, table.orig
    # A row whose orig is None has no raw either; `row != None` marks it changed too.
    changed = list(compress(range(len(rows)), map(ne, rows, origs)))
    if changed:
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\n")
        for i in changed:
            buf.seek(0)
            buf.truncate()
            writer.writerow(rows[i])
            raws[i] = buf.getvalue().encode("utf-8")
            origs[i] = rows[i][:]
    return HEADER_BYTES + b"".join(raws)  # type: ignore[arg-type]


HEADER_ONLY = serialize([])
assert HEADER_ONLY == HEADER_BYTES
