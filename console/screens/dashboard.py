"""The dashboard: a header line, the four live panels and the supervisor log, the filter bar and
the footer. At 100x36 and up every panel shows at once; on a smaller terminal one panel shows
at a time, named on a tab line, and `tab` moves between them."""
from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.events import Resize
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input

from ..widgets.accounts import AccountsPanel
from ..widgets.campaigns import CampaignsPanel
from ..widgets.feed import Frame
from ..widgets.jobs import JobsPanel
from ..widgets.key_footer import KeyFooter
from ..widgets.live_table import LiveTable
from ..widgets.log_pane import LogPane
from ..widgets.panel_tabs import PanelTabs
from ..widgets.status_line import StatusLine
from ..widgets.workers import WorkersPanel

# (id, tab name) in the order `tab` visits them
PANELS = (("campaigns", "Campaigns"), ("workers", "Phones"), ("accounts", "Accounts"),
          ("jobs", "Jobs"), ("log", "Log"))
NARROW_WIDTH, NARROW_HEIGHT = 100, 36


class FilterBar(Input):
    """`/` opens it for the focused panel; typing filters at once, enter keeps the filter,
    escape clears it."""
    BINDINGS = [Binding("escape", "clear", "Clear filter", id="filter-clear")]

    def action_clear(self) -> None:
        self.value = ""
        self.screen.close_filter(keep=False)


class DashboardScreen(Screen):
    AUTO_FOCUS = ""   # no auto focus: the panel to focus is chosen on mount
    BINDINGS = [
        Binding("tab", "next_panel", "Next panel", id="next-panel"),
        Binding("shift+tab", "previous_panel", "Previous panel", show=False,
                id="previous-panel"),
    ]

    def __init__(self, focus: str = "campaigns", blink: bool = True) -> None:
        super().__init__()
        self.active = [p for p, _ in PANELS].index(focus)
        self.blink = blink
        self.filter_target: LiveTable | None = None

    def compose(self) -> ComposeResult:
        yield StatusLine(id="status")
        yield PanelTabs([name for _, name in PANELS], id="tabs")
        with Container(id="panels"):
            yield CampaignsPanel(id="campaigns", classes="panel")
            yield LogPane(id="log", classes="panel")
            yield WorkersPanel(id="workers", classes="panel")
            yield JobsPanel(id="jobs", classes="panel")
            yield AccountsPanel(id="accounts", classes="panel")
        bar = FilterBar(placeholder="filter: type to narrow the panel, enter keeps, esc clears",
                        id="filter")
        bar.cursor_blink = self.blink
        yield bar
        yield KeyFooter()

    def on_mount(self) -> None:
        self._fit(self.app.size.width, self.app.size.height)
        self.activate(self.active)

    # --- panels ------------------------------------------------------------------------------------
    def panel(self, panel_id: str) -> Widget:
        return self.query_one(f"#{panel_id}")

    @property
    def campaigns(self) -> CampaignsPanel:
        return self.query_one(CampaignsPanel)

    @property
    def jobs(self) -> JobsPanel:
        return self.query_one(JobsPanel)

    @property
    def active_panel(self) -> Widget:
        return self.panel(PANELS[self.active][0])

    def activate(self, index: int) -> None:
        self.active = index % len(PANELS)
        for i, (panel_id, _) in enumerate(PANELS):
            self.panel(panel_id).set_class(i == self.active, "-active")
        self.query_one(PanelTabs).set_active(self.active)
        self.active_panel.focus()

    def action_next_panel(self) -> None:
        self.activate(self.active + 1)

    def action_previous_panel(self) -> None:
        self.activate(self.active - 1)

    @on(PanelTabs.Picked)
    def _picked(self, event: PanelTabs.Picked) -> None:
        self.activate(event.index)

    def on_descendant_focus(self, event) -> None:
        ids = [p for p, _ in PANELS]
        widget = event.widget
        if widget.id in ids and ids.index(widget.id) != self.active:
            self.active = ids.index(widget.id)
            for i, (panel_id, _) in enumerate(PANELS):
                self.panel(panel_id).set_class(i == self.active, "-active")
            self.query_one(PanelTabs).set_active(self.active)

    def on_resize(self, event: Resize) -> None:
        self._fit(event.size.width, event.size.height)

    def _fit(self, width: int, height: int) -> None:
        self.set_class(width < NARROW_WIDTH or height < NARROW_HEIGHT, "-narrow")

    # --- drawing a poll ----------------------------------------------------------------------------
    def apply(self, frame: Frame) -> None:
        """Hand a poll's rows to the panels."""
        self.query_one(StatusLine).show(frame.header)
        self.campaigns.sync(frame.campaigns)
        if frame.workers is not None:
            self.query_one(WorkersPanel).sync(frame.workers)
        if frame.accounts is not None:
            self.query_one(AccountsPanel).sync(frame.accounts)
        if frame.jobs is not None:
            self.jobs.sync(frame.jobs)
        if frame.log_reset or frame.log_lines:
            self.query_one(LogPane).feed(frame.log_reset, frame.log_lines)

    def clear_campaign(self) -> None:
        """A different campaign was opened: its rows replace the old ones on the next poll."""
        for panel in (WorkersPanel, AccountsPanel, JobsPanel):
            self.query_one(panel).sync({})

    # --- the filter bar ----------------------------------------------------------------------------
    def open_filter(self) -> bool:
        target = self.active_panel
        if not isinstance(target, LiveTable):
            return False
        self.filter_target = target
        bar = self.query_one(FilterBar)
        bar.value = target.filter_text
        bar.placeholder = f"filter {target.title.lower()}: enter keeps, esc clears"
        bar.add_class("-open")
        bar.focus()
        return True

    def close_filter(self, keep: bool) -> None:
        bar = self.query_one(FilterBar)
        target = self.filter_target
        if target is not None and not keep:
            target.set_filter("")
        bar.remove_class("-open")
        self.filter_target = None
        if target is not None:
            target.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self.filter_target is not None:
            self.filter_target.set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.close_filter(keep=True)

    def filter_jobs(self, text: str) -> None:
        jobs = self.jobs
        jobs.set_filter(text)
        self.activate([p for p, _ in PANELS].index("jobs"))
        jobs.move_cursor(0)
