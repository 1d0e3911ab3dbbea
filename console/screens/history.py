"""History: the campaign's last 30 days from its archives and today's file (engine/history.py):
posts per day as stacked bars (posted, failed, unknown outcome), the success rate, failures by
error type and each account's totals. Read in a thread worker; the engine keeps each file's
tallies, so opening the screen again reads only what changed (today's file). `escape` or `q`
closes it."""
from __future__ import annotations

import time
from datetime import date
from typing import Callable

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import HorizontalGroup, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.context import PostingContext
from engine.history import DEFAULT_DAYS, history

from ..widgets.fmt import sparkline

POSTED, FAILED, UNKNOWN = "green", "red", "yellow"
STYLES = (POSTED, FAILED, UNKNOWN)
LABEL_WIDTH = 10            # "Sun 06-15 "
WIDTHS = (7, 7, 8)          # the count columns right of the bars: " posted failed unknown"
COUNTS_WIDTH = sum(WIDTHS)
MIN_BAR = 10
WIDE = 110                  # terminal columns from which the side stands beside the days


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1%}"


def day_label(iso: str) -> str:
    """Sun 06-15: the weekday matters to an operator (weekends post differently), the year not."""
    return date.fromisoformat(iso).strftime("%a %m-%d")


class DayBars:
    """One line per day: a bar of posted, failed and unknown outcomes, scaled to the busiest day
    and to the width it is drawn at (80 columns and 200 both use the whole line), then the three
    counts. A day with anything in it gets at least one cell for each of its parts."""

    def __init__(self, days: list[dict]):
        self.days = days

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = max(MIN_BAR, options.max_width - LABEL_WIDTH - COUNTS_WIDTH)
        top = max((d["success"] + d["failed"] + d["unknown"] for d in self.days), default=0)
        head = Text(no_wrap=True, overflow="crop")
        head.append(f"{'Posts per day':<{LABEL_WIDTH + width}}", style="bold")
        for name, style, w in zip(("posted", "failed", "unknown"), STYLES, WIDTHS):
            head.append(f"{name:>{w}}", style=style)
        yield head
        for d in self.days:
            yield self.line(d, width, top)

    @staticmethod
    def cells(counts: list[int], width: int, top: int) -> list[int]:
        """Each part's cells: its share of the busiest day, rounded, never 0 for a part that is
        not 0, the whole never wider than `width`."""
        if top <= 0:
            return [0] * len(counts)
        out = [max(1, round(width * n / top)) if n else 0 for n in counts]
        while sum(out) > width:             # the minimum cells pushed a full day over
            i = out.index(max(out))
            out[i] -= 1
        return out

    def line(self, d: dict, width: int, top: int) -> Text:
        counts = [d["success"], d["failed"], d["unknown"]]
        text = Text(no_wrap=True, overflow="crop")
        text.append(f"{day_label(d['date']):<{LABEL_WIDTH}}", style="dim" if not any(counts)
                    else "")
        drawn = 0
        for n, style in zip(self.cells(counts, width, top), STYLES):
            text.append("█" * n, style=style)
            drawn += n
        text.append(" " * (width - drawn))
        for n, style, w in zip(counts, STYLES, WIDTHS):
            text.append(f"{n:>{w}}" if n else f"{'·':>{w}}", style=style if n else "dim")
        return text


def render_summary(h: dict, tz: str) -> Text:
    days = h["days"]
    posted = sum(d["success"] for d in days)
    failed = sum(d["failed"] for d in days)
    unknown = sum(d["unknown"] for d in days)
    text = Text(no_wrap=False)
    text.append(f"{posted}", style=f"bold {POSTED}")
    text.append(" posted  ")
    text.append(f"{failed}", style=f"bold {FAILED}")
    text.append(" failed  ")
    text.append(f"{unknown}", style=f"bold {UNKNOWN}")
    text.append(" unknown outcome  ·  success rate ")
    text.append(percent(h["success_rate"]), style="bold")
    text.append("\n")
    text.append(f"{days[0]['date']} to {days[-1]['date']} ({tz})  ", style="dim")
    text.append(sparkline([d["success"] for d in days]), style=POSTED)
    return text


