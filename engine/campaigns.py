"""Campaign folders: find, load and validate them.

A campaign is `campaigns/<name>/` with accounts.txt, captions.csv, videos/ and an optional
campaign.json. Loading checks everything an operator can get wrong and reports the first problem
with its file and line; nothing here writes.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from .problems import InputError, Remedy
from .settings import Settings, load_settings

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".m4v", ".webm", ".avi", ".mkv", ".3gp"})
ACCOUNTS_FILE = "accounts.txt"
CAPTIONS_FILE = "captions.csv"
VIDEOS_DIR = "videos"
SETTINGS_FILE = "campaign.json"


@dataclass(frozen=True)
class Account:
    name: str
    phone: str


@dataclass(frozen=True)
class Video:
    filename: str
    path: Path
    caption: str


@dataclass
class Campaign:
    name: str
    root: Path
    settings: Settings
    accounts: list[Account] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)

    @property
    def phones(self) -> list[str]:
        return list(dict.fromkeys(a.phone for a in self.accounts))


def video_name(video_path: str) -> str:
    """A video's file name from a path as any system wrote it: the earlier system's progress
    files hold Windows paths (C:\\Users\\...\\x.mp4). Videos are matched by this name, never by
    folder or absolute path, so renaming or moving a campaign folder keeps every match."""
    if "\\" in video_path:
        return PureWindowsPath(video_path).name
    return PurePosixPath(video_path).name


def read_text(path: Path, what: str) -> str:
    """UTF-8 with or without a BOM; a decoding problem names the line it is on."""
    if not path.exists():
        raise InputError(path, None, f"{what} is missing; create it (see docs/RUNBOOK.md)")
    if not path.is_file():
        raise InputError(path, None, f"{what} must be a file")
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(path, line, "is not UTF-8 text; save it as UTF-8") from None


def parse_accounts(path: Path) -> list[Account]:
    """`account` or `account,phone` per line; blank lines and # comments are ignored. Without a
    phone the phone is named like the account."""
    accounts: list[Account] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(read_text(path, "the accounts file").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        parts = [p.strip() for p in text.split(",")]
        if len(parts) > 2:
            raise InputError(path, number, f"has {len(parts)} fields; write 'account' or "
                                           "'account,phone'")
        name = parts[0]
        phone = parts[1] if len(parts) == 2 else name
        if not name or not phone:
            raise InputError(path, number, "has an empty account or phone name")
        if name in seen:
            raise InputError(path, number, f"account '{name}' is listed twice (first on line "
                                           f"{seen[name]}); remove one")
        seen[name] = number
        accounts.append(Account(name, phone))
    if not accounts:
        raise InputError(path, None, "lists no accounts; add one account per line")
    return accounts


def find_videos(videos_dir: Path, root: Path | None = None) -> dict[str, Path]:
    """Every video file below videos/, by file name. Two files with one name would give two jobs
    one job_id, so that is refused. Nothing outside the campaign folder `root` is ever pushed to
    a phone: a videos folder or a video that links outside it is refused."""
    if not videos_dir.is_dir():
        raise InputError(videos_dir, None, "the videos folder is missing; create it and put the "
                                           "videos in it")
    inside = (root or videos_dir).resolve()
    if not _inside(videos_dir.resolve(), inside):
        raise InputError(videos_dir, None, f"links to {videos_dir.resolve()}, outside the campaign "
                                           "folder; copy the videos into the campaign instead")
    found: dict[str, Path] = {}
    for path in sorted(videos_dir.rglob("*")):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        if not _inside(path.resolve(), inside):
            raise InputError(path, None, f"links to {path.resolve()}, outside the campaign folder; "
                                         "copy the video into the campaign instead")
        if path.name in found:
            raise InputError(path, None, f"has the same file name as {found[path.name]}; video "
                                         "file names must be unique in a campaign, rename one")
        found[path.name] = path
    return found


class VideoFinder:
    """Where a job's video is now. A progress row keeps the path it was seeded with, which may
    name the campaign's old folder (after a rename) or another machine (the earlier system's
    Windows paths): campaign mode looks the file name up in the campaign's videos; legacy mode
    takes the path relative to the working directory. A path outside the campaign (or working
    directory) is never returned, whatever the row says."""

    def __init__(self, root: Path, legacy: bool = False):
        self.root = Path(root).resolve()
        self.legacy = legacy
        self._index: dict[str, Path] | None = None

    def find(self, video_path: str) -> tuple[Path | None, str]:
        """(the file, '') or (None, why not)."""
        if self.legacy:
            path = Path(video_path)
            path = (path if path.is_absolute() else self.root / path).resolve()
            if not _inside(path, self.root):
                return None, f"{video_path} is outside the working directory {self.root}"
            return (path, "") if path.is_file() else (None, f"video file not found: {path}")
        name = video_name(video_path)
        for fresh in (False, True):
            if self._index is None or fresh:
                try:
                    self._index = find_videos(self.root / VIDEOS_DIR, self.root)
                except InputError as exc:
                    return None, str(exc)
            if name in self._index:
                return self._index[name], ""
        return None, f"video file not found: {name} is not in {self.root / VIDEOS_DIR}"


def parse_captions(path: Path, filename_column: str, caption_column: str,
                   videos: dict[str, Path]) -> list[Video]:
    text = read_text(path, "the captions file")
    # strict: a quote that is never closed must be an error, not a caption that silently
    # swallows every line after it (and posts them publicly).
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(path, 1, f"is empty; it needs a header with '{filename_column}' and "
                                  f"'{caption_column}'") from None
    except csv.Error as exc:
        raise InputError(path, 1, f"is not valid CSV ({exc}); check the quotes on this "
                                  "line") from None
    header = [h.strip() for h in header]
    for column in (filename_column, caption_column):
        if column not in header:
            raise InputError(path, 1, f"has no '{column}' column (found: {', '.join(header)}); "
                                      "rename the column or set filename_column/caption_column "
                                      "in campaign.json")
    fi, ci = header.index(filename_column), header.index(caption_column)
    out: list[Video] = []
    seen: dict[str, int] = {}
    line = reader.line_num + 1
    try:
        for row in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise InputError(path, start, f"has {len(row)} fields but the header has "
                                              f"{len(header)}; quote captions that hold commas")
            filename, caption = row[fi].strip(), row[ci]
            if not filename:
                raise InputError(path, start, f"has an empty '{filename_column}'")
            if filename in seen:
                raise InputError(path, start, f"captions '{filename}' again (first on line "
                                              f"{seen[filename]}); keep one caption per video")
            seen[filename] = start
            if filename not in videos:
                raise InputError(path, start, f"names video '{filename}', which is not in "
                                              "videos/; add the file or remove the line")
            if caption.strip():
                out.append(Video(filename, videos[filename], caption))
    except csv.Error as exc:
        # `line` is where the bad row starts (an open quote may run to the end of the file)
        raise InputError(path, line, f"is not valid CSV ({exc}); check the quotes "
                                     "on this line") from None
    return out


def load_campaign(root: Path, name: str | None = None) -> Campaign:
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, None, "is not a campaign folder")
    settings = load_settings(root / SETTINGS_FILE)
    accounts = parse_accounts(root / ACCOUNTS_FILE)
    videos = find_videos(root / VIDEOS_DIR, root)
    captioned = parse_captions(root / CAPTIONS_FILE, settings.filename_column,
                               settings.caption_column, videos)
    return Campaign(name or root.name, root, settings, accounts, captioned)


def resolve_campaign_dir(campaigns_dir: Path, name_or_path: str) -> Path:
    """A bare name lives in the campaigns folder and may not leave it (no '..', no symlink out);
    an absolute path is taken as given; a relative path must stay inside the campaigns folder.
    Either way the folder must be a campaign (it has accounts.txt) and not a folder inside one:
    a writing command must never plant progress files in some other folder."""
    base = Path(campaigns_dir).resolve()
    candidate = Path(name_or_path)
    if candidate.is_absolute():
        target = candidate
    elif len(candidate.parts) == 1 and candidate.name not in (".", ".."):
        target = base / candidate
        if not _inside(target.resolve(), base):
            raise InputError(None, None, f"campaign '{name_or_path}' points outside the campaigns "
                                         f"folder {base}; pass its absolute path instead")
    else:
        target = Path.cwd() / candidate
        if not _inside(target.resolve(), base):
            target = base / candidate
            if not _inside(target.resolve(), base):
                raise InputError(None, None, f"campaign '{name_or_path}' would leave the campaigns "
                                             f"folder {base}; use a campaign name, or an absolute "
                                             "path")
    if not target.is_dir():
        raise InputError(None, None, f"no campaign '{name_or_path}' in {base}",
                         remedies=(Remedy.LIST_CAMPAIGNS,))
    real = target.resolve()
    # A few levels up is enough to catch videos/ and its chunk folders; never past the
    # campaigns folder, whose own parents are none of our business.
    for parent in list(real.parents)[:4]:
        if parent == base or not parent.parent.name:
            break
        if (parent / ACCOUNTS_FILE).is_file():
            raise InputError(None, None, f"'{name_or_path}' is a folder inside the campaign "
                                         f"{parent}, not a campaign; name the campaign itself")
    if not (real / ACCOUNTS_FILE).exists():
        raise InputError(real / ACCOUNTS_FILE, None, f"is missing, so {real} is not a campaign "
                                                     "folder; create accounts.txt there (see "
                                                     "docs/RUNBOOK.md) or name another folder")
    return target


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def list_campaign_dirs(campaigns_dir: Path) -> list[Path]:
    base = Path(campaigns_dir)
    if not base.is_dir():
        raise InputError(base, None, "the campaigns folder does not exist; create it",
                         remedies=(Remedy.CAMPAIGNS_DIR,))
    return sorted(p for p in base.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / ACCOUNTS_FILE).exists())
