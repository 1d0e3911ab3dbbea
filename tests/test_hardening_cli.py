"""Bad input that does not fit the corpus (tests/corpus): stdout that cannot be written, a pipe
closed by `| head`, a listing with one broken campaign among good ones, a dangling campaign.json
link, and the largest values the settings and options accept. All through the CLI as a real
process, as an operator would meet them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, postdeck, write_campaign
from console.__main__ import (MAX_PASSES, MAX_RETRY_DELAY_S, MAX_WORKERS, UsageError,
                              build_parser, chosen_actions, validate_options)

DEV_FULL = Path("/dev/full")
BUFFERING = {"block-buffered": None, "unbuffered": "1"}   # PYTHONUNBUFFERED


def cli_env(unbuffered: str | None) -> dict:
    """conftest.postdeck()'s environment, with stdout buffering chosen: buffered, a failed write
    surfaces at the final flush; unbuffered, inside print() itself. Both must end the same way."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("POSTDECK_CAMPAIGNS_DIR", None)
    env.pop("PYTHONUNBUFFERED", None)
    if unbuffered:
        env["PYTHONUNBUFFERED"] = unbuffered
    return env


def cli(*args: str, stdout, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "console", *args], stdout=stdout,
                          stderr=subprocess.PIPE, text=True, env=env, cwd=cwd, timeout=60)


def assert_clean(stderr: str) -> None:
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr


# --- stdout that cannot be written -----------------------------------------------------------
@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
@pytest.mark.parametrize("buffering", BUFFERING, ids=list(BUFFERING))
@pytest.mark.parametrize("action", [("--status",), ("--status", "--json"), ("--list-campaigns",),
                                    ("--list-campaigns", "--json"), ("--seed-only",)],
                         ids=" ".join)
def test_stdout_on_a_full_disk_is_one_message(tmp_path, action, buffering):
    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns / "c", ["a1", "a2"], 2)
    with open(DEV_FULL, "w") as full:
        res = cli("--no-ui", "--campaigns-dir", str(campaigns), "--campaign", "c", *action,
                  stdout=full, env=cli_env(BUFFERING[buffering]), cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert_clean(res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("postdeck: cannot write the output: No space left on device")


@pytest.mark.skipif(not DEV_FULL.exists(), reason="needs /dev/full")
def test_long_output_on_a_full_disk_fails_mid_print_with_one_message(tmp_path):
    """Far more than the 8 KiB buffer: the write fails inside print(), not at the end."""
    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns / "c", [f"account{i:04d}" for i in range(400)], 1)
    with open(DEV_FULL, "w") as full:
        res = cli("--no-ui", "--campaigns-dir", str(campaigns), "--campaign", "c", "--status",
                  "--json", stdout=full, env=cli_env(None), cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    assert_clean(res.stderr)
    assert res.stderr.strip().splitlines() == [
        "postdeck: cannot write the output: No space left on device; send it somewhere "
        "writable and run the command again"]


@pytest.mark.parametrize("buffering", BUFFERING, ids=list(BUFFERING))
def test_a_closed_pipe_still_exits_0_quietly(tmp_path, buffering):
    """`postdeck ... | head`: the reader went away. Not an error, and nothing on stderr."""
    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns / "c", ["a1", "a2"], 2)
    proc = subprocess.Popen([sys.executable, "-m", "console", "--no-ui", "--campaigns-dir",
                             str(campaigns), "--list-campaigns"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=cli_env(BUFFERING[buffering]))
    proc.stdout.close()   # before the child has written anything: its first write gets EPIPE
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert stderr == ""


# --- --list-campaigns with a broken campaign among good ones --------------------------------
def _progress_is_a_folder(root: Path) -> Path:
    (root / "progress.csv").mkdir()
    return root / "progress.csv"


def _campaign_json_is_a_folder(root: Path) -> Path:
    (root / "campaign.json").unlink()
    (root / "campaign.json").mkdir()
    return root / "campaign.json"


def _captions_is_a_folder(root: Path) -> Path:
    (root / "captions.csv").unlink()
    (root / "captions.csv").mkdir()
    return root / "captions.csv"


def _state_dir_is_a_file(root: Path) -> Path:
    (root / ".postdeck").write_text("not a folder\n")
    return root / ".postdeck"


BREAKAGES = {"progress.csv is a folder": _progress_is_a_folder,
             "campaign.json is a folder": _campaign_json_is_a_folder,
             "captions.csv is a folder": _captions_is_a_folder,
             ".postdeck is a file": _state_dir_is_a_file}


@pytest.fixture(params=BREAKAGES, ids=list(BREAKAGES))
def farm(request, tmp_path) -> tuple[Path, Path]:
    """Two campaigns, 'good' and 'broken', the second broken one way; returns (folder, the path
    the message must name)."""
    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns / "good", ["a1", "a2"], 2)
    broken = write_campaign(campaigns / "broken", ["b1"], 1)
    culprit = BREAKAGES[request.param](broken)
    return campaigns, culprit


def test_list_campaigns_lists_a_broken_one_and_the_others(farm, tmp_path):
    campaigns, culprit = farm
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns), "--list-campaigns", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    rows = {line.split()[0]: line for line in res.stdout.splitlines()}
    assert set(rows) == {"good", "broken"}, res.stdout
    assert "BROKEN" not in rows["good"] and "2 accounts" in rows["good"], rows["good"]
    assert "BROKEN" in rows["broken"] and str(culprit) in rows["broken"], rows["broken"]


