"""Campaign folders: accounts.txt, captions.csv, videos/, campaign.json, names that would leave
the campaigns folder, and disabled campaigns (DESIGN.md, "Domain" and "campaign.json")."""
from __future__ import annotations

import json
import os

import pytest

from engine.campaigns import (Account, find_videos, list_campaign_dirs, load_campaign,
                              parse_accounts, resolve_campaign_dir)
from engine.context import PostingContext
from engine.operations import list_campaigns, require_enabled, retry_all_failed, seed
from engine.problems import InputError, Refused, Remedy
from engine.settings import Settings, load_settings

from helpers import make_campaign, run_cli, snapshot


def error_of(call) -> InputError:
    with pytest.raises(InputError) as exc:
        call()
    return exc.value


# --- accounts.txt ----------------------------------------------------------------------------------
def test_accounts_with_phones_comments_blanks(tmp_path):
    path = tmp_path / "accounts.txt"
    path.write_bytes("\ufeff# farm A\r\nacc_a\r\n\r\n  acc_b , phone-1  \r\n"
                     "   # indented comment\r\nacc_c,phone-1\r\nzoë.ü,phone-2\r\n".encode())
    assert parse_accounts(path) == [Account("acc_a", "acc_a"), Account("acc_b", "phone-1"),
                                    Account("acc_c", "phone-1"), Account("zoë.ü", "phone-2")]


def test_phones_of_a_campaign_in_order(tmp_path):
    root = make_campaign(tmp_path, "c", accounts=[("a", "P2"), ("b", "P1"), ("c", "P2"), "d"])
    assert load_campaign(root).phones == ["P2", "P1", "d"]


@pytest.mark.parametrize("text, line, words", [
    ("acc_a\n# c\nacc_b\n\nacc_a,phone\n", 5, "'acc_a' is listed twice (first on line 1)"),
    ("acc_a\nacc_b,p,extra\n", 2, "3 fields"),
    ("acc_a\n,phone\n", 2, "empty account"),
    ("acc_a\nacc_b,\n", 2, "empty account or phone"),
    ("acc\xff\n", None, None),
])
def test_accounts_errors_name_the_line(tmp_path, text, line, words):
    path = tmp_path / "accounts.txt"
    path.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    err = error_of(lambda: parse_accounts(path))
    assert err.path == path
    if words is None:
        assert err.line == 1 and "UTF-8" in str(err)
    else:
        assert err.line == line and words in str(err)
        assert str(err).startswith(f"{path}, line {line}: ")


@pytest.mark.parametrize("text", ["", "# only comments\n\n"])
def test_no_accounts(tmp_path, text):
    path = tmp_path / "accounts.txt"
    path.write_text(text)
    assert "lists no accounts" in str(error_of(lambda: parse_accounts(path)))


def test_missing_accounts_file(tmp_path):
    err = error_of(lambda: parse_accounts(tmp_path / "accounts.txt"))
    assert "missing" in str(err) and str(tmp_path / "accounts.txt") in str(err)


# --- captions.csv -----------------------------------------------------------------------------------
NASTY = {
    "a.mp4": "plain",
    "b.mp4": "commas, everywhere, really",
    "c.mp4": 'she said "hi", then ""left""',
    "d.mp4": "line one\nline two\n\nline four",
    "e.mp4": "emoji 🎬🔥👩‍👩‍👧 and ümlauts",
}


@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_captions_round_trip(tmp_path, bom, newline):
    import csv
    import io
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator=newline)
    w.writerow(["notes", "filename", "post_caption"])
    for name, cap in NASTY.items():
        w.writerow([f"note for {name}", name, cap])
    data = ("\ufeff" if bom else "") + buf.getvalue()
    root = make_campaign(tmp_path, "c", videos=list(NASTY), captions_bytes=data.encode())
    videos = {v.filename: v.caption for v in load_campaign(root).videos}
    if newline == "\r\n":   # inside quotes csv keeps the line ends as written
        videos = {k: v.replace("\r\n", "\n") for k, v in videos.items()}
    assert videos == NASTY


def test_configurable_columns(tmp_path):
    data = "Video;Text\n".replace(";", ",") + "v000.mp4,hello\nv001.mp4,\"a, b\"\n"
    root = make_campaign(tmp_path, "c", videos=2, captions_bytes=data.encode(),
                         settings={"filename_column": "Video", "caption_column": "Text"})
    assert [(v.filename, v.caption) for v in load_campaign(root).videos] == [
        ("v000.mp4", "hello"), ("v001.mp4", "a, b")]


@pytest.mark.parametrize("settings, column", [({}, "post_caption"),
                                              ({"caption_column": "caption"}, "caption"),
                                              ({"filename_column": "file"}, "file")])
