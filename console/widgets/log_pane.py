"""The log pane: the tail of the selected campaign's supervisor log, or of one of its workers'
logs (`w` goes round them), warnings and errors coloured.

It is a LiveTable of two columns, the clock and the message, one row a line: `/` filters it like
any panel, the cursor scrolls it, and while the cursor is on the last line it follows the tail.
The lines come from the Feed with their timestamps already in the campaign's time zone."""
from __future__ import annotations

import re

from textual.binding import Binding

from .live_table import Column, LiveTable, Row

MAX_LINES = 500
SUPERVISOR = "supervisor.log"
LEVEL_TONES = {"ERROR": "bad", "CRITICAL": "bad", "WARNING": "warn"}
COLUMNS = (Column("time", "time", 8), Column("message", "message", 10, flex=True))
_WORKER = re.compile(r"^worker-(\d+)\.log$")


def cells_of(line: str) -> Row:
    """`YYYY-mm-dd HH:MM:SS LEVEL message`: the date is dropped, the level colours the message."""
    parts = line.split(" ", 3)
    if len(parts) == 4 and len(parts[0]) == 10 and len(parts[1]) == 8:
        _, clock, level, message = parts
        tone = LEVEL_TONES.get(level)
        return (clock, "dim"), (message, tone) if tone else message
    return "", line


def source_title(source: str) -> str:
    """The pane's title for a log file: "Supervisor log", "Worker 0 log"."""
    if source == SUPERVISOR:
        return "Supervisor log"
    m = _WORKER.match(source)
    return f"Worker {m.group(1)} log" if m else source


class LogPane(LiveTable):
    title = "Supervisor log"
    sortable = False            # a log reads in its own order
    filter_keys = False         # the keys are line numbers: a filter looks at the text only
    BINDINGS = [Binding("w", "log_source", "Source", id="log-source")]

    def __init__(self, **kwargs) -> None:
        super().__init__(COLUMNS, **kwargs)
        self.source = SUPERVISOR
        self._next = 0
        self._set_empty()

    # --- the lines ---------------------------------------------------------------------------------
    def feed(self, reset: bool, lines: list[str]) -> None:
        """A poll's lines: `reset` starts the pane over (another file, or it was rotated)."""
        feed = getattr(self.app, "feed", None)
        shown = getattr(feed, "log_shown", None)
        if shown is not None and shown != self.source:
            if reset and shown == getattr(feed, "log_source", None):
                self._show_source(shown)        # the feed went back to the supervisor's log
            else:
                return                          # read before the operator switched: stale
        follow = not self._visible or self.cursor >= len(self._visible) - 1
        with self.batch_edits():
            if reset:
                self.sync({})
                self._set_empty()
            for line in lines:
                self.add_row(str(self._next), cells_of(line))
                self._next += 1
            extra = self.row_count - MAX_LINES
            if extra > 0:
                for key in list(self._rows)[:extra]:
                    self.remove_row(key)
        if follow and self._visible:
            self.move_cursor(len(self._visible) - 1, scroll=False)
            self.call_after_refresh(self.scroll_to_cursor)

    def _set_empty(self, reading: bool = False) -> None:
        self.empty_text = f"reading {self.source}…" if reading else (
            "no supervisor log yet" if self.source == SUPERVISOR else f"no {self.source} yet")

    def _show_source(self, source: str) -> None:
        self.source = source
        self.title = self.border_title = source_title(source)

    # --- the source --------------------------------------------------------------------------------
    def action_log_source(self) -> None:
        """The next log: the supervisor's, then each worker's that exists, then round again."""
        feed = getattr(self.app, "feed", None)
        if feed is None:
            return
        sources = feed.log_sources()
        following = sources[(sources.index(self.source) + 1) % len(sources)] \
            if self.source in sources else SUPERVISOR
        if following == self.source:
            self.app.notify("no worker log yet: only the supervisor's", severity="warning")
            return
        self._show_source(following)
        feed.log_source = following
        self.sync({})
        self._set_empty(reading=True)
        self.refresh()
        refresh = getattr(self.app, "request_refresh", None)
        if refresh is not None:
            refresh()
