"""The job table: every job of the day in file order (the order workers claim them) with its
status, phase, worker, attempts, claim time, duration and error. Built for 10,000 rows: a job's
cells are formatted again only when its row in the store changed (or while it runs, for the
duration). `enter` opens the job's detail; `t` retries the job under the cursor now, `K` skips it,
`F` moves a pending one to the front (the app's actions: they take the job when pressed)."""
from __future__ import annotations

import os
from datetime import tzinfo

from textual.binding import Binding

from engine import columns as C
from engine.rules import parse_time

from .fmt import clock_time, duration, first_line
from .live_table import Column, LiveTable, Row

COLUMNS = (
    Column("job", "job", 22),
    Column("account", "account", 12),
    Column("video", "video", 14, drop=3),
    Column("status", "status", 8),
    Column("phase", "phase", 10, drop=1),
    Column("worker", "wkr", 3, right=True),
    Column("attempts", "try", 3, right=True),
    Column("claimed", "claimed", 8, drop=2),
    Column("duration", "took", 6, right=True),
    Column("error", "error", 10, flex=True),
)

STATUS_TONES = {C.PENDING: "dim", C.CLAIMED: "busy", C.SUCCESS: "ok", C.FAILED: "bad",
                C.RETRYING: "warn", C.SKIPPED: "dim"}


def job_cells(row: list[str], now: float, tz: tzinfo) -> Row:
    status = row[C.STATUS]
    claimed = parse_time(row[C.CLAIMED_AT]) if row[C.CLAIMED_AT] else None
    if status == C.CLAIMED:
        took = duration(now - claimed) if claimed is not None else ""
    else:
        completed = parse_time(row[C.COMPLETED_AT]) if row[C.COMPLETED_AT] else None
        took = duration(completed - claimed) if claimed is not None and completed is not None \
            and completed >= claimed else ""
    attempts = row[C.ATTEMPTS] or "0"
    error = first_line(row[C.ERROR])
    return (
        row[C.JOB_ID], row[C.ACCOUNT], os.path.basename(row[C.VIDEO_PATH]),
        (status, STATUS_TONES[status]), (row[C.PHASE], "busy") if row[C.PHASE] else "",
        row[C.WORKER_ID], attempts, clock_time(row[C.CLAIMED_AT], tz), took,
        (error, "bad" if status == C.FAILED else "warn") if error else "",
    )


class JobRows:
    """Formats job rows for the table, reusing the cells of rows that did not change (the
    progress reader hands back the same row object for an unchanged line). Allocates nothing
    for an unchanged row, so a poll of 10,000 jobs stays cheap for the garbage collector too."""

    def __init__(self) -> None:
        self._cache: dict[str, list] = {}      # job_id -> [row, cells, completed_at]

    def build(self, rows: list[list[str]], now: float, tz: tzinfo
              ) -> tuple[dict[str, Row], list[float]]:
        """The table rows (job_id -> cells), and the completion times of today's successes."""
        cache = self._cache
        out: dict[str, Row] = {}
        posted: list[float] = []
        claimed = C.CLAIMED
        for row in rows:
            job_id = row[0]
            entry = cache.get(job_id)
            if entry is None or row[C.STATUS] == claimed or (
                    entry[0] is not row and entry[0] != row):
                at = parse_time(row[C.COMPLETED_AT]) if row[C.STATUS] == C.SUCCESS else None
                entry = cache[job_id] = [row, job_cells(row, now, tz), at]
            elif entry[0] is not row:
                entry[0] = row
            out[job_id] = entry[1]
            if entry[2] is not None:
                posted.append(entry[2])
        if len(cache) > len(out):
            self._cache = {k: cache[k] for k in out}
        return out, posted


class JobsPanel(LiveTable):
    title = "Jobs"
    empty_text = "no jobs today: press S to seed"
    BINDINGS = [
        Binding("enter", "select", "Detail", id="job-detail"),
        Binding("t", "app.retry_job", "Retry it", id="job-retry"),
        Binding("K", "app.skip_job", "Skip", id="job-skip"),
        Binding("F", "app.job_to_front", "Front", id="job-front"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(COLUMNS, **kwargs)