def test_missing_column(tmp_path, settings, column):
    root = make_campaign(tmp_path, "c", videos=1, settings=settings,
                         captions_bytes=b"filename,text\nv000.mp4,hi\n")
    err = error_of(lambda: load_campaign(root))
    assert err.path == root / "captions.csv" and err.line == 1
    assert f"no '{column}' column" in str(err) and "filename, text" in str(err)


@pytest.mark.parametrize("data, line, words", [
    (b"filename,post_caption\nv000.mp4,a\nv000.mp4,b\n", 3, "again (first on line 2)"),
    (b"filename,post_caption\nv000.mp4,a, b\n", 2, "3 fields"),
    (b"filename,post_caption\n,a\n", 2, "empty 'filename'"),
    (b"filename,post_caption\nv000.mp4,\"open quote\nv001.mp4,next\n", 2, "not valid CSV"),
    (b"filename,post_caption\nv000.mp4,ok\nv001.mp4,\"closed\" then more\n", 3, "not valid CSV"),
    (b"filename,\"post_caption\nv000.mp4,x\n", 1, "not valid CSV"),
    (b"filename,post_caption\nv000.mp4,ok\nv001.mp4,caf\xe9\n", 3, "UTF-8"),
    (b"", 1, "is empty"),
])
def test_captions_errors_name_the_line(tmp_path, data, line, words):
    root = make_campaign(tmp_path, "c", videos=2, captions_bytes=data)
    err = error_of(lambda: load_campaign(root))
    assert err.path == root / "captions.csv"
    assert err.line == line and words in str(err), str(err)


def test_videos_without_caption_and_blank_lines_are_skipped(tmp_path):
    data = b"filename,post_caption\nv000.mp4,one\n\n,\nv002.mp4,   \n"
    root = make_campaign(tmp_path, "c", videos=3, captions_bytes=data)
    assert [v.filename for v in load_campaign(root).videos] == ["v000.mp4"]


def test_videos_are_found_recursively(tmp_path):
    names = ["top.mp4", "batch1/a.MOV", "batch1/deep/b.webm", "batch2/c.mkv"]
    root = make_campaign(tmp_path, "c", videos=names)
    (root / "videos" / "notes.txt").write_text("not a video")
    (root / "videos" / ".hidden.mp4").write_bytes(b"x")
    found = find_videos(root / "videos")
    assert sorted(found) == ["a.MOV", "b.webm", "c.mkv", "top.mp4"]
    assert found["b.webm"] == root / "videos" / "batch1" / "deep" / "b.webm"
    assert {v.filename for v in load_campaign(root).videos} == set(found)


def test_duplicate_video_names_are_refused(tmp_path):
    root = make_campaign(tmp_path, "c", videos=["batch1/same.mp4", "batch2/same.mp4"],
                         captions={"same.mp4": "x"})
    err = error_of(lambda: load_campaign(root))
    assert "same file name" in str(err) and "same.mp4" in str(err)


def test_missing_videos_folder(tmp_path):
    root = make_campaign(tmp_path, "c", videos=0)
    os.rmdir(root / "videos")
    assert "videos folder is missing" in str(error_of(lambda: load_campaign(root)))


# --- campaign.json ------------------------------------------------------------------------------------
@pytest.mark.parametrize("body, line, words", [
    ('{\n  "enabled": true,\n  "max_posts": 2\n}', 3, "unknown key"),
    ('{\n  "enabled": "yes"\n}', 2, "true or false"),
    ('{\n  "backend": "cloud"\n}', 2, "must be one of simulated, geelark, adb"),
    ('{\n\n  "timezone": "Mars/Olympus"\n}', 3, "not a time zone"),
    ('{"max_attempts": 0}', 1, "at least 1"),
    ('{\n "cooldown_minutes": -1}', 2, "0 or more"),
    ('{\n "rate_limit_steps": []}', 2, "non-empty list"),
    ('{\n "rate_limit_steps": [60, 1.5]}', 2, "non-empty list"),
    ('{\n "filename_column": " "}', 2, "column name"),
    ('{\n "simulation": {\n   "failure_rate": 2}}', 3, "from 0 to 1"),
    ('{\n "simulation": {\n   "seed": 1,\n   "speed": 2}}', 4, "unknown key in 'simulation'"),
    ('{\n "simulation": {"failures": {"a": 1}}}', 2, "map account names"),
    ('{\n  "enabled": true,\n  "backend": "simulated"\n  "timezone": "UTC"\n}', 4, "not valid JSON"),
    ('[1, 2]', 1, "one JSON object"),
    ('   ', 1, "is empty"),
])
def test_campaign_json_errors_name_file_and_line(tmp_path, body, line, words):
    path = tmp_path / "campaign.json"
    path.write_text(body)
    err = error_of(lambda: load_settings(path))
    assert err.path == path and err.line == line, str(err)
    assert words in str(err)
    assert str(err).startswith(f"{path}, line {line}: ")


