"""Shared fixtures: real campaign folders in a temp dir, and the CLI run as a real process."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import columns as C

REPO = Path(__file__).resolve().parent.parent


_REAL_MP4: bytes | None = None


def real_mp4() -> bytes:
    """One real tiny MP4, made once: the real backends check that a video decodes before any
    phone starts, so their campaigns need real files (the simulated one does not look)."""
    global _REAL_MP4
    if _REAL_MP4 is None:
        import tempfile
        from videos import make_mp4
        with tempfile.TemporaryDirectory() as tmp:
            _REAL_MP4 = make_mp4(Path(tmp) / "v.mp4").read_bytes()
    return _REAL_MP4


def write_campaign(root: Path, accounts: list[str] | list[tuple[str, str]], videos: int,
                   settings: dict | None = None, captions: dict[int, str] | None = None,
                   real_videos: bool | None = None) -> Path:
    """A campaign folder: accounts.txt (name or (name, phone)), `videos` tiny video files with a
    caption each (overridable by index), and campaign.json. The files are real MP4s when
    `real_videos` (by default: when the campaign uses a real backend)."""
    if real_videos is None:
        real_videos = (settings or {}).get("backend", "simulated") != "simulated"
    root.mkdir(parents=True, exist_ok=True)
    (root / "videos").mkdir(exist_ok=True)
    with open(root / "accounts.txt", "w", encoding="utf-8") as fh:
        for a in accounts:
            fh.write((f"{a[0]},{a[1]}" if isinstance(a, tuple) else a) + "\n")
    with open(root / "captions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "post_caption"])
        for i in range(videos):
            name = f"v{i:03d}.mp4"
            (root / "videos" / name).write_bytes(
                real_mp4() if real_videos else b"\0" * 16 + bytes([i % 256]))
            w.writerow([name, (captions or {}).get(i, f"caption {i}, with \"quotes\" 🎬")])
    (root / "campaign.json").write_text(json.dumps(settings or {}))
    return root


def fast_sim(**overrides) -> dict:
    sim = {"boot_seconds": 0.02, "post_seconds": 0.05, "failure_rate": 0.0, "seed": 1}
    sim.update(overrides)
    return sim


def postdeck(*args: str, cwd: Path | None = None, timeout: float = 120,
             env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the CLI as an operator would, in a real process."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("POSTDECK_CAMPAIGNS_DIR", None)
    return subprocess.run([sys.executable, "-m", "console", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


class FakeTime:
    """One clock for time and sleep: sleeping moves it, nothing waits."""

    def __init__(self, now: float = 1000.0):   # 1000 s is 40 s into a minute
        self.now = now
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def campaign_roots(top: Path) -> list[Path]:
    """Every folder under `top` (two levels down, as a campaigns folder holds them) that holds a
    progress file: the campaigns a test may have run jobs in."""
    roots = {p.parent for pattern in ("*/*progress*.csv", "*/*/*progress*.csv")
             for p in top.glob(pattern) if ".postdeck" not in p.parts}
    return sorted(roots)


def check_account_safety(top: Path) -> None:
    """What postdeck promises, on the real files a test left behind: no account above its
    limit on any calendar day (over every campaign sharing the host), no account with two
    claims, no video posted twice in a campaign, and no success the ledger does not hold."""
    from engine.settings import DAILY_LIMIT_MAX, load_settings
    from helpers import assert_daily_limits
    roots = campaign_roots(top)
    if not roots:
        return
    limits, zones = [], set()
    for root in roots:
        try:
            s = load_settings(root / "campaign.json")
        except Exception:       # a test of a bad campaign.json: no limit of its own to check
            limits.append(DAILY_LIMIT_MAX)
            continue
        limits.append(s.daily_limit)
        zones.add(s.timezone)
    for zone in zones or {"UTC"}:
        assert_daily_limits(roots, max(limits), zone)
    claims: dict[str, int] = {}
    for root in roots:
        assert_daily_limits([root], DAILY_LIMIT_MAX)       # no video posted twice
        rows = _rows(root / "progress.csv")
        for r in rows:
            if r[C.STATUS] == C.CLAIMED:
                claims[r[C.ACCOUNT]] = claims.get(r[C.ACCOUNT], 0) + 1
        ledger = root / "posted.csv"
        if ledger.is_file():
            held = {cells[3] for cells in _cells(ledger)[1:] if len(cells) >= 4}
            lost = [r[C.JOB_ID] for r in rows if r[C.STATUS] == C.SUCCESS
                    and r[C.JOB_ID] not in held]
            assert not lost, f"successes the ledger of {root} does not hold: {lost}"
    two = {a: n for a, n in claims.items() if n > 1}
    assert not two, f"accounts with more than one claim: {two}"


def _cells(path: Path) -> list[list[str]]:
    try:
        return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _rows(path: Path) -> list[list[str]]:
    return [r for r in _cells(path)[1:] if len(r) > C.PHONE_ID and r[C.STATUS] in C.STATUSES]


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def campaigns_dir(tmp_path: Path, request) -> Path:
    """A campaigns folder; after the test, the account-safety invariants are checked on what the
    test left in it, whatever the test itself asserted (a test that leaves a bad state on
    purpose says so with @pytest.mark.unsafe_on_purpose)."""
    d = tmp_path / "campaigns"
    d.mkdir()
    yield d
    if not request.node.get_closest_marker("unsafe_on_purpose"):
        check_account_safety(d)


# ---- A real PostgreSQL server (tests/pg_server.py) ------------------------------------------

PG_MISSING = "PostgreSQL server binaries not found (install Debian's postgresql package)"


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    """One real PostgreSQL server for the whole session (starting one takes about a second;
    each test gets its own database instead). Skips, loudly, where the binaries are missing."""
    from pg_server import PgServer, find_bindir
    bindir = find_bindir()
    if bindir is None:
        pytest.skip(PG_MISSING)
    # Not under pytest's temp folder: another pytest session starting makes that 0700 again,
    # and the server (another user, as root) would lose its way into its own data folder.
    import shutil
    import tempfile
    base = Path(tempfile.mkdtemp(prefix="postdeck-pg-"))
    server = PgServer(bindir, base)
    server.start()
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


_pg_db_counter = iter(range(1, 1 << 30))


@pytest.fixture
def pg_url(pg_server, request) -> str:
    """A fresh, empty database for this test (t_<n>) on the session's server, as a URL; dropped
    afterwards, with whatever connections the test left open, so the disk does not fill up.
    Before the drop, the account-safety invariants are checked on what the test left in it
    (the daily limit: the highest of the test's campaigns, when it has a campaigns folder)."""
    if not pg_server.running:          # an earlier test stopped it
        pg_server.start()
    name = f"t_{next(_pg_db_counter)}"
    url = pg_server.create_database(name)
    yield url
    if not pg_server.running:
        pg_server.start()
    try:
        if not request.node.get_closest_marker("unsafe_on_purpose"):
            from pg_helpers import assert_db_safe
            assert_db_safe(url, _limit_of(request))
    finally:
        pg_server.drop_database(name)


def _limit_of(request) -> int | None:
    if "campaigns_dir" not in request.fixturenames:
        return None
    from engine.settings import load_settings
    limits = []
    for root in campaign_roots(request.getfixturevalue("campaigns_dir")):
        try:
            limits.append(load_settings(root / "campaign.json").daily_limit)
        except Exception:
            continue
    return max(limits) if limits else None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say it loudly when PostgreSQL tests did not run: a skip line among many is easy to miss,
    and a green `make test` that never touched the database would be a lie."""
    skipped = terminalreporter.stats.get("skipped", [])
    if any(PG_MISSING in str(getattr(rep, "longrepr", "")) for rep in skipped):
        bar = "!" * 79
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line(
            "PostgreSQL tests were SKIPPED: no server binaries (apt-get install postgresql)",
            red=True, bold=True)
        terminalreporter.write_line(bar, red=True, bold=True)
