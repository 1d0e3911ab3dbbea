"""The campaigns panel: every campaign folder with its switch, accounts, today's progress, daily
limit and whether a run is going. `enter` opens a campaign in the other panels."""
from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding

from .fmt import bar
from .live_table import Column, LiveTable, Row


@dataclass(frozen=True)
class CampaignInfo:
    name: str
    enabled: bool | None = None
    accounts: int = 0
    success: int = 0
    total: int = 0
    daily_limit: int | None = None
    running: bool = False
    supervisor_pid: int | None = None
    error: str | None = None


COLUMNS = (
    Column("name", "  campaign", 16),
    Column("enabled", "on", 3),
    Column("accounts", "acct", 4, right=True),
    Column("progress", "today", 14),
    Column("limit", "lim", 3, right=True),
    Column("state", "run", 11, flex=True),
)


def campaign_row(c: CampaignInfo, opened: bool = False) -> tuple[str, Row]:
    """`opened`: the campaign the other panels show, marked with ▸."""
    name = ("▸ " + c.name, "info") if opened else "  " + c.name
    if c.error:
        return c.name, (name, ("-", "dim"), "", "", "", (f"broken: {c.error}", "bad"))
    enabled = ("yes", "ok") if c.enabled else ("no", "warn")
    progress = f"{bar(c.success, c.total, 5)} {c.success}/{c.total}"
    if c.running:
        state = (f"running {c.supervisor_pid or '?'}", "busy")
    elif c.enabled:
        state = ("idle", "dim")
    else:
        state = ("disabled", "warn")
    done = c.total > 0 and c.success == c.total
    return c.name, (name, enabled, str(c.accounts), (progress, "ok") if done else progress,
                    str(c.daily_limit or ""), state)


class CampaignsPanel(LiveTable):
    title = "Campaigns"
    empty_text = "no campaigns in this folder"
    BINDINGS = [Binding("enter", "select", "Open", id="open-campaign")]

    def __init__(self, **kwargs) -> None:
        super().__init__(COLUMNS, **kwargs)
