"""PostingContext: built once per command and passed everywhere. It is the single source of truth
for where a campaign's files are and which settings apply, in campaign mode and in legacy mode
(the earlier system's files in the working directory)."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from .campaigns import (ACCOUNTS_FILE, Account, Campaign, load_campaign, parse_accounts,
                        resolve_campaign_dir)
from .settings import Settings, load_settings, validate_daily_limit

LEGACY_NAME = "legacy"
STATE_DIRNAME = ".postdeck"


STORE_ENV = "POSTDECK_STORE"     # a postgresql:// URL: the campaign's jobs live in that database
HOST_ENV = "POSTDECK_HOST"       # this host's name among the hosts sharing a store


def store_url() -> str | None:
    return os.environ.get(STORE_ENV) or None


def host_name() -> str:
    """This host's name in a shared store's claims and leases (POSTDECK_HOST, else the
    hostname): two hosts must not share one, or each would recover the other's live claims."""
    return (os.environ.get(HOST_ENV) or socket.gethostname() or "localhost").strip()


def default_campaigns_dir() -> Path:
    return Path(os.environ.get("POSTDECK_CAMPAIGNS_DIR") or "campaigns")


@dataclass(frozen=True)
class PostingContext:
    name: str
    root: Path
    progress_file: Path
    ledger_file: Path
    accounts_file: Path
    settings: Settings
    archive_prefix: str
    state_dir: Path           # .postdeck/: locks, heartbeats, logs of this campaign
    host_state_dir: Path      # shared by every campaign on this host: phone and account locks
    campaigns_dir: Path | None = None   # its other campaigns count toward shared accounts' limits
    legacy: bool = False
    scheduler_state_file: Path | None = None
    # The store in use (engine/store.py open_store): None is the CSV file in the folder.
    store_url: str | None = field(default_factory=store_url)
    host: str = field(default_factory=host_name)

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def for_campaign(cls, campaigns_dir: Path, name_or_path: str) -> "PostingContext":
        root = resolve_campaign_dir(campaigns_dir, name_or_path)
        return cls.for_campaign_dir(root, campaigns_dir)

    @classmethod
    def for_campaign_dir(cls, root: Path, campaigns_dir: Path | None = None) -> "PostingContext":
        root = Path(root).resolve()
        settings = load_settings(root / "campaign.json")
        campaigns = Path(campaigns_dir).resolve() if campaigns_dir else root.parent
        return cls(
            name=root.name, root=root, progress_file=root / "progress.csv",
            ledger_file=root / "posted.csv", accounts_file=root / ACCOUNTS_FILE,
            settings=settings, archive_prefix="progress", state_dir=root / STATE_DIRNAME,
            host_state_dir=_host_state_dir(campaigns), campaigns_dir=campaigns,
        )

    @classmethod
    def for_legacy(cls, workdir: Path | None = None) -> "PostingContext":
        root = Path(workdir or Path.cwd()).resolve()
        return cls(
            name=LEGACY_NAME, root=root, progress_file=root / "parallel_progress.csv",
            ledger_file=root / "posted.csv", accounts_file=root / ACCOUNTS_FILE,
            settings=Settings(), archive_prefix="parallel_progress",
            state_dir=root / STATE_DIRNAME, host_state_dir=_host_state_dir(root), legacy=True,
            scheduler_state_file=root / "scheduler_state.json",
        )

    def with_daily_limit(self, limit: int) -> "PostingContext":
        validate_daily_limit(limit)
        return replace(self, settings=replace(self.settings, max_posts_per_account_per_day=limit))

    # --- derived --------------------------------------------------------------------------------
    @property
    def daily_limit(self) -> int:
        return self.settings.max_posts_per_account_per_day

    @property
    def run_lock_file(self) -> Path:
        return self.state_dir / "run.lock"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def heartbeats_dir(self) -> Path:
        return self.state_dir / "workers"

    @property
    def power_dir(self) -> Path:
        """Host-wide: whether each phone is on, and its on-time today (engine/power.py)."""
        return self.host_state_dir / "power"

    @property
    def evidence_dir(self) -> Path:
        return self.state_dir / "evidence"

    @property
    def events_file(self) -> Path:
        """The run's events, one JSON line each (engine/events.py)."""
        return self.state_dir / "events.jsonl"

    @property
    def phones_dir(self) -> Path:
        return self.host_state_dir / "phones"

    def describe(self) -> str:
        return "legacy mode (working directory)" if self.legacy else f"campaign '{self.name}'"

    def today(self) -> str:
        return datetime.now(self.settings.tz).strftime("%Y%m%d")

    def load_campaign(self) -> Campaign:
        """Campaign mode: accounts, captions and videos, validated."""
        return load_campaign(self.root, self.name)

    def load_accounts(self) -> list[Account]:
        """accounts.txt; in legacy mode without one, the accounts the earlier system kept in
        its scheduler_state.json."""
        if self.legacy and not self.accounts_file.exists() and self.scheduler_state_file:
            from .legacy import read_scheduler_state
            if self.scheduler_state_file.exists():
                listed = read_scheduler_state(self.scheduler_state_file)[1]
                if listed:
                    return [Account(name, name) for name in dict.fromkeys(listed)]
        return parse_accounts(self.accounts_file)


def _host_state_dir(campaigns_dir: Path) -> Path:
    """Phone locks must be seen by every campaign on the host, so they live beside the campaigns,
    not inside one (POSTDECK_STATE_DIR overrides, e.g. when campaigns sit in several folders)."""
    env = os.environ.get("POSTDECK_STATE_DIR")
    return Path(env).resolve() if env else campaigns_dir / STATE_DIRNAME