def test_list_campaigns_json_lists_a_broken_one_and_the_others(farm, tmp_path):
    campaigns, culprit = farm
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns), "--list-campaigns", "--json",
                   cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)}
    assert rows["good"]["error"] is None and rows["good"]["accounts"] == 2
    error = rows["broken"]["error"]
    assert str(culprit) in error and "\n" not in error, error


def test_an_os_or_value_error_of_one_campaign_does_not_end_the_listing(tmp_path, monkeypatch,
                                                                       capsys):
    """The net under the engine's own checks: whatever OSError or ValueError one campaign's files
    raise (here injected, in process: the engine already turns the ones a test can provoke into
    InputError), that campaign is BROKEN on one line naming the path, the others are listed."""
    from console.headless import run_actions
    from engine import operations
    from engine.tracker import ProgressStore

    campaigns = tmp_path / "campaigns"
    for name in ("good", "oserror", "valueerror"):
        write_campaign(campaigns / name, ["a1", "a2"], 2)
    real_stats = ProgressStore.stats

    def stats(self):
        if self.path.parent.name == "oserror":
            raise PermissionError(13, "Permission denied", str(self.path))
        if self.path.parent.name == "valueerror":
            raise ValueError("invalid literal for int() with base 10: 'x'\nand a second line")
        return real_stats(self)

    monkeypatch.setattr(ProgressStore, "stats", stats)
    rows = {r["name"]: r for r in operations.list_campaigns(campaigns)}
    assert rows["good"]["error"] is None and rows["good"]["accounts"] == 2
    assert str(campaigns / "oserror" / "progress.csv") in rows["oserror"]["error"]
    assert "Permission denied" in rows["oserror"]["error"]
    assert str(campaigns / "valueerror") in rows["valueerror"]["error"]
    assert "\n" not in rows["valueerror"]["error"]

    args = build_parser().parse_args(["--no-ui", "--campaigns-dir", str(campaigns),
                                      "--list-campaigns"])
    assert run_actions(args, ["list_campaigns"]) == 0
    out = capsys.readouterr()
    assert out.err == ""
    lines = {line.split()[0]: line for line in out.out.splitlines()}
    assert set(lines) == {"good", "oserror", "valueerror"}, out.out
    assert "BROKEN" not in lines["good"]
    assert "BROKEN" in lines["oserror"] and "BROKEN" in lines["valueerror"]


