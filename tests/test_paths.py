"""Paths stay where they belong: a writing command never plants files in a folder that is not a
campaign, and nothing outside a campaign is ever pushed to a phone. Through the CLI."""
from __future__ import annotations

import os
from pathlib import Path

from conftest import fast_sim, postdeck, write_campaign
from helpers import one_message, tree_snapshot


def test_writing_commands_refuse_an_absolute_folder_that_is_not_a_campaign(campaigns_dir,
                                                                           tmp_path):
    plain = tmp_path / "documents"
    plain.mkdir()
    (plain / "notes.txt").write_text("an operator's folder\n")
    before = tree_snapshot(plain)
    for action in (["--reset-day"], ["--seed-only"], ["--run"], ["--retry-all-failed"],
                   ["--reset-day", "--force-reseed", "--run"]):
        res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", str(plain),
                       *action)
        one_message(res, "accounts.txt", "not a campaign folder")
        assert tree_snapshot(plain) == before, f"{action} wrote into {plain}"


def test_a_video_that_links_outside_the_campaign_is_refused(campaigns_dir, tmp_path):
    root = write_campaign(campaigns_dir / "c", ["a"], 2, {"simulation": fast_sim()})
    secret = tmp_path / "private.mp4"
    secret.write_bytes(b"not for posting")
    (root / "videos" / "v001.mp4").unlink()
    os.symlink(secret, root / "videos" / "v001.mp4")
    before = tree_snapshot(root)
    one_message(postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c",
                         "--run"), "v001.mp4", "outside the campaign")
    assert tree_snapshot(root) == before


def test_a_videos_folder_that_links_outside_the_campaign_is_refused(campaigns_dir, tmp_path):
    root = write_campaign(campaigns_dir / "c", ["a"], 2, {"simulation": fast_sim()})
    elsewhere = tmp_path / "shared-videos"
    (root / "videos").rename(elsewhere)
    os.symlink(elsewhere, root / "videos")
    before = tree_snapshot(root)
    one_message(postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c",
                         "--seed-only"), "videos", "outside the campaign")
    assert tree_snapshot(root) == before
    assert not (root / "progress.csv").exists()


def test_a_campaign_given_by_absolute_path_still_works(campaigns_dir, tmp_path):
    root = write_campaign(tmp_path / "farm" / "c", ["a"], 2, {"simulation": fast_sim()})
    res = postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", str(root),
                   "--run")
    assert res.returncode == 0, res.stderr
    assert "success 1" in res.stdout
    assert Path(root / "posted.csv").exists()


def test_a_file_where_the_host_state_folder_belongs_refuses_before_any_write(campaigns_dir):
    root = write_campaign(campaigns_dir / "c", ["a"], 2, {"simulation": fast_sim()})
    (campaigns_dir / ".postdeck").write_text("not a folder\n")
    before = tree_snapshot(campaigns_dir)
    for action in (["--seed-only"], ["--seed-only", "--accounts", "a"], ["--reset-day"],
                   ["--reset-day", "--force-reseed", "--run"], ["--run"]):
        one_message(postdeck("--no-ui", "--campaigns-dir", str(campaigns_dir), "--campaign", "c",
                             *action), ".postdeck", "is a file")
        assert tree_snapshot(campaigns_dir) == before, action
    assert not (root / "progress.csv").exists()
