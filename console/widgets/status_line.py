"""The header line: the campaign, whether it runs, how many jobs are in each status, and posts
per hour with a sparkline of the last hours. Shortens itself on a narrow terminal."""
from __future__ import annotations

from textual.content import Content
from textual.widget import Widget

from engine import columns as C

from .feed import Header
from .fmt import sparkline

LABELS = {C.PENDING: ("pending", "pend"), C.CLAIMED: ("claimed", "run"),
          C.SUCCESS: ("success", "ok"), C.FAILED: ("failed", "fail"),
          C.RETRYING: ("retrying", "retry"), C.SKIPPED: ("skipped", "skip")}
TONES = {C.PENDING: "", C.CLAIMED: "bold $text-accent", C.SUCCESS: "$text-success",
         C.FAILED: "$text-error", C.RETRYING: "$text-warning", C.SKIPPED: "dim"}


class StatusLine(Widget):
    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; color: $foreground; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.header = Header(loading=True)

    def show(self, header: Header) -> None:
        if header != self.header:
            self.header = header
            self.refresh()

    def render(self) -> Content:
        h = self.header
        short = self.size.width < 110
        muted = "dim"
        parts: list = [(" postdeck ", "bold")] if not short or h.campaign is None else [" "]
        if h.loading:
            parts.append(("reading the campaigns…", muted))
            return Content.assemble(*parts)
        if h.campaign is None:
            parts.append(("no campaign selected", muted))
            return Content.assemble(*parts)
        parts += [(h.campaign, "bold $text-primary"), " "]
        if h.error:
            parts.append((f"✖ {h.error}", "$text-error"))
            return Content.assemble(*parts)
        if h.running:
            pid = f" {h.supervisor_pid}" if h.supervisor_pid and not short else ""
            parts.append((f"● RUNNING{pid}", "bold $text-success"))
        elif not h.enabled:
            parts.append(("○ disabled", "$text-warning"))
        else:
            parts.append(("○ idle", muted))
        parts.append((" │ ", muted))
        for status in C.STATUSES:
            n = h.counts.get(status, 0)
            label = LABELS[status][1 if short else 0]
            parts += [(f"{label} {n}", TONES[status] if n else muted), " "]
        parts += [("│ ", muted), (f"{h.posts_last_hour}/h ", "bold"),
                  (sparkline(h.spark), "$text-accent")]
        return Content.assemble(*parts)