def test_campaign_json_defaults_and_values(tmp_path):
    assert load_settings(tmp_path / "missing.json") == Settings()
    path = tmp_path / "campaign.json"
    path.write_text(json.dumps({"enabled": False, "max_posts_per_account_per_day": 3,
                                "backend": "adb", "timezone": "Europe/Berlin",
                                "rate_limit_steps": [5, 10], "cooldown_minutes": 0.5,
                                "simulation": {"failures": {"x": "account suspended"}}}))
    s = load_settings(path)
    assert (s.enabled, s.daily_limit, s.backend, s.timezone, s.rate_limit_steps,
            s.cooldown_minutes) == (False, 3, "adb", "Europe/Berlin", (5, 10), 0.5)
    assert s.simulation.failures == {"x": "account suspended"}


def test_a_bad_campaign_json_stops_loading(tmp_path):
    root = make_campaign(tmp_path, "c", settings={"max_posts_per_account_per_day": 9})
    err = error_of(lambda: load_campaign(root))
    assert err.path == root / "campaign.json" and err.line == 2


# --- names that would leave the campaigns folder ----------------------------------------------
@pytest.fixture
def campaigns(tmp_path):
    base = tmp_path / "campaigns"
    make_campaign(base, "inside")
    make_campaign(tmp_path, "outside")
    os.symlink(tmp_path / "outside", base / "escape")
    return base


@pytest.mark.parametrize("name", ["..", "../outside", "escape", "inside/../../outside",
                                  "../campaigns/escape"])
def test_names_that_leave_the_campaigns_folder_are_refused(campaigns, name, monkeypatch):
    monkeypatch.chdir(campaigns.parent)
    err = error_of(lambda: resolve_campaign_dir(campaigns, name))
    text = str(err)
    assert ("outside the campaigns folder" in text or "would leave the campaigns folder" in text
            or "no campaign" in text), text


def test_names_inside_are_accepted(campaigns, monkeypatch):
    monkeypatch.chdir(campaigns.parent)
    assert resolve_campaign_dir(campaigns, "inside") == campaigns.resolve() / "inside"
    assert resolve_campaign_dir(campaigns, str(campaigns.parent / "outside")) == \
        campaigns.parent / "outside"                     # an absolute path is taken as given
    error = error_of(lambda: resolve_campaign_dir(campaigns, "nope"))
    assert "no campaign 'nope'" in str(error) and Remedy.LIST_CAMPAIGNS in error.remedies


def test_cli_refuses_a_name_that_leaves_the_folder(campaigns):
    for name in ("..", "../outside", "escape"):
        res = run_cli("--no-ui", "--campaign", name, "--status", cwd=campaigns.parent,
                      campaigns_dir=campaigns)
        assert res.returncode == 1, (name, res.stdout)
        assert "campaigns folder" in res.stderr, res.stderr
    assert not (campaigns.parent / "outside" / "progress.csv").exists()


def test_listing_skips_hidden_and_non_campaign_folders(campaigns):
    (campaigns / ".postdeck").mkdir()
    (campaigns / "just_a_folder").mkdir()
    make_campaign(campaigns, "broken", settings={"backend": "nope"})
    names = [p.name for p in list_campaign_dirs(campaigns)]
    assert names == ["broken", "escape", "inside"]
    listed = {c["name"]: c for c in list_campaigns(campaigns)}
    assert listed["broken"]["error"] and "campaign.json" in listed["broken"]["error"]
    assert listed["inside"]["error"] is None and listed["inside"]["accounts"] == 2


# --- disabled campaigns ---------------------------------------------------------------------------
def test_disabled_campaign_is_refused_for_seeding_and_retrying(tmp_path):
    base = tmp_path / "campaigns"
    root = make_campaign(base, "off", settings={"enabled": False})
    ctx = PostingContext.for_campaign_dir(root, base)
    for call in (lambda: require_enabled(ctx), lambda: seed(ctx), lambda: retry_all_failed(ctx)):
        with pytest.raises(Refused, match="disabled"):
            call()
    assert not (root / "progress.csv").exists()
    (root / "progress.csv").write_bytes(b"")  # even a corrupt file is left alone
    before = snapshot(root / "progress.csv")
    for action in (["--seed-only"], ["--retry-all-failed"],
                   ["--retry-all-failed", "--retry-include-non-retryable"]):
        res = run_cli("--no-ui", "--campaign", "off", *action, cwd=tmp_path, campaigns_dir=base)
        assert res.returncode == 1, res.stdout
        assert "disabled" in res.stderr and str(root / "campaign.json") in res.stderr
        assert '"enabled": true' in res.stderr
    assert snapshot(root / "progress.csv") == before