@pytest.mark.parametrize("error, says", [
    (IsADirectoryError(21, "Is a directory", "/farm/c/progress.csv"),
     "/farm/c/progress.csv: is a folder where postdeck expects a file"),
    (FileExistsError(17, "File exists", "/farm/c/.postdeck"),
     "/farm/c/.postdeck: a file stands where postdeck needs a folder"),
    (PermissionError(13, "Permission denied", "/farm/c/captions.csv"),
     "/farm/c/captions.csv: cannot be used (Permission denied)"),
    (OSError(5, "Input/output error"), "failed: Input/output error"),
], ids=["folder for a file", "file for a folder", "permission", "no file named"])
def test_an_os_error_of_an_action_is_one_message(tmp_path, monkeypatch, capsys, error, says):
    """The net under InputError in run_actions (injected, in process: the engine's own checks
    already name the cases a test can provoke): one line on stderr, exit 1, no traceback."""
    from console.headless import run_actions
    from engine import operations

    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns / "c", ["a1"], 1)

    def seed(*args, **kwargs):
        raise error

    monkeypatch.setattr(operations, "seed", seed)
    args = build_parser().parse_args(["--no-ui", "--campaigns-dir", str(campaigns), "--campaign",
                                      "c", "--seed-only"])
    assert run_actions(args, ["seed_only"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"postdeck: {says}"), err


# --- campaign.json in odd places -------------------------------------------------------------
def test_a_dangling_campaign_json_link_is_refused_not_taken_for_defaults(tmp_path):
    """A link to nowhere must not silently mean 'all defaults' (the simulated backend, limit 1)."""
    campaigns = tmp_path / "campaigns"
    root = write_campaign(campaigns / "c", ["a1"], 1)
    (root / "campaign.json").unlink()
    os.symlink(tmp_path / "settings-that-moved.json", root / "campaign.json")
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns), "--campaign", "c", "--status",
                   cwd=tmp_path)
    assert res.returncode == 1, res.stdout
    assert_clean(res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "campaign.json" in lines[0] and "does not exist" in lines[0], lines


def test_the_largest_settings_are_accepted(tmp_path):
    """The maxima named in the messages are themselves valid."""
    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns / "c", ["a1"], 1, settings={
        "max_attempts": 100, "cooldown_after_consecutive": 100, "cooldown_minutes": 10080,
        "rate_limit_steps": [1, 86400],
        "simulation": {"boot_seconds": 86400, "post_seconds": 86400.0, "failure_rate": 1,
                       "seed": 2 ** 32 - 1},
        "appium_capabilities": {"appium:newCommandTimeout": 3600, "opts": {"args": [1.5, -2]}}})
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns), "--campaign", "c", "--status",
                   cwd=tmp_path)
    assert res.returncode == 0, res.stderr


# --- the largest options -------------------------------------------------------------------
def refusal(*argv: str) -> str | None:
    args = build_parser().parse_args(["--no-ui", *argv])
    try:
        validate_options(args, chosen_actions(args))
    except UsageError as exc:
        return str(exc)
    return None


def test_the_largest_options_are_accepted_and_one_more_is_not():
    assert refusal("--run", "--workers", str(MAX_WORKERS), "--max-passes", str(MAX_PASSES),
                   "--retry-delay", str(MAX_RETRY_DELAY_S)) is None
    assert refusal("--run", "--retry-delay", "0") is None
    assert refusal("--run", "--retry-delay", "30.0") is None   # as start_detached passes it on
    assert "at most 1000" in refusal("--run", "--workers", str(MAX_WORKERS + 1))
    assert "at most 100" in refusal("--run", "--max-passes", str(MAX_PASSES + 1))
    assert "at most 86400" in refusal("--run", "--retry-delay", str(MAX_RETRY_DELAY_S + 0.5))
