"""The log pane: the tail of the selected campaign's supervisor log, warnings and errors
coloured."""
from __future__ import annotations

from rich.text import Text
from textual.widgets import RichLog

MAX_LINES = 500


def styled(line: str) -> Text:
    """`YYYY-mm-dd HH:MM:SS LEVEL message`: the date is dropped, the level coloured."""
    parts = line.split(" ", 3)
    if len(parts) == 4 and len(parts[0]) == 10 and len(parts[1]) == 8:
        _, clock, level, message = parts
        style = {"ERROR": "bold red", "CRITICAL": "bold red", "WARNING": "yellow"}.get(level, "")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(clock + " ", style="dim")
        text.append(message, style=style)
        return text
    return Text(line, no_wrap=True, overflow="ellipsis")


class LogPane(RichLog):
    title = "Supervisor log"

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=MAX_LINES, wrap=False, markup=False, highlight=False,
                         auto_scroll=True, **kwargs)
        self.border_title = self.title
        self._empty = True

    def feed(self, reset: bool, lines: list[str]) -> None:
        if reset:
            self.clear()
            self._empty = True
        for line in lines:
            self.write(styled(line))
            self._empty = False
        if reset and self._empty:
            self.write(Text("no supervisor log yet", style="dim italic"))
