"""The operator's actions that need no running workers, shared by the CLI and the console."""
from __future__ import annotations

from pathlib import Path

from . import rotation
from .campaigns import Account, Video, list_campaign_dirs
from .context import PostingContext
from .legacy import parse_master_ledger, read_scheduler_state
from .limits import register
from .problems import InputError, Refused, Remedy
from .runstate import quiet_campaign, running_supervisor
from .store import open_store
from .tracker import IMPORTED


def require_enabled(ctx: PostingContext) -> None:
    if not ctx.legacy and not ctx.settings.enabled:
        raise Refused(f"{ctx.describe()} is disabled in {ctx.root / 'campaign.json'}; set "
                      '"enabled": true to use it')


def seed(ctx: PostingContext, force_reseed: bool = False, reset_done: bool = False,
         only: list[str] | None = None) -> list[dict]:
    """Add today's jobs (for the accounts `only` names, when given). A reseed only makes sense
    on a fresh day, so it is refused unless the day was just reset (it would otherwise re-offer
    the day's videos)."""
    if force_reseed and not reset_done:
        raise Refused("a reseed of the current day was refused: it could post to accounts twice",
                      remedies=(Remedy.RESET_AND_SEED,))
    require_enabled(ctx)
    require_folders(ctx)
    store = open_store(ctx)
    store.validate()
    accounts, videos = load_inputs(ctx)
    if only is not None:
        accounts = [a for a in accounts if a.name in set(check_accounts(ctx, only, accounts))]
    store.adopt_history()        # the last check is done: from here on, writes
    added = store.seed(videos, accounts, ctx.name)
    register_campaign(ctx)   # after the seed: a refused one leaves no trace
    return added


def register_campaign(ctx: PostingContext) -> None:
    """Make this campaign's posts count toward shared accounts' limits in every other campaign
    of the host, wherever its folder is (engine/limits.py)."""
    register(ctx.host_state_dir, ctx.root, ctx.progress_file.name.removesuffix(".csv"))


def import_ledger(ctx: PostingContext, path: Path) -> tuple[int, int]:
    """The earlier system's master ledger into the campaign's: every video it names is never
    seeded again here. (new, already known); the file is checked whole before anything is
    written."""
    entries = parse_master_ledger(Path(path))
    store = open_store(ctx)
    store.validate()
    store.read_ledger()          # refuse a damaged posted.csv before appending to it
    store.adopt_history()        # the campaign's own history first, as on its first seed
    return store.import_posts([(f"{IMPORTED}{when}", account, video, "")
                               for account, video, when in entries])


def check_accounts(ctx: PostingContext, names: list[str],
                   accounts: list[Account] | None = None) -> list[str]:
    """The accounts an operator named (the earlier system's --accounts), each one of the
    campaign's; a typo is refused before anything is written."""
    known = [a.name for a in (accounts if accounts is not None else load_inputs(ctx)[0])]
    names = [n.strip() for n in names]
    if not names or any(not n for n in names):
        raise Refused("the list of accounts has an empty name; write them as a,b,c")
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(ctx.accounts_file, None, f"has no account {', '.join(map(repr, unknown))}"
                                                  f" (it has: {', '.join(known)})")
    return list(dict.fromkeys(names))


def load_inputs(ctx: PostingContext) -> tuple[list[Account], list[Video]]:
    """The accounts and captioned videos, validated: campaign files, or legacy ones. The
    rotation file is checked with them: which accounts may post is an input of the run too,
    and a run must not start on a file its workers would refuse."""
    rotation.disabled(ctx)
    if ctx.legacy:
        return ctx.load_accounts(), read_scheduler_state(ctx.scheduler_state_file)[0]
    campaign = ctx.load_campaign()
    return campaign.accounts, campaign.videos


def reset_day(ctx: PostingContext) -> Path | None:
    """Archive today's progress file and start a fresh one; refused while anything runs. Claims
    that no live worker holds (a crash the supervisor never saw) are recovered first, so a job
    that was publishing is archived as an unknown outcome and never seeded again."""
    require_folders(ctx)
    store = open_store(ctx)
    with quiet_campaign(ctx, "resetting the day"):
        try:
            store.recover_stale(())
        except InputError:
            pass       # a corrupt file cannot be recovered: it is archived byte-for-byte
        return store.reset_day(ctx.today())


def export_day(ctx: PostingContext, path: Path, day: str | None = None) -> int:
    """Write a day's jobs (today's, or the closed day `day`) as a progress CSV to `path`, a new
    file: an operator's file is never replaced. The number of jobs written."""
    from .progress_csv import parse_progress
    data = open_store(ctx).export_day(day)
    try:
        with open(path, "xb") as fh:
            fh.write(data)
    except FileExistsError:
        raise InputError(path, None, "exists already; postdeck never replaces a file: name a "
                                     "new one") from None
    return len(parse_progress(path, data).rows)


