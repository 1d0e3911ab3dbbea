"""ConfirmModal: asks before a destructive action. `y` / `enter` confirm, `n` / `escape` cancel."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static


class ConfirmModal(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmModal { align: center middle; }
    ConfirmModal > Vertical {
        width: 64; max-width: 95%; height: auto; max-height: 90%;
        border: thick $warning; background: $surface; padding: 0 1;
    }
    ConfirmModal .title { text-style: bold; color: $text-warning; margin-bottom: 1; }
    ConfirmModal .body { margin-bottom: 1; }
    ConfirmModal .keys { color: $text-muted; }
    """

    BINDINGS = [
        Binding("y,enter", "confirm", "Confirm", id="confirm-yes"),
        Binding("n,escape", "cancel", "Cancel", id="confirm-no"),
    ]

    def __init__(self, title: str, body: str, confirm_label: str = "confirm") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, classes="title", markup=False)
            yield Static(self.body, classes="body", markup=False)
            yield Static(f"y / enter: {self.confirm_label}    n / esc: cancel", classes="keys",
                         markup=False)

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
