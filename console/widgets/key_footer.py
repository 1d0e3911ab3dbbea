"""The footer: every key of the focused panel, screen and app, in the operator's order. When the
full labels do not fit the width, short ones are used (all keys fit in 80 columns), and the
command palette hint goes."""
from __future__ import annotations

from textual import events
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

ORDER = ("s", "x", "X", "R", "S", "r", "slash", "enter", "tab", "question_mark", "q")
SHORT = {"stop_all": "All", "reset_day": "Reset", "select": "Open", "next_panel": "Next",
         "filter": "Filter"}
DISPLAY = {"enter": "⏎", "tab": "⇥"}
PALETTE_WIDTH = 12


class KeyFooter(Footer):
    def __init__(self, **kwargs) -> None:
        super().__init__(compact=True, **kwargs)
        self._width: int | None = None

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
        if not self._bindings_ready:
            return
        items = self._items()
        width = self.app.size.width
        full = sum(len(self._display(b)) + len(b.description) + 2 for b, _, _ in items)
        narrow = full + PALETTE_WIDTH > width
        self._width = width
        for binding, enabled, tooltip in items:
            description = SHORT.get(binding.action, binding.description) if narrow \
                else binding.description
            yield FooterKey(binding.key, self._display(binding), description, binding.action,
                            disabled=not enabled, tooltip=tooltip or binding.description,
                            ).data_bind(compact=Footer.compact)
        if not narrow and self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            found = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
            if found is not None:
                _node, binding, enabled, tooltip = found
                yield FooterKey(binding.key, self.app.get_key_display(binding),
                                binding.description, binding.action,
                                classes="-command-palette", disabled=not enabled,
                                tooltip=binding.tooltip or binding.description)

    def on_resize(self, event: events.Resize) -> None:
        if self._width is not None and self.app.size.width != self._width:
            self.call_after_refresh(self.recompose)
