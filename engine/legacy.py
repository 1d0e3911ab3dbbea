"""Legacy mode: the earlier system's `scheduler_state.json` in the working directory.

Its format, as postdeck reads it: either a list of videos or an object with a "videos" list; each
video is an object with "video_path" (or "path"/"filename") and "caption". Paths are relative to
the working directory. Videos without a caption are left out, as in campaign mode.
"""
from __future__ import annotations

import json
from pathlib import Path

from .campaigns import Video, read_text
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


def load_scheduler_state(path: Path) -> list[Video]:
    text = read_text(path, "the scheduler state file")
    if not text.strip():
        raise InputError(path, 1, 'is empty; write {"videos": []} for no videos')
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, f"is not valid JSON ({exc.msg}); fix the syntax") from None
    items = data.get("videos") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(path, 1, 'must be a list of videos or an object with a "videos" list')
    base = path.parent
    videos: list[Video] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        line = _line_of_index(text, i)
        if not isinstance(item, dict):
            raise InputError(path, line, f"video #{i + 1} must be an object with video_path and "
                                         "caption")
        raw = item.get("video_path") or item.get("path") or item.get("filename")
        caption = item.get("caption", "")
        if not isinstance(raw, str) or not raw.strip():
            raise InputError(path, line, f"video #{i + 1} has no video_path")
        if not isinstance(caption, str):
            raise InputError(path, line, f"video #{i + 1} has a caption that is not text")
        video_path = (base / raw).resolve() if not Path(raw).is_absolute() else Path(raw).resolve()
        if base.resolve() not in video_path.parents:
            raise InputError(path, line, f"video #{i + 1} ({raw}) is outside the working "
                                         f"directory {base.resolve()}; postdeck only posts videos "
                                         "that are inside it")
        name = video_path.name
        if name in seen:
            raise InputError(path, line, f"video '{name}' is listed twice (first as video "
                                         f"#{seen[name]}); keep one")
        seen[name] = i + 1
        if not video_path.is_file():
            raise InputError(path, line, f"video #{i + 1} ({raw}) does not exist; add the file or "
                                         "remove the entry")
        if caption.strip():
            videos.append(Video(name, video_path, caption))
    return videos
