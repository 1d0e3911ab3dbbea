"""Legacy mode: the earlier system's files in the working directory (scheduler_state.json,
accounts.txt, parallel_progress.csv and its parallel_progress_YYYYMMDD.csv archives)."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from engine import columns as C
from engine.context import PostingContext
from engine.legacy import load_scheduler_state
from engine.problems import InputError
from engine.tracker import HEADER_ONLY, ProgressStore

from helpers import progress_bytes, row, run_cli


def legacy_dir(tmp_path, n_videos=3, accounts="acc_a\nacc_b,phone-2\n", state=None):
    (tmp_path / "accounts.txt").write_text(accounts)
    (tmp_path / "media").mkdir()
    items = []
    for i in range(n_videos):
        (tmp_path / "media" / f"clip{i}.mp4").write_bytes(b"\0" * 8)
        items.append({"video_path": f"media/clip{i}.mp4", "caption": f"caption {i} 🎬"})
    (tmp_path / "scheduler_state.json").write_text(
        json.dumps(state if state is not None else {"videos": items}, indent=2))
    return tmp_path


def test_legacy_context_paths(tmp_path):
    ctx = PostingContext.for_legacy(tmp_path)
    assert ctx.legacy and ctx.name == "legacy"
    assert ctx.progress_file == tmp_path.resolve() / "parallel_progress.csv"
    assert ctx.scheduler_state_file == tmp_path.resolve() / "scheduler_state.json"
    assert ctx.ledger_file == tmp_path.resolve() / "posted.csv"
    assert ctx.daily_limit == 1


def test_scheduler_state_formats(tmp_path):
    legacy_dir(tmp_path)
    vids = load_scheduler_state(tmp_path / "scheduler_state.json")
    assert [v.filename for v in vids] == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]
    assert vids[0].path == (tmp_path / "media" / "clip0.mp4").resolve()
    # a bare list, "path"/"filename" keys, absolute paths, and a caption-less video left out
    state = [{"path": "media/clip0.mp4", "caption": "a"},
             {"filename": str((tmp_path / "media" / "clip1.mp4").resolve()), "caption": "b"},
             {"video_path": "media/clip2.mp4", "caption": "  "}]
    (tmp_path / "scheduler_state.json").write_text(json.dumps(state))
    assert [(v.filename, v.caption) for v in load_scheduler_state(
        tmp_path / "scheduler_state.json")] == [("clip0.mp4", "a"), ("clip1.mp4", "b")]


@pytest.mark.parametrize("state, line, words", [
    ({"videos": [{"video_path": "media/clip0.mp4", "caption": "a"},
                 {"video_path": "media/nope.mp4", "caption": "b"}]}, 7, "does not exist"),
    ({"videos": [{"video_path": "media/clip0.mp4", "caption": "a"},
                 {"video_path": "media/clip0.mp4", "caption": "b"}]}, 7, "listed twice"),
    ({"videos": [{"caption": "a"}]}, 3, "no video_path"),
    ({"videos": "nope"}, 1, "list of videos"),
])
def test_scheduler_state_errors_name_file_and_line(tmp_path, state, line, words):
    legacy_dir(tmp_path, state=state)
    with pytest.raises(InputError) as exc:
        load_scheduler_state(tmp_path / "scheduler_state.json")
    assert exc.value.path == tmp_path / "scheduler_state.json"
    assert exc.value.line == line and words in str(exc.value)


def test_legacy_cli_seed_status_reset(tmp_path):
    legacy_dir(tmp_path)
    res = run_cli("--no-ui", "--seed-only", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    store = ProgressStore.for_context(PostingContext.for_legacy(tmp_path))
    jobs = store.jobs()
    assert [(j["job_id"], j["account"], j["phone_id"]) for j in jobs] == [
        ("clip0.mp4_legacy", "acc_a", "acc_a"), ("clip1.mp4_legacy", "acc_b", "phone-2")]
    assert not (tmp_path / "progress.csv").exists()

    res = run_cli("--no-ui", "--status", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)
    assert status["campaign"] == "legacy" and status["legacy"] is True
    assert status["progress_file"] == str((tmp_path / "parallel_progress.csv").resolve())
    assert status["counts"]["pending"] == 2 and status["daily_limit"] == 1

    before = (tmp_path / "parallel_progress.csv").read_bytes()
    day = datetime.now(timezone.utc).strftime("%Y%m%d")
    res = run_cli("--no-ui", "--reset-day", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    archive = tmp_path / f"parallel_progress_{day}.csv"
    assert archive.read_bytes() == before
    assert (tmp_path / "parallel_progress.csv").read_bytes() == HEADER_ONLY
    res = run_cli("--no-ui", "--reset-day", cwd=tmp_path)
    assert res.returncode == 0 and (tmp_path / f"parallel_progress_{day}_1.csv").exists()


def test_legacy_17_column_file_is_seeded_on_top_and_claimed(tmp_path):
    legacy_dir(tmp_path)
    old = [row("clip0.mp4_legacy", "acc_a", C.SUCCESS, video_path=str(tmp_path / "media/clip0.mp4"))]
    (tmp_path / "parallel_progress.csv").write_bytes(
        progress_bytes(old, C.COLUMNS[:17], lineterminator="\r\n"))
    res = run_cli("--no-ui", "--seed-only", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    store = ProgressStore.for_context(PostingContext.for_legacy(tmp_path))
    jobs = store.jobs()
    # acc_a has its success today (limit 1): only acc_b gets a job, with a video not yet used
    assert [(j["job_id"], j["account"], j["status"]) for j in jobs] == [
        ("clip0.mp4_legacy", "acc_a", "success"), ("clip1.mp4_legacy", "acc_b", "pending")]
    job = store.claim("w1")
    assert job["job_id"] == "clip1.mp4_legacy"
