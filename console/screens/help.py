"""The help screen: every key, what the panels and states mean. `escape`, `q` or `?` close it."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS = """\
[b]Keys[/b]
  [b]s[/b]      start a run (form: workers, phones; enter starts with the values shown)
  [b]x[/b]      stop: workers finish their current job, then the run ends
  [b]X[/b]      stop all: end now, release claims, stop the phones (asks first)
  [b]p[/b]      pause / resume: workers finish their job, turn their phones off and wait
  [b]h[/b]      history: posts per day over the last 30 days, failures by type, accounts
  [b]R[/b]      reset the day: archive progress.csv, start empty (asks first; refused while a run is alive)
  [b]S[/b]      seed today's jobs
  [b]r[/b]      retry failed jobs (asks first; account and content errors stay failed)
  [b]t[/b]      jobs, job detail: retry this job now (asks first; names the risk of an account or
         content error or an unknown outcome)
  [b]K[/b]      jobs, job detail: skip this job, out of today's queue for good (asks first)
  [b]F[/b]      jobs, job detail: move this pending job to the front of the queue
  [b]d[/b]      accounts: take the account out of rotation (asks first), or put it back
  [b]D[/b]      accounts: take the account's phone out of rotation (asks first), or put it back
  [b]/[/b]      filter the focused panel (enter keeps it, escape clears it)
  [b]enter[/b]  campaigns: open · jobs and phones: job detail · accounts: that account's jobs
  [b]tab[/b]    next panel (shift+tab: previous)
  [b]?[/b]      this help
  [b]q[/b]      quit the console; a run goes on, reopen to watch it
  [b]ctrl+p[/b] command palette: every action by name
  [b]↑ ↓ pgup pgdn home end[/b] move in a panel · [b]← →[/b] scroll sideways

[b]Actions[/b] act on the campaign under the cursor when the campaigns panel has focus, else on the
open campaign; t K F act on the job under the cursor, d on the account; each is taken when the
key is pressed. A refusal (a job a worker holds...) is shown in red, in the engine's words.

[b]Account states[/b]
  RUNNING a job is being posted · BLOCKED an account error (suspended, logged out...) needs you ·
  LIMIT today's posts are done · COOLDOWN resting after failures or a rate limit ·
  WAITING has jobs but its phone is busy · AVAILABLE can take a job ·
  OFF out of rotation (d): next says by whom, the last error since when and why

[b]Phones[/b]  power on · starting · off, and its on-time today (Geelark bills every minute on)
  [i]no worker[/i]: on with nobody driving it, and it still bills
[b]Pacing[/b]  accounts' [i]next[/i]: the cooldown left, or [i]gap[/i] while its phone rests between posts ·
  header [i]window closed · opens 22:00[/i]: outside the posting window nothing is claimed

[b]Job status[/b]  pending → claimed (phase claimed → preparing → publishing) → success | failed | retrying
A job that failed while publishing has an unknown outcome: check the account, then retry it by hand.
"""


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 100; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close", id="help-close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll() as scroll:
            scroll.border_title = "postdeck help"
            yield Static(KEYS)

    def action_close(self) -> None:
        self.dismiss(None)