def require_folders(ctx: PostingContext) -> None:
    """Before a command writes anything: the campaign's and the host's state folders must be
    folders (or not exist yet)."""
    from .preflight import require_folder
    for folder in (ctx.state_dir, ctx.host_state_dir):
        require_folder(folder)


def retry_all_failed(ctx: PostingContext, include_non_retryable: bool = False) -> int:
    require_enabled(ctx)
    store = open_store(ctx)
    store.validate()  # refuse a corrupt file before taking (and creating) its lock
    return store.retry_all_failed(include_non_retryable)


# --- the operator's actions on one job (the store refuses with JobRefused) -------------------------
def retry_job(ctx: PostingContext, job_id: str, include_non_retryable: bool = False) -> dict:
    """One failed job back in the queue (JobStore.retry_job); refused like retry_all_failed in a
    disabled campaign."""
    require_enabled(ctx)
    return _store_for_action(ctx).retry_job(job_id, include_non_retryable)


def skip_job(ctx: PostingContext, job_id: str, reason: str) -> dict:
    return _store_for_action(ctx).skip_job(job_id, reason)


def move_to_front(ctx: PostingContext, job_id: str) -> dict:
    return _store_for_action(ctx).move_to_front(job_id)


def _store_for_action(ctx: PostingContext):
    store = open_store(ctx)
    store.validate()  # refuse a corrupt file before taking (and creating) its lock
    return store


# --- accounts out of rotation and back (engine/rotation.py) ---------------------------------------
def disable_account(ctx: PostingContext, account: str, why: str) -> dict[str, str]:
    """Out of rotation, by the OS user running postdeck: {by, at, why}."""
    require_folders(ctx)
    return rotation.disable(ctx, account, rotation.current_user(), why)


def enable_account(ctx: PostingContext, account: str) -> bool:
    """Back in rotation; False when it was not out."""
    require_folders(ctx)
    return rotation.enable(ctx, account)


def disable_phone(ctx: PostingContext, phone: str, why: str) -> dict[str, str]:
    """A phone out of rotation (no job on it is claimed), by the OS user: {by, at, why}."""
    require_folders(ctx)
    return rotation.disable_phone(ctx, phone, rotation.current_user(), why)


def enable_phone(ctx: PostingContext, phone: str) -> bool:
    require_folders(ctx)
    return rotation.enable_phone(ctx, phone)


def list_campaigns(campaigns_dir: Path) -> list[dict]:
    """Every campaign folder with a one-line health check; a broken one is listed with its error
    instead of hiding the others. Besides InputError, a campaign may fail with an OSError (its
    progress.csv is a folder, a file cannot be read) or a ValueError from a parser: that too is
    this campaign's problem, not the listing's."""
    out = []
    for root in list_campaign_dirs(campaigns_dir):
        entry: dict = {"name": root.name, "path": str(root)}
        try:
            ctx = PostingContext.for_campaign_dir(root, campaigns_dir)
            campaign = ctx.load_campaign()
            if ctx.state_dir.exists() and not ctx.state_dir.is_dir():
                raise InputError(ctx.state_dir, None, "must be a folder (postdeck keeps the "
                                 "campaign's locks, heartbeats and logs in it); move the file away")
            stats = open_store(ctx).stats()
            supervisor = running_supervisor(ctx)
            entry.update(enabled=ctx.settings.enabled, backend=ctx.settings.backend,
                         daily_limit=ctx.daily_limit, accounts=len(campaign.accounts),
                         phones=len(campaign.phones), videos=len(campaign.videos),
                         captions_without_video=campaign.captions_without_video,
                         counts={k: v for k, v in stats.items() if k != "total"},
                         total=stats["total"], running=supervisor is not None,
                         supervisor_pid=supervisor.pid if supervisor else None, error=None)
        except InputError as exc:
            entry.update(enabled=None, error=str(exc), running=False)
        except IsADirectoryError as exc:
            entry.update(enabled=None, running=False, error=f"{exc.filename or root}: is a "
                         "folder where postdeck expects a file; move it away")
        except OSError as exc:
            entry.update(enabled=None, running=False, error=f"{exc.filename or root}: cannot be "
                         f"used ({exc.strerror or exc}); check what is there and its permissions")
        except ValueError as exc:
            entry.update(enabled=None, running=False,
                         error=f"{root}: cannot be read ({exc}); inspect the campaign's files")
        # A listing is one line per campaign, whatever an error message holds.
        if entry.get("error"):
            entry["error"] = " ".join(entry["error"].splitlines())
        out.append(entry)
    return out


