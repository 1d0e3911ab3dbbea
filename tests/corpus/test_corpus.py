"""Every bad input of tests/corpus/cases.py: exit 1 (2 for usage), one clear message naming the
file and the line, and every file byte-for-byte unchanged, no file added."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cases import CASES, GOOD_ACCOUNTS, GOOD_CAPTIONS, Case
from conftest import postdeck
from helpers import tree_snapshot as snapshot


def lay_out(case: Case, tmp: Path) -> tuple[Path, list[str]]:
    """The good campaign (or legacy folder) with the case's files laid over it."""
    campaigns = tmp / "campaigns"
    root = tmp / "legacy" if case.legacy else campaigns / "c"
    (root / "videos").mkdir(parents=True)
    campaigns.mkdir(exist_ok=True)
    (root / "accounts.txt").write_text(GOOD_ACCOUNTS)
    (root / "captions.csv").write_text(GOOD_CAPTIONS)
    for i in range(2):
        (root / "videos" / f"v{i:03d}.mp4").write_bytes(b"\0" * 8)
    if case.legacy:
        (root / "scheduler_state.json").write_text(
            '{"videos": [{"video_path": "videos/v000.mp4", "caption": "hi"}]}')
    (tmp / "outside").mkdir()
    (tmp / "outside" / "accounts.txt").write_text("x\n")
    os.symlink(tmp / "outside", campaigns / "link")
    for rel, content in case.files.items():
        path = root / rel
        if content is None:
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    ui = ["--no-ui"] if case.headless else []
    if case.legacy:
        return root, [*ui, *case.args]
    return root, [*ui, "--campaigns-dir", str(campaigns), "--campaign", case.campaign,
                  *case.args]


def test_corpus_is_large_enough():
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path):
    root, argv = lay_out(case, tmp_path)
    before = snapshot(tmp_path)
    res = postdeck(*argv, cwd=root if case.legacy else tmp_path, timeout=60)
    assert res.returncode == case.exit, (res.stdout, res.stderr)
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    message = lines[-1]
    assert "Traceback" not in res.stderr and "Exception ignored" not in res.stderr, res.stderr
    if case.exit == 1:
        assert len(lines) == 1, f"one message, not {len(lines)} lines: {res.stderr}"
    else:  # the usage synopsis, then one line that says what is wrong
        assert message.startswith("postdeck: usage error: "), message
        assert sum("usage error" in l for l in lines) == 1, res.stderr
    assert case.says in message, message
    if case.file:
        assert case.file in message, message
    if case.line:
        assert f"line {case.line}" in message, message
    assert snapshot(tmp_path) == before, "a file was changed, removed or added"
