"""The start form: how many workers, and optionally which phone each one drives. The fields come
filled in; `enter` starts the run with the values shown, `escape` cancels."""
from __future__ import annotations

from dataclasses import dataclass

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from engine.context import PostingContext
from engine.preflight import binding_problem


@dataclass(frozen=True)
class StartRequest:
    workers: int
    phones: list[str] | None


def parse_request(workers_text: str, phones_text: str) -> StartRequest:
    """Raises ValueError with the operator's message."""
    try:
        workers = int(workers_text.strip())
    except ValueError:
        raise ValueError("workers must be a whole number, like 2") from None
    if workers < 1:
        raise ValueError("workers must be at least 1")
    phones = [p.strip() for p in phones_text.split(",")] if phones_text.strip() else None
    problem = binding_problem(workers, phones)
    if problem:
        raise ValueError(f"{problem}, or leave phones empty")
    return StartRequest(workers, phones)


class StartForm(ModalScreen["StartRequest | None"]):
    DEFAULT_CSS = """
    StartForm { align: center middle; }
    StartForm > Vertical {
        width: 72; max-width: 96%; height: auto; border: thick $accent; background: $surface;
        padding: 0 1;
    }
    StartForm .title { text-style: bold; margin-bottom: 1; }
    StartForm Input { margin-bottom: 1; background: $boost; }
    StartForm #available { color: $text-muted; }
    StartForm #form-error { color: $text-error; text-style: bold; }
    StartForm .keys { color: $text-muted; margin-top: 1; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel", id="start-cancel")]

    def __init__(self, ctx: PostingContext, workers: int, blink: bool = True) -> None:
        super().__init__()
        self.ctx = ctx
        self.default_workers = workers
        self.blink = blink

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"Start a run of {self.ctx.name} ({self.ctx.settings.backend} phones)",
                         classes="title", markup=False)
            yield Label("workers")
            workers = Input(str(self.default_workers), id="workers", compact=True)
            workers.cursor_blink = self.blink
            yield workers
            yield Label("phones, one per worker, comma-separated (empty: any free phone)")
            phones = Input("", id="phones", placeholder="any free phone", compact=True)
            phones.cursor_blink = self.blink
            yield phones
            yield Static("phones the backend can drive: looking…", id="available", markup=False)
            yield Static("", id="form-error", markup=False)
            yield Static("enter: start    tab: next field    esc: cancel", classes="keys")

    def on_mount(self) -> None:
        self.query_one("#workers", Input).focus()
        self.find_phones()

    @work(thread=True, exit_on_error=False)
    def find_phones(self) -> None:
        try:
            from engine import runs
            phones = runs.available_phones(self.ctx)
            text = ", ".join(phones) if phones else "none found"
        except Exception as exc:   # a backend that cannot list phones must not stop the form
            text = f"could not list them ({exc})"
        self.app.call_from_thread(self._show_available, f"phones the backend can drive: {text}")

    def _show_available(self, text: str) -> None:
        if self.is_attached:
            self.query_one("#available", Static).update(text)

    @on(Input.Submitted)
    def submit(self) -> None:
        try:
            request = parse_request(self.query_one("#workers", Input).value,
                                    self.query_one("#phones", Input).value)
        except ValueError as exc:
            self.query_one("#form-error", Static).update(str(exc))
            return
        self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)
