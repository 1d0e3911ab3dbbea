"""On a small terminal one panel shows at a time; this line names them and marks the one shown.
`tab` moves to the next; a click on a name jumps to it."""
from __future__ import annotations

from textual import events
from textual.content import Content
from textual.message import Message
from textual.widget import Widget


class PanelTabs(Widget):
    DEFAULT_CSS = """
    PanelTabs { height: 1; background: $panel; }
    """

    class Picked(Message):
        def __init__(self, index: int) -> None:
            super().__init__()
            self.index = index

    def __init__(self, names: list[str], **kwargs) -> None:
        super().__init__(**kwargs)
        self.names = names
        self.active = 0
        self._spans: list[tuple[int, int]] = []

    def set_active(self, index: int) -> None:
        if index != self.active:
            self.active = index
            self.refresh()

    def render(self) -> Content:
        parts: list = []
        self._spans = []
        x = 0
        for i, name in enumerate(self.names):
            label = f" {i + 1} {name} "
            style = ("bold $block-cursor-foreground on $block-cursor-background"
                     if i == self.active else "dim")
            parts += [(label, style), " "]
            self._spans.append((x, x + len(label)))
            x += len(label) + 1
        return Content.assemble(*parts)

    def on_click(self, event: events.Click) -> None:
        for i, (a, b) in enumerate(self._spans):
            if a <= event.x < b:
                self.post_message(self.Picked(i))

