"""The footer: every key of the focused panel, screen and app, in the operator's order. When the
full labels do not fit the width, short ones are used and the command palette hint goes; when
even those do not fit (80 columns), the keys an operator needs least leave the footer first
(DROP_FIRST; `?` still lists every key).

Only public Textual API: the footer is Textual's `Footer` (its look, and its subscription to the
screen's bindings), and each key is a `FooterItem` of this module, drawn as Textual draws the keys
of a compact footer, because the widget Textual uses for them is not public."""
from __future__ import annotations

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

ORDER = ("s", "x", "X", "p", "R", "S", "r", "slash", "enter", "t", "K", "F", "d", "o", "w", "tab",
         "question_mark", "q")
SHORT = {"stop_all": "All", "reset_day": "Reset", "select": "Open", "next_panel": "Next",
         "filter": "Filter"}
DISPLAY = {"enter": "⏎", "tab": "⇥"}
PALETTE_WIDTH = 12
# Left out, in this order, when the short labels still do not fit: tab is named by the panel tabs
# a narrow screen shows, seeding happens with every start, and the filter is in the help.
DROP_FIRST = ("tab", "S", "slash", "o", "w", "R", "F", "r")


class FooterItem(Widget):
    """One key and what it does; a click presses the key."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"footer-item--key", "footer-item--description"}
    DEFAULT_CSS = """
    FooterItem {
        width: auto;
        height: 1;
        margin-right: 1;
        text-wrap: nowrap;
        background: $footer-item-background;
        .footer-item--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .footer-item--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        &:hover {
            pointer: pointer;
            color: $footer-key-foreground;
            background: $block-hover-background;
        }
        &.-disabled { text-style: dim; }
        &.-command-palette { dock: right; border-left: vkey $foreground 20%; }
    }
    """

    def __init__(self, key: str, key_display: str, description: str, *, enabled: bool = True,
                 tooltip: str = "", classes: str = "") -> None:
        super().__init__(classes=classes if enabled else f"{classes} -disabled")
        self.key = key
        self.key_display = key_display
        self.description = description
        self.action_enabled = enabled
        self.set_reactive(Widget.shrink, False)     # a key is shown whole or not at all
        if tooltip:
            self.tooltip = tooltip

    def render(self) -> Text:
        parts = [(self.key_display, self.get_component_rich_style("footer-item--key"))]
        if self.description:
            parts.append((" " + self.description,
                          self.get_component_rich_style("footer-item--description")))
        text = Text.assemble(*parts)
        text.stylize_before(self.rich_style)
        return text

    def on_mouse_down(self) -> None:
        if self.action_enabled:
            self.app.simulate_key(self.key)
        else:
            self.app.bell()


class KeyFooter(Footer):
    def __init__(self, **kwargs) -> None:
        super().__init__(compact=True, **kwargs)
        self._width: int | None = None
        self._bindings_known = False

    def bindings_changed(self, screen: Screen) -> None:
        # Until the screen first says its bindings changed, they are not all there yet: the
        # footer stays empty rather than show a few keys for a moment.
        self._bindings_known = True
        super().bindings_changed(screen)

    def _items(self) -> list:
        seen: set[str] = set()
        items = []
        for _node, binding, enabled, tooltip in self.screen.active_bindings.values():
            if binding.show and binding.action not in seen:
                seen.add(binding.action)
                items.append((binding, enabled, tooltip))
        items.sort(key=lambda item: ORDER.index(item[0].key) if item[0].key in ORDER
                   else len(ORDER))
        return items

    def _display(self, binding) -> str:
        return DISPLAY.get(binding.key) or self.app.get_key_display(binding)

    def compose(self):
        if not self._bindings_known:
            return
        items = self._items()
        width = self.app.size.width
        full = self._length(items, short=False)
        narrow = full + PALETTE_WIDTH > width
        # Short labels keep the palette hint when they make room for it; else keys go first.
        palette = not narrow or self._length(items, short=True) + PALETTE_WIDTH <= width
        self._width = width
        if not palette:
            items = self._fit(items, width)
        for binding, enabled, tooltip in items:
            description = SHORT.get(binding.action, binding.description) if narrow \
                else binding.description
            yield FooterItem(binding.key, self._display(binding), description, enabled=enabled,
                             tooltip=tooltip or binding.description)
        if palette and self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            found = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
            if found is not None:
                _node, binding, enabled, tooltip = found
                yield FooterItem(binding.key, self.app.get_key_display(binding),
                                 binding.description, enabled=enabled,
                                 tooltip=binding.tooltip or binding.description,
                                 classes="-command-palette")

    def _length(self, items: list, short: bool) -> int:
        return sum(len(self._display(b)) + 2 + len(SHORT.get(b.action, b.description) if short
                                                    else b.description) for b, _, _ in items)

    def _fit(self, items: list, width: int) -> list:
        for key in DROP_FIRST:
            if self._length(items, short=True) <= width:
                break
            items = [item for item in items if item[0].key != key]
        return items

    def on_resize(self, event: events.Resize) -> None:
        if self._width is not None and self.app.size.width != self._width:
            self.call_after_refresh(self.recompose)
