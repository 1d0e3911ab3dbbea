"""Legacy mode: the earlier system's `scheduler_state.json` in the working directory.

Its formats, as postdeck reads them: a list of videos, an object with a "videos" list, or the
earlier system's own {"jobs": [{"id", "video_path", "caption", "status", ...}], "accounts":
[{"name", ...}]}. Each video is an object with "video_path" (or "path"/"filename") and "caption".
Paths are relative to the working directory and must stay inside it. Videos without a caption
are left out, as in campaign mode.
"""
from __future__ import annotations

import json
from pathlib import Path

from .campaigns import VIDEO_SUFFIXES, Video, read_text
from .problems import InputError


def _line_of_index(text: str, index: int) -> int:
    """Best-effort line of the index-th object of the list, for messages."""
    depth, count = 0, -1
    for pos, ch in enumerate(text):
        if ch == "{":
            depth += 1
            if depth == 2 or (depth == 1 and text.lstrip().startswith("[")):
                count += 1
                if count == index:
                    return text.count("\n", 0, pos) + 1
        elif ch == "}":
            depth -= 1
    return 1


def parse_master_ledger(path: Path) -> list[tuple[str, str, str]]:
    """The earlier system's master ledger (all_posted_videos.txt): one post per line as
    `account|video_filename|timestamp` (the timestamp may be the word `rebuilt`); blank lines and
    `#` comments are skipped. A line that does not parse is refused with its line number."""
    text = read_text(path, "the ledger to import")
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        parts = [p.strip() for p in entry.split("|")]
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise InputError(path, number, "is not 'account|video_filename|timestamp'; fix the "
                                           "line (nothing was imported)")
        if Path(parts[1].replace("\\", "/")).suffix.lower() not in VIDEO_SUFFIXES:
            raise InputError(path, number, f"names '{parts[1]}', which is not a video file name; "
                                           "fix the line (nothing was imported)")
        out.append((parts[0], parts[1], parts[2]))
    return out


SEEDABLE = ("pending", "retrying")


def load_scheduler_state(path: Path) -> list[Video]:
    """The videos to seed in legacy mode."""
    return read_scheduler_state(path)[0]


def read_scheduler_state(path: Path) -> tuple[list[Video], list[str]]:
    """(videos to seed, account names the file lists). Three shapes are read: a list of videos,
    {"videos": [...]}, and the earlier system's own {"jobs": [...], "accounts": [...]}, whose jobs
    are seeded only while `pending` or `retrying`, under their own `id`."""
    text = read_text(path, "the scheduler state file")
    if not text.strip():
        raise InputError(path, 1, 'is empty; write {"videos": []} for no videos')
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, f"is not valid JSON ({exc.msg}); fix the syntax") from None
    except (ValueError, RecursionError):
        raise InputError(path, 1, "is not JSON postdeck can read (a number too long, or nested "
                                  "too deep)") from None
    jobs = isinstance(data, dict) and "jobs" in data
    items = data.get("jobs" if jobs else "videos") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(path, 1, 'must be a list of videos, an object with a "videos" list, or '
                                  'the earlier system\'s {"jobs": [...]}')
    base = path.parent
    videos: list[Video] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        line = _line_of_index(text, i)
        what = "job" if jobs else "video"
        if not isinstance(item, dict):
            raise InputError(path, line, f"{what} #{i + 1} must be an object with video_path and "
                                         "caption")
        if jobs and str(item.get("status", "pending")) not in SEEDABLE:
            continue   # done, failed or running in the earlier system: not ours to post
        raw = item.get("video_path") or item.get("path") or item.get("filename")
        caption = item.get("caption", "")
        if not isinstance(raw, str) or not raw.strip():
            raise InputError(path, line, f"{what} #{i + 1} has no video_path")
        if not isinstance(caption, str):
            raise InputError(path, line, f"{what} #{i + 1} has a caption that is not text")
        video_path = (base / raw).resolve() if not Path(raw).is_absolute() else Path(raw).resolve()
        if base.resolve() not in video_path.parents:
            raise InputError(path, line, f"{what} #{i + 1} ({raw}) is outside the working "
                                         f"directory {base.resolve()}; postdeck only posts videos "
                                         "that are inside it")
        name = video_path.name
        if name in seen:
            raise InputError(path, line, f"video '{name}' is listed twice (first as {what} "
                                         f"#{seen[name]}); keep one")
        seen[name] = i + 1
        if not video_path.is_file():
            raise InputError(path, line, f"{what} #{i + 1} ({raw}) does not exist; add the file or "
                                         "remove the entry")
        job_id = str(item.get("id") or "") if jobs else ""
        if caption.strip():
            videos.append(Video(name, video_path, caption, job_id))
    accounts = []
    if isinstance(data, dict) and isinstance(data.get("accounts"), list):
        accounts = [str(a.get("name")) for a in data["accounts"]
                    if isinstance(a, dict) and a.get("name")]
    return videos, accounts
