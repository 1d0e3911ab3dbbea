"""The header line: the campaign, whether it runs, whether its posting window is closed (and
when it opens, on the campaign's clock), how many jobs are in each status, posts per hour
with a sparkline of the last hours, and the time on the campaign's clock with its zone (every
time the console shows is in that zone). Shortens itself on a narrow terminal."""
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
SHORT_BELOW = 110     # columns: a narrower line is always the short one


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
        """The whole line when it fits, else shorter ones: the zone's abbreviation for its name,
        then no clock, then the short line (short labels, no "postdeck" or pid), then fewer hours
        of sparkline to keep the zone named. A closed posting window makes the line longer, and
        the counts must not be cut for it."""
        width = self.size.width
        variants = [(False, 2), (False, 1), (False, 0)] if width >= SHORT_BELOW else []
        variants += [(True, 1), (True, 0), (True, -1)]
        for short, zone in variants:
            line = self._line(short, zone)
            if line.cell_length <= width:
                return line
        return self._line(short=True, zone=None)

    def _line(self, short: bool, zone: int | None = 2) -> Content:
        """`zone`: 2 the clock and the zone's name, 1 the clock and its abbreviation, 0 the
        abbreviation, -1 the abbreviation in place of the sparkline's oldest hours, None none."""
        h = self.header
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
        if h.running and h.paused_since:
            since = "" if short else f" since {h.paused_since}"
            parts.append((f"❚❚ PAUSED{since}", "bold $text-warning"))
        elif h.running:
            pid = f" {h.supervisor_pid}" if h.supervisor_pid and not short else ""
            parts.append((f"● RUNNING{pid}", "bold $text-success"))
        elif not h.enabled:
            parts.append(("○ disabled", "$text-warning"))
        else:
            parts.append(("○ idle", muted))
        if h.window_opens:
            # Why a running campaign claims nothing: outside its posting window (campaign.json)
            text = "window opens" if short else "window closed · opens"
            parts += [(" │ ", muted), (f"{text} {h.window_opens}", "$text-warning")]
        parts.append((" │ ", muted))
        for status in C.STATUSES:
            n = h.counts.get(status, 0)
            label = LABELS[status][1 if short else 0]
            parts += [(f"{label} {n}", TONES[status] if n else muted), " "]
        zone = zone if h.zone else None
        spark = h.spark
        if zone == -1:
            spark = spark[min(len(spark) - 1, len(h.zone_short) + 1):]
        parts += [("│ ", muted), (f"{h.posts_last_hour}/h ", "bold"),
                  (sparkline(spark), "$text-accent")]
        if zone is not None:
            name = h.zone if zone == 2 else h.zone_short
            text = f"{h.clock} {name}" if zone >= 1 else name
            parts += [(" │ " if zone >= 1 else " ", muted), (text, muted)]
        return Content.assemble(*parts)
