"""The postdeck console: one dashboard of live panels, every action one key away.

Polling: a timer fires, a thread worker reads the engine (`Feed.poll`, no locks taken), the main
thread hands the rows to the panels, and only then is the next poll scheduled with `set_timer` —
polls never overlap, however slow the disk. Actions (start, stop, seed, retry, reset, and
those on one job or one account) run in thread workers and report with a notification; each one
takes its campaign (or job, or account) when the key is pressed, never from where the cursor is
later. Quitting the console leaves a run going: the
supervisor runs detached, in its own session.
"""
from __future__ import annotations

import gc
import time
from datetime import datetime
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.timer import Timer

from engine import columns as C
from engine import lifecycle, operations, rotation
from engine.context import PostingContext
from engine.problems import InputError, Refused
from engine.runstate import process_alive, quiet_campaign
from engine.store import open_store

from .screens.confirm import ConfirmModal
from .screens.dashboard import PANELS, DashboardScreen
from .screens.help import HelpScreen
from .screens.history import HistoryScreen
from .screens.job_detail import JobDetailScreen
from .screens.start_form import StartForm, StartRequest
from .widgets.accounts import AccountsPanel
from .widgets.campaigns import CampaignsPanel
from .widgets.feed import Feed, Frame
from .widgets.jobs import JobsPanel
from .widgets.live_table import LiveTable
from .widgets.workers import WorkersPanel, phone_of_key
from .words import CONSOLE_WORDS

ERROR_TIMEOUT = 12.0
DEFAULT_MAX_WORKERS = 4

# What a retry of a job whose failure is not retryable risks (its confirmation says it).
RISK_UNKNOWN_OUTCOME = "an unknown outcome may already be public: a retry may post it twice"
RISK_ACCOUNT_OR_CONTENT = "an account or content error will likely fail again"
DISABLE_WHY = "taken out in the console"

# (action, title in the command palette, help); the keys are in PostdeckApp.BINDINGS
COMMANDS = (
    ("start", "Start a run", "open the start form: workers and phones"),
    ("stop", "Stop the run", "workers finish their current job, then the run ends"),
    ("stop_all", "Stop all now", "end now, release claims, stop the phones"),
    ("pause", "Pause or resume the run", "workers finish their job, phones off, and wait"),
    ("reset_day", "Reset the day", "archive today's progress file and start a new day"),
    ("seed", "Seed today's jobs", "add jobs for videos not posted yet"),
    ("retry_failed", "Retry failed jobs", "put retryable failed jobs back in the queue"),
    ("retry_job", "Retry this job now", "the failed job under the cursor back in the queue; "
     "asks first, and names the risk of an account error or an unknown outcome"),
    ("skip_job", "Skip this job", "the job under the cursor leaves the queue for good (asks first)"),
    ("job_to_front", "Move this job to the front", "the pending job under the cursor is claimed next"),
    ("toggle_account", "Take the account out of rotation, or back",
     "the account under the accounts panel's cursor: out (asks first) or back in"),
    ("filter", "Filter the focused panel", "type to narrow the rows"),
    ("job_detail", "Job detail", "the job under the cursor: caption, error, log lines"),
    ("history", "History", "posts per day over the last 30 days, failures by type, accounts"),
    ("next_panel", "Next panel", "move the focus to the next panel"),
    ("help", "Help", "every key and what the states mean"),
    ("quit", "Quit the console", "a run goes on; reopen the console to watch it"),
)


class ConsoleCommands(Provider):
    """Every console action in the command palette (ctrl+p)."""

    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app = self.app
        return [(title, help_text, getattr(app, f"action_{action}"))
                for action, title, help_text in COMMANDS]

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)


