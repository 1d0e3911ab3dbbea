"""Taking over the earlier system's farm and its habits, through the CLI."""
from __future__ import annotations

from pathlib import Path

from conftest import fast_sim, postdeck, write_campaign


def cli(campaigns_dir: Path, campaign: str, *args: str, **kw):
    return postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", campaign,
                    *args, **kw)


def test_workers_never_outnumber_phones(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", [("a", "p1"), ("b", "p2"), ("d", "p3"),
                                               ("e", "p1")], 8,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    res = cli(campaigns_dir, "c", "--run", "--workers", "60")
    assert res.returncode == 0, res.stderr
    lines = [l for l in res.stdout.splitlines() if "worker(s), not 60" in l]
    assert len(lines) == 1 and "starting 3 worker(s)" in lines[0], res.stdout
    logs = sorted(p.name for p in (root / ".postdeck" / "logs").glob("worker-*.log"))
    assert logs == ["worker-0.log", "worker-1.log", "worker-2.log"]
    assert "success 4" in res.stdout


def test_status_shows_a_long_multi_line_error_on_one_line_and_json_keeps_it(campaigns_dir):
    error = "element not found: share\n" + "  at step 4 of the flow " * 20 + "\nend"
    write_campaign(campaigns_dir / "c", ["a"], 2, {
        "max_posts_per_account_per_day": 1,
        "simulation": fast_sim(failures={"a": error})})
    assert cli(campaigns_dir, "c", "--run", "--max-passes", "1").returncode == 0
    text = cli(campaigns_dir, "c", "--status").stdout
    (line,) = [l for l in text.splitlines() if "last error:" in l]
    assert line.endswith("…") and len(line.split("last error: ")[1]) <= 80, line
    import json
    status = json.loads(cli(campaigns_dir, "c", "--status", "--json").stdout)
    kept = status["accounts"][0]["last_error"]
    assert kept.startswith("element not found: share\n") and kept.count("at step 4") > 10


def test_accounts_limits_seeding_and_the_run_to_those_accounts(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a", "b", "d"], 9,
                          {"max_posts_per_account_per_day": 1, "simulation": fast_sim()})
    res = cli(campaigns_dir, "c", "--seed-only", "--accounts", "a,b")
    assert res.returncode == 0 and "for 2 account(s)" in res.stdout, res.stdout
    res = cli(campaigns_dir, "c", "--run", "--workers", "2", "--accounts", "d")
    assert res.returncode == 0, res.stderr
    import csv
    rows = list(csv.DictReader(open(root / "progress.csv")))
    done = {r["account"]: r["status"] for r in rows}
    assert done == {"a": "pending", "b": "pending", "d": "success"}, done