def render_errors(errors: dict[str, int]) -> Table | Text:
    if not errors:
        return Text("no failure in these days", style="dim")
    total = sum(errors.values())
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column(justify="right")
    grid.add_column(justify="right", style="dim")
    for error_type, n in errors.items():
        grid.add_row(Text(error_type, style=UNKNOWN if error_type == "outcome_unknown" else ""),
                     str(n), f"{n / total:.0%}")
    return grid


def render_accounts(accounts: list[dict]) -> Table | Text:
    if not accounts:
        return Text("no account posted in these days", style="dim")
    grid = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="dim")
    grid.add_column("account", no_wrap=True, overflow="ellipsis")
    grid.add_column("posted", justify="right", style=POSTED)
    grid.add_column("failed", justify="right")
    grid.add_column("success", justify="right", style="dim")
    for a in accounts:
        outcomes = a["success"] + a["failed"]
        grid.add_row(a["account"], str(a["success"]),
                     Text(str(a["failed"]), style=FAILED if a["failed"] else "dim"),
                     percent(a["success"] / outcomes if outcomes else None))
    return grid


def render_head(h: dict, tz: str):
    """The warnings (damaged archives), then the totals and a sparkline of the posts."""
    parts: list = [Text(f"⚠ {w}", style="yellow", overflow="fold") for w in h["warnings"]]
    if parts:
        parts.append(Text(""))
    return Group(*parts, render_summary(h, tz), Text(""))


def render_side(h: dict):
    errors = h["errors_by_type"]
    return Group(Text(f"Failures by error type ({sum(errors.values())})", style="bold"),
                 render_errors(errors), Text(""),
                 Text(f"Accounts ({len(h['accounts'])})", style="bold"),
                 render_accounts(h["accounts"]))


class HistoryScreen(ModalScreen[None]):
    """The history of one campaign. From WIDE columns on, the days and the side (error types,
    accounts) stand side by side, so 120x40 shows a month at once; below, one under the other,
    and the screen scrolls."""
    DEFAULT_CSS = """
    HistoryScreen { align: center middle; }
    HistoryScreen > VerticalScroll {
        width: 96%; height: 92%; border: round $accent; background: $surface; padding: 0 1;
    }
    HistoryScreen #history-days { width: 1fr; }
    HistoryScreen #history-side { width: 44; padding-left: 2; }
    HistoryScreen.-narrow #history-columns { layout: vertical; }
    HistoryScreen.-narrow #history-side { width: 1fr; padding-left: 0; margin-top: 1; }
    """
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (WIDE, "-wide")]
    BINDINGS = [Binding("escape,q", "close", "Close", id="history-close")]

    def __init__(self, ctx: PostingContext, clock: Callable[[], float] = time.time,
                 days: int = DEFAULT_DAYS) -> None:
        super().__init__()
        self.ctx = ctx
        self.clock = clock
        self.days = days
        self.data: dict | None = None
        self.error: str | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"History of {self.ctx.name}: last {self.days} days"
            scroll.border_subtitle = "esc: close"
            yield Static("reading the archives…", id="history-head")
            with HorizontalGroup(id="history-columns"):
                yield Static("", id="history-days")
                yield Static("", id="history-side")

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exit_on_error=False)
    def load(self) -> None:
        try:
            data, error = history(self.ctx, now=self.clock(), days=self.days), None
        except Exception as exc:  # the console must outlive any bad read; it says why
            data, error = None, f"reading the history failed: {type(exc).__name__}: {exc}"
        try:
            self.app.call_from_thread(self.show, data, error)
        except RuntimeError:
            pass    # the app is closing

    def show(self, data: dict | None, error: str | None) -> None:
        self.data, self.error = data, error
        head = self.query_one("#history-head", Static)
        if data is None:
            head.update(Text(error or "", style="bold red"))
            return
        head.update(render_head(data, self.ctx.settings.timezone))
        self.query_one("#history-days", Static).update(DayBars(data["days"]))
        self.query_one("#history-side", Static).update(render_side(data))

    def action_close(self) -> None:
        self.dismiss(None)