class PostdeckApp(App[int]):
    CSS_PATH = "console.tcss"
    TITLE = "postdeck"
    COMMANDS = App.COMMANDS | {ConsoleCommands}

    BINDINGS = [
        Binding("s", "start", "Start", id="start"),
        Binding("x", "stop", "Stop", id="stop"),
        Binding("X", "stop_all", "Stop all", id="stop-all"),
        Binding("p", "pause", "Pause", id="pause"),
        Binding("R", "reset_day", "Reset day", id="reset-day"),
        Binding("S", "seed", "Seed", id="seed"),
        Binding("r", "retry_failed", "Retry", id="retry-failed"),
        Binding("slash", "filter", "Filter", id="filter", key_display="/"),
        # Not in the footer, which is full at 120 columns: `?` and the palette name it.
        Binding("h", "history", "History", id="history", show=False),
        Binding("question_mark", "help", "Help", id="help", key_display="?"),
        Binding("q", "quit", "Quit", id="quit"),
    ]

    def __init__(self, campaigns_dir: Path, campaign: str | None = None, *,
                 extra_roots: list[Path] | None = None,
                 clock: Callable[[], float] = time.time,
                 pid_alive: Callable[[int, float | None], bool] = process_alive,
                 poll_interval: float = 1.0, blink: bool = True) -> None:
        super().__init__()
        self.feed = Feed(campaigns_dir, extra_roots, clock=clock, pid_alive=pid_alive)
        self.campaign = campaign
        self.opened_with_campaign = campaign is not None
        self.poll_interval = poll_interval
        self.blink = blink
        self.frame: Frame | None = None
        self.frame_count = 0
        self.last_apply_cpu = 0.0
        self._polling = False
        self._poll_soon = False
        self._timer: Timer | None = None
        self._last_error: str | None = None
        self._froze = False

    def notify(self, message: str, *, title: str = "", severity: str = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Every notification is plain text: engine messages hold brackets (`[account/suspended]`)
        that Textual's markup would take for tags."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # --- screens -----------------------------------------------------------------------------------
    def get_default_screen(self) -> DashboardScreen:
        return DashboardScreen(focus="jobs" if self.opened_with_campaign else "campaigns",
                               blink=self.blink)

    @property
    def dashboard(self) -> DashboardScreen:
        screen = self.screen_stack[0]
        assert isinstance(screen, DashboardScreen)
        return screen

    def on_mount(self) -> None:
        if self.campaign is None:
            self.campaign = self.feed.first_campaign()
        self._schedule(0)

    def on_unmount(self) -> None:
        if self._froze:     # the app is done: what it froze may be collected again
            gc.unfreeze()

    # --- polling -----------------------------------------------------------------------------------
    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(max(delay, 0.01), self._poll, name="poll")

    def _poll(self) -> None:
        if self._polling:
            return
        self._polling = True
        self._fetch(self.campaign)

    def request_refresh(self) -> None:
        """Poll as soon as possible (right after the poll in flight, if any)."""
        if self._polling:
            self._poll_soon = True
        else:
            self._schedule(0)

    @work(thread=True, group="poll", exit_on_error=False)
    def _fetch(self, campaign: str | None) -> None:
        try:
            frame, error = self.feed.poll(campaign), None
        except Exception as exc:  # the console must outlive any bad read; it says why
            frame, error = None, exc
        try:
            self.call_from_thread(self._apply, frame, error)
        except RuntimeError:
            pass  # the app is closing

    def _apply(self, frame: Frame | None, error: Exception | None) -> None:
        self._polling = False
        if not self.screen_stack:
            return      # closing
        try:
            if error is not None:
                message = f"reading the campaign failed: {error}"
                if message != self._last_error:
                    self._last_error = message
                    self.notify(message, severity="error", timeout=ERROR_TIMEOUT)
            elif frame is not None and frame.campaign == self.campaign:
                started = time.thread_time()
                self.dashboard.apply(frame)
                if self.frame_count == 0:
                    if self.campaign:
                        self.dashboard.campaigns.move_to_key(self.campaign)
                    # What is loaded now lives as long as the app: keep the cyclic garbage
                    # collector from walking it on every full collection (10,000 rows and more).
                    gc.freeze()
                    self._froze = True
                self.last_apply_cpu = time.thread_time() - started
                self.frame = frame
                self.frame_count += 1
                if frame.header.error and frame.header.error != self._last_error:
                    self.notify(frame.header.error, severity="error", timeout=ERROR_TIMEOUT)
                self._last_error = frame.header.error
        finally:
            soon, self._poll_soon = self._poll_soon, False
            if frame is not None and frame.campaign != self.campaign:
                soon = True   # the operator opened another campaign meanwhile
            self._schedule(0 if soon else self.poll_interval)

    # --- what an action acts on --------------------------------------------------------------------
    def target_campaign(self) -> str | None:
        """The campaign under the cursor when the campaigns panel has focus, else the open one."""
        if isinstance(self.focused, CampaignsPanel) and self.focused.cursor_key:
            return self.focused.cursor_key
        return self.campaign

    def open_campaign(self, name: str) -> None:
        if name != self.campaign:
            self.campaign = name
            self.dashboard.clear_campaign()
            self.request_refresh()

    def _ctx_for(self, name: str) -> PostingContext:
        return self.feed.context(name)

    def _need_campaign(self) -> str | None:
        name = self.target_campaign()
        if name is None:
            self.notify("no campaign: put one in the campaigns folder", severity="warning")
        return name

    @work(thread=True, group="action", exit_on_error=False)
    def _run(self, label: str, name: str, action: Callable[[PostingContext], str],
             done: Callable[[], None] | None = None) -> None:
        """Run an engine action off the main thread; its result or refusal is notified (then
        `done` is called, on the main thread)."""
        try:
            message, severity = action(self._ctx_for(name)), "information"
        except (InputError, Refused) as exc:
            message, severity = exc.explain(CONSOLE_WORDS), "error"
        except Exception as exc:  # an unexpected failure is shown, never a crash
            message, severity = f"{label} failed: {type(exc).__name__}: {exc}", "error"
        self.call_from_thread(self._report, label, message, severity, done)

    def _report(self, label: str, message: str, severity: str,
                done: Callable[[], None] | None = None) -> None:
        self.notify(message, title=label, severity=severity,
                    timeout=ERROR_TIMEOUT if severity == "error" else 6)
        self.request_refresh()
        if done is not None:
            done()

    # --- actions -----------------------------------------------------------------------------------
    def action_start(self) -> None:
        name = self._need_campaign()
        if name is None:
            return
        try:
            ctx = self._ctx_for(name)
            phones = {a.phone for a in ctx.load_accounts()}
        except InputError as exc:
            self.notify(exc.explain(CONSOLE_WORDS), title="Start", severity="error",
                        timeout=ERROR_TIMEOUT)
            return
        workers = max(1, min(len(phones), DEFAULT_MAX_WORKERS))

        def started(request: StartRequest | None) -> None:
            if request is not None:
                self._run("Start", name, partial(_start, request=request))

        self.push_screen(StartForm(ctx, workers, blink=self.blink), started)

    def action_stop(self) -> None:
        name = self._need_campaign()
        if name is not None:
            self._run("Stop", name, partial(_stop, now=False))

    def action_pause(self) -> None:
        """Pause a running campaign, or resume a paused one: the same key both ways, as the
        earlier system's PAUSE button was."""
        name = self._need_campaign()
        if name is not None:
            resume = bool(self.frame.header.paused_since) if self.frame else False
            self._run("Resume" if resume else "Pause", name, partial(_pause, resume=resume))

    def action_stop_all(self) -> None:
        name = self._need_campaign()
        if name is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run("Stop all", name, partial(_stop, now=True))

        self.push_screen(ConfirmModal(
            f"Stop all of {name} now?",
            "Workers end at once, their claims are released and the campaign's phones and Appium "
            "servers are stopped. A job in the middle of publishing ends with an unknown outcome.",
            "stop all"), confirmed)

    def action_reset_day(self) -> None:
        name = self._need_campaign()
        if name is not None:
            self._check_reset(name)

    @work(thread=True, group="action", exit_on_error=False)
    def _check_reset(self, name: str) -> None:
        """Ask the engine first: while a run or a worker is alive the refusal is shown and
        nothing else happens."""
        try:
            ctx = self._ctx_for(name)
            with quiet_campaign(ctx, "resetting the day"):
                pass
        except (InputError, Refused) as exc:
            self.call_from_thread(self._report, "Reset day", exc.explain(CONSOLE_WORDS), "error")
            return
        self.call_from_thread(self._confirm_reset, name, ctx)

    def _confirm_reset(self, name: str, ctx: PostingContext) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run("Reset day", name, _reset_day)

        self.push_screen(ConfirmModal(
            f"Reset the day of {name}?",
            f"{ctx.progress_file.name} is archived as {ctx.archive_prefix}_{self._today(ctx)}.csv "
            "(nothing is deleted) and a new, empty day starts. Seed it with S.",
            "reset the day"), confirmed)

    def _today(self, ctx: PostingContext) -> str:
        return datetime.fromtimestamp(self.feed.clock(), ctx.settings.tz).strftime("%Y%m%d")

    def action_seed(self) -> None:
        name = self._need_campaign()
        if name is not None:
            self._run("Seed", name, _seed)

    def action_retry_failed(self) -> None:
        name = self._need_campaign()
        if name is None:
            return
        failed = ""
        if self.frame is not None and self.frame.campaign == name:
            failed = f"{self.frame.header.counts.get(C.FAILED, 0)} job(s) are failed. "

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run("Retry failed", name, _retry)

        self.push_screen(ConfirmModal(
            f"Retry the failed jobs of {name}?",
            f"{failed}Retryable failures go back in the queue with fresh attempts. Account and "
            "content errors and unknown outcomes stay failed (retry those with --no-ui "
            "--retry-all-failed --retry-include-non-retryable once you have checked them).",
            "retry"), confirmed)

    # --- one job: the job under the jobs panel's cursor, or the detail screen's ------------------
    def _target_job(self) -> tuple[str, str] | None:
        """(campaign, job id) an action on one job acts on, taken now."""
        if isinstance(self.screen, JobDetailScreen):
            return self.screen.campaign, self.screen.job_id
        key = self.dashboard.jobs.cursor_key
        if key is None or self.campaign is None:
            self.notify("no job under the cursor", severity="warning")
            return None
        return self.campaign, key

    def action_retry_job(self) -> None:
        target = self._target_job()
        if target is not None:
            self.retry_job(*target)

    def action_skip_job(self) -> None:
        target = self._target_job()
        if target is not None:
            self.skip_job(*target)

    def action_job_to_front(self) -> None:
        target = self._target_job()
        if target is not None:
            self.job_to_front(*target)

    def retry_job(self, name: str, job_id: str, done: Callable[[], None] | None = None) -> None:
        self._check_retry(name, job_id, done)

    @work(thread=True, group="action", exit_on_error=False)
    def _check_retry(self, name: str, job_id: str, done: Callable[[], None] | None) -> None:
        """Read the job (without the lock) to choose the confirmation: a plain one for a retryable
        failure, one that names the risk when the engine wants the operator's consent. A job that
        is not failed (claimed, pending, gone) goes straight to the engine, which refuses it in
        its own words; without consent it never retries a risky job."""
        try:
            row = open_store(self._ctx_for(name)).read().get(job_id)
        except InputError as exc:
            self.call_from_thread(self._report, "Retry job", exc.explain(CONSOLE_WORDS), "error")
            return
        if row is None or row[C.STATUS] != C.FAILED:
            self.call_from_thread(self._run, "Retry job", name,
                                  partial(_retry_job, job_id=job_id, consent=False), done)
            return
        self.call_from_thread(self._confirm_retry, name, job_id, list(row), done)

    def _confirm_retry(self, name: str, job_id: str, row: list[str],
                       done: Callable[[], None] | None) -> None:
        risky = lifecycle.needs_consent(row)
        error = " ".join((row[C.ERROR] or "").split())[:200] or "no error text"
        kind = f"{row[C.ERROR_CATEGORY] or 'unknown'}/{row[C.ERROR_TYPE] or 'unknown'}"
        if not risky:
            title, body, label = (
                f"Retry {job_id} now?",
                f"It failed with a retryable error ({kind}: {error}). It goes back in the queue, "
                "due now, with fresh attempts.", "retry")
        else:
            risk = (RISK_UNKNOWN_OUTCOME if lifecycle.is_unknown_outcome(row)
                    else RISK_ACCOUNT_OR_CONTENT)
            title, body, label = (
                f"Retry {job_id} anyway?",
                f"Its failure is not retryable ({kind}: {error}): {risk}. Check the account "
                f"{row[C.ACCOUNT]} first; confirm and it goes back in the queue, due now, with "
                "fresh attempts.", "retry anyway")

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run("Retry job", name,
                          partial(_retry_job, job_id=job_id, consent=risky), done)

        self.push_screen(ConfirmModal(title, body, label), confirmed)

    def skip_job(self, name: str, job_id: str, done: Callable[[], None] | None = None) -> None:
        reason = f"skipped in the console by {rotation.current_user()}"

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run("Skip job", name, partial(_skip_job, job_id=job_id, reason=reason),
                          done)

        self.push_screen(ConfirmModal(
            f"Skip {job_id}?",
            f"It leaves today's queue for good (status skipped, \"{reason}\"); no worker posts "
            "it today. A job a worker holds now is refused.", "skip"), confirmed)

    def job_to_front(self, name: str, job_id: str, done: Callable[[], None] | None = None) -> None:
        self._run("Move to front", name, partial(_job_to_front, job_id=job_id), done)

    # --- one account, or its phone: in rotation or out ----------------------------------------------
    def action_toggle_account(self) -> None:
        """The account under the accounts panel's cursor out of rotation (asks first), or back in
        when the rotation file says it is out (at once)."""
        account = self._account_under_cursor()
        if account is not None:
            self._toggle_rotation(self.campaign, Toggle(
                account, rotation.disabled, partial(_enable_account, account=account),
                partial(_disable_account, account=account, why=DISABLE_WHY),
                "", f"Take {account} out of rotation?",
                f"No worker claims a new job of {account} until you put it back (d again); its "
                "pending jobs stay pending, and a job it runs now runs to its end."))

    def action_toggle_phone(self) -> None:
        """The phone of the account under the cursor out of rotation (asks first: every
        account on it stops), or back in when it is out (at once)."""
        account = self._account_under_cursor()
        if account is not None:
            phone = self.dashboard.query_one(AccountsPanel).get_cell(account, "phone")
            self._toggle_rotation(self.campaign, Toggle(
                phone, rotation.phones_out, partial(_enable_phone, phone=phone),
                partial(_disable_phone, phone=phone, why=DISABLE_WHY),
                "Phone ", f"Take phone {phone} out of rotation?",
                f"No worker claims a job on {phone}, whichever account it is for, until you put "
                "it back (D again); a job it runs now runs to its end."))

    def _account_under_cursor(self) -> str | None:
        account = self.dashboard.query_one(AccountsPanel).cursor_key
        if account is None or self.campaign is None:
            self.notify("no account under the cursor", severity="warning")
            return None
        return account

    @work(thread=True, group="action", exit_on_error=False)
    def _toggle_rotation(self, name: str, t: "Toggle") -> None:
        """Out: back in at once. In: out after a confirmation. Whether it is out is read from
        the rotation file when the key is pressed, not from the last poll."""
        try:
            out = t.name in t.out_of(self._ctx_for(name))
        except InputError as exc:
            self.call_from_thread(self._report, "Rotation", exc.explain(CONSOLE_WORDS), "error")
            return
        if out:
            self.call_from_thread(self._run, f"{t.label}Back in rotation".capitalize(), name,
                                  t.enable)
            return

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run(f"{t.label}Out of rotation".capitalize(), name, t.disable)

        self.call_from_thread(self.push_screen,
                              ConfirmModal(t.title, t.text, "take it out"), confirmed)

    def action_filter(self) -> None:
        if not self.dashboard.open_filter():
            self.notify("this panel has no filter; tab to a table", severity="warning")

    def action_next_panel(self) -> None:
        self.dashboard.action_next_panel()

    def action_history(self) -> None:
        name = self._need_campaign()
        if name is None:
            return
        try:
            ctx = self._ctx_for(name)
        except InputError as exc:
            self.notify(exc.explain(CONSOLE_WORDS), title="History", severity="error",
                        timeout=ERROR_TIMEOUT)
            return
        self.push_screen(HistoryScreen(ctx, clock=self.feed.clock))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        self.exit(0)

    def action_job_detail(self) -> None:
        """Detail of the job under the jobs panel's cursor (from the command palette)."""
        key = self.dashboard.jobs.cursor_key
        if key is None:
            self.notify("no job under the cursor", severity="warning")
        else:
            self.show_job(key)

    def show_job(self, job_id: str) -> None:
        if self.campaign is None:
            return
        try:
            ctx = self._ctx_for(self.campaign)
        except InputError as exc:
            self.notify(exc.explain(CONSOLE_WORDS), severity="error", timeout=ERROR_TIMEOUT)
            return
        self.push_screen(JobDetailScreen(ctx, job_id, campaign=self.campaign))

    # --- enter on a panel --------------------------------------------------------------------------
    def on_live_table_selected(self, event: LiveTable.Selected) -> None:
        table, key = event.table, event.key
        if isinstance(table, CampaignsPanel):
            self.open_campaign(key)
            self.dashboard.activate([p for p, _ in PANELS].index("jobs"))
        elif isinstance(table, JobsPanel):
            self.show_job(key)
        elif isinstance(table, WorkersPanel):
            job = table.get_cell(key, "job")
            phone = phone_of_key(key)
            if job:
                self.show_job(job)
            elif phone is not None:
                self.notify(f"no worker drives {phone} now")
            else:
                self.notify(f"worker {key} has no job now")
        elif isinstance(table, AccountsPanel):
            self.dashboard.filter_jobs(key)


# --- the engine calls, run in thread workers ---------------------------------------------------------
def _start(ctx: PostingContext, request: StartRequest) -> str:
    from engine import runs
    from engine.workers import RunOptions
    started = runs.start_detached(ctx, RunOptions(workers=request.workers,
                                                  phones=request.phones))
    bound = f" on {', '.join(request.phones)}" if request.phones else ""
    said = f"{started.notice.explain(CONSOLE_WORDS)}\n" if started.notice else ""
    return f"{said}run started: {request.workers} worker(s){bound}, supervisor pid {started.pid}"


def _stop(ctx: PostingContext, now: bool) -> str:
    from engine import runs
    return runs.request_stop(ctx, now=now).explain(CONSOLE_WORDS)


def _pause(ctx: PostingContext, resume: bool) -> str:
    from engine import pause
    return (pause.resume(ctx) if resume else pause.pause(ctx)).explain(CONSOLE_WORDS)


def _reset_day(ctx: PostingContext) -> str:
    archive = operations.reset_day(ctx)
    if archive is None:
        return f"{ctx.describe()}: new day started (there was no progress file to archive)"
    return f"{ctx.describe()}: new day started; the old one is archived as {archive.name}"


def _seed(ctx: PostingContext) -> str:
    added = operations.seed(ctx)
    if not added:
        return f"{ctx.describe()}: nothing to seed (every account has its jobs, or no video is left)"
    accounts = len({job["account"] for job in added})
    return f"{ctx.describe()}: seeded {len(added)} job(s) for {accounts} account(s)"


def _retry(ctx: PostingContext) -> str:
    n = operations.retry_all_failed(ctx)
    return f"{ctx.describe()}: {n} failed job(s) put back in the queue"


def _retry_job(ctx: PostingContext, job_id: str, consent: bool) -> str:
    operations.retry_job(ctx, job_id, include_non_retryable=consent)
    return f"{job_id} is back in the queue: due now, with fresh attempts"


def _skip_job(ctx: PostingContext, job_id: str, reason: str) -> str:
    operations.skip_job(ctx, job_id, reason)
    return f"{job_id} skipped: it left today's queue"


def _job_to_front(ctx: PostingContext, job_id: str) -> str:
    operations.move_to_front(ctx, job_id)
    return f"{job_id} is first in the queue: the next free worker claims it"


def _disable_account(ctx: PostingContext, account: str, why: str) -> str:
    entry = operations.disable_account(ctx, account, why)
    return f"{account} is out of rotation (by {entry['by']}): it takes no new job until d puts it back"


@dataclass(frozen=True)
class Toggle:
    """An account or a phone the operator takes out of rotation or puts back."""
    name: str
    out_of: Callable[[PostingContext], dict]     # what is out now (the rotation file)
    enable: Callable[[PostingContext], str]
    disable: Callable[[PostingContext], str]
    label: str                                   # "" for an account, "Phone " for a phone
    title: str
    text: str


def _disable_phone(ctx: PostingContext, phone: str, why: str) -> str:
    entry = operations.disable_phone(ctx, phone, why)
    return f"phone {phone} is out of rotation (by {entry['by']}): D puts it back"


def _enable_phone(ctx: PostingContext, phone: str) -> str:
    if operations.enable_phone(ctx, phone):
        return f"phone {phone} is back in rotation"
    return f"phone {phone} was not out of rotation"


def _enable_account(ctx: PostingContext, account: str) -> str:
    if operations.enable_account(ctx, account):
        return f"{account} is back in rotation"
    return f"{account} was not out of rotation"
