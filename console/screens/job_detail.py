"""Job detail: every field of one job, its full caption and error, the evidence its failed attempts
left (step, error, time and the files, with their folder), and the log lines that name it
(supervisor and worker logs, rotated ones included). Read in a thread worker, without the lock.
`t` retries the job, `K` skips it, `F` moves it to the front (the app's actions, as on the job
table); the detail is read again once the action reported."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from engine.context import PostingContext
from engine.evidence import Attempt, read_evidence
from engine.problems import InputError
from engine.store import open_store

MAX_LOG_LINES = 200
MAX_LOG_BYTES = 8 * 1024 * 1024      # per file: the rotated logs are 5 MB each


@dataclass
class JobDetail:
    job_id: str
    job: dict[str, str] | None = None
    log_lines: list[tuple[str, str]] = field(default_factory=list)   # (source, line)
    error: str | None = None
    evidence: list[Attempt] = field(default_factory=list)


def _log_files(logs_dir: Path) -> list[Path]:
    if not logs_dir.is_dir():
        return []
    return sorted(p for p in logs_dir.iterdir()
                  if p.is_file() and (p.suffix == ".log" or ".log." in p.name))


def job_log_lines(logs_dir: Path, job_id: str) -> list[tuple[str, str]]:
    """Lines naming the job, oldest first (lines start with their timestamp)."""
    found: list[tuple[str, str]] = []
    needle = job_id.encode()
    for path in _log_files(logs_dir):
        try:
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                if size > MAX_LOG_BYTES:
                    fh.seek(size - MAX_LOG_BYTES)
                data = fh.read()
        except OSError:
            continue
        if needle not in data:
            continue
        source = path.name.split(".log")[0]
        for line in data.split(b"\n"):
            if needle in line:
                found.append((source, line.decode("utf-8", "replace").rstrip("\r")))
    found.sort(key=lambda item: item[1][:19])
    return found[-MAX_LOG_LINES:]


def load_job(ctx: PostingContext, job_id: str) -> JobDetail:
    detail = JobDetail(job_id)
    try:
        detail.job = open_store(ctx).job(job_id)
    except InputError as exc:
        detail.error = str(exc)
    detail.log_lines = job_log_lines(ctx.logs_dir, job_id)
    detail.evidence = read_evidence(ctx.state_dir, job_id)
    return detail


FIELDS = (("status", "status"), ("phase", "phase"), ("account", "account"),
          ("phone", "phone_id"), ("worker", "worker_id"), ("attempts", "attempts"),
          ("max attempts", "max_attempts"), ("pass", "pass_number"),
          ("claimed at", "claimed_at"), ("completed at", "completed_at"),
          ("retry at", "retry_at"), ("error type", "error_type"),
          ("error category", "error_category"), ("run", "run_id"), ("video id", "video_id"),
          ("task", "task_id"), ("video", "video_path"))
# Shown only when set: a Geelark publishing task exists only with the geelark-task backend.
OPTIONAL_FIELDS = frozenset({"task_id"})


def render_detail(d: JobDetail):
    if d.error:
        return Text(d.error, style="bold red")
    if d.job is None:
        return Text(f"job {d.job_id} is not in today's progress file (was the day reset?)",
                    style="yellow")
    job = d.job
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, key in FIELDS:
        if key in OPTIONAL_FIELDS and not job.get(key):
            continue
        grid.add_row(label, job.get(key) or "-")
    parts = [grid, Text(""), Text("Caption", style="bold"), Text(job.get("caption") or "-")]
    parts += [Text(""), Text("Error", style="bold"),
              Text(job.get("error") or "-", style="red" if job.get("error") else "")]
    parts += [Text(""), Text(f"Evidence ({len(d.evidence)})", style="bold")]
    if not d.evidence:
        parts.append(Text("no failed attempt left evidence", style="dim"))
    for a in d.evidence:
        parts += render_attempt(a)
    parts += [Text(""), Text(f"Log lines ({len(d.log_lines)})", style="bold")]
    if not d.log_lines:
        parts.append(Text("no log line names this job", style="dim"))
    for source, line in d.log_lines:
        text = Text(no_wrap=False)
        text.append(f"{source:<12} ", style="cyan")
        text.append(line, style="red" if " ERROR " in line else
                    "yellow" if " WARNING " in line else "")
        parts.append(text)
    return Group(*parts)


def render_attempt(a: Attempt) -> list[Text]:
    """One attempt's evidence: what failed where and when, then its folder (a full path, for scp)
    and the files in it."""
    head = Text(no_wrap=False)
    head.append(f"attempt {a.attempt}", style="bold")
    head.append("  step ", style="dim")
    head.append(a.step or "-", style="cyan")
    head.append("  at ", style="dim")
    head.append(a.at or "-")
    lines = [head]
    if a.error:
        lines.append(Text(f"  {a.error}", style="red", overflow="fold"))
    lines.append(Text(f"  {a.folder}{os.sep}", overflow="fold"))
    lines.append(Text("  " + ("  ".join(a.files) if a.files else "(no files)"),
                      style="green" if a.files else "dim"))
    return lines


class JobDetailScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    JobDetailScreen { align: center middle; }
    JobDetailScreen > VerticalScroll {
        width: 96%; height: 92%; border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape,q", "close", "Close", id="detail-close"),
        Binding("t", "retry_job", "Retry it", id="detail-retry"),
        Binding("K", "skip_job", "Skip", id="detail-skip"),
        Binding("F", "to_front", "Front", id="detail-front"),
    ]

    def __init__(self, ctx: PostingContext, job_id: str, campaign: str | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.job_id = job_id
        self.campaign = campaign or ctx.name
        self.detail: JobDetail | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = f"Job {self.job_id}"
            scroll.border_subtitle = "t retry · K skip · F front · esc close"
            yield Static("loading…", id="detail-body")

    def on_mount(self) -> None:
        self.load()

    @work(thread=True, exit_on_error=False)
    def load(self) -> None:
        detail = load_job(self.ctx, self.job_id)
        self.app.call_from_thread(self.show, detail)

    def show(self, detail: JobDetail) -> None:
        self.detail = detail
        self.query_one("#detail-body", Static).update(render_detail(detail))

    def _reload(self) -> None:
        if self.is_attached:
            self.load()

    def action_retry_job(self) -> None:
        self.app.retry_job(self.campaign, self.job_id, done=self._reload)

    def action_skip_job(self) -> None:
        self.app.skip_job(self.campaign, self.job_id, done=self._reload)

    def action_to_front(self) -> None:
        self.app.job_to_front(self.campaign, self.job_id, done=self._reload)

    def action_close(self) -> None:
        self.dismiss(None)
