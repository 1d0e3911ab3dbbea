"""Campaign folders: find, load and validate them.

A campaign is `campaigns/<name>/` with accounts.txt, captions.csv, videos/ and an optional
campaign.json. Loading checks everything an operator can get wrong and reports the first problem
with its file and line; nothing here writes.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

from .problems import InputError, Remedy, decode_utf8, read_input
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
    job_id: str = ""      # the earlier system's job id, kept when its scheduler state names one


@dataclass
class Campaign:
    name: str
    root: Path
    settings: Settings
    accounts: list[Account] = field(default_factory=list)
    videos: list[Video] = field(default_factory=list)
    captions_without_video: int = 0     # captions whose video is not on disk (yet)

    @property
    def phones(self) -> list[str]:
        return list(dict.fromkeys(a.phone for a in self.accounts))


def video_name(video_path: str) -> str:
    """A video's file name from a path as any system wrote it: the earlier system's progress
    files hold Windows paths (C:\\Users\\...\\x.mp4). Videos are matched by this name, never by
    folder or absolute path, so renaming or moving a campaign folder keeps every match."""
    # string work, not PurePath: this runs for candidate rows on the claim's hot path
    name = video_path.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    if len(name) > 2 and name[1] == ":" and name[0].isalpha():
        name = name[2:]          # a Windows drive-relative path, C:x.mp4
    return name


def read_text(path: Path, what: str) -> str:
    """UTF-8 with or without a BOM; a decoding problem names the line it is on."""
    raw = read_input(path, what)
    if raw is None:
        raise InputError(path, None, f"{what} is missing; create it (see docs/RUNBOOK.md)")
    return decode_utf8(path, raw)


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

    def __init__(self, root: Path, legacy: bool = False, videos_dir: Path | None = None):
        self.root = Path(root).resolve()
        self.legacy = legacy
        self.videos_dir = Path(videos_dir) if videos_dir else self.root / VIDEOS_DIR
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
                    self._index = find_videos(self.videos_dir, self.root)
                except InputError as exc:
                    return None, str(exc)
            if name in self._index:
                return self._index[name], ""
        return None, f"video file not found: {name} is not in {self.videos_dir}"


SHORTCODE_COLUMNS = ("Image/Video link 1 (shortcode)", "Text")
# The captions formats the earlier system used, tried in this order when campaign.json names no
# columns of its own: (the column naming the video, the caption column).
KNOWN_FORMATS = (("filename", "post_caption"), ("filename", "caption"), SHORTCODE_COLUMNS)
_SHORTCODE_URL = re.compile(r"/(?:p|reel|reels|tv)/([A-Za-z0-9_-]+)")
_NUMBERED = re.compile(r"^(.+)-\d+$")


def caption_columns(header: list[str], filename_column: str,
                    caption_column: str) -> tuple[str, str]:
    """The columns to read: the configured ones when the header has them; with the default
    configuration, the first of the earlier system's formats the header matches."""
    if filename_column in header and caption_column in header:
        return filename_column, caption_column
    defaults = Settings()
    if (filename_column, caption_column) == (defaults.filename_column, defaults.caption_column):
        for columns in KNOWN_FORMATS:
            if all(c in header for c in columns):
                return columns
    missing = next(c for c in (filename_column, caption_column) if c not in header)
    raise InputError(None, 1, f"has no '{missing}' column (found: {', '.join(header)}); "
                              "rename the column or set filename_column/caption_column "
                              "in campaign.json")


def shortcode_of(value: str) -> str:
    """The post's shortcode from a shortcode or a link to the post."""
    m = _SHORTCODE_URL.search(value)
    return m.group(1) if m else value.strip().strip("/")


def parse_captions(path: Path, filename_column: str, caption_column: str,
                   videos: dict[str, Path]) -> tuple[list[Video], int]:
    """The captioned videos, and how many captions name a video that is not on disk (the
    earlier system's captions list far more posts than there are videos: those are skipped,
    counted, and seeded once their video arrives)."""
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
    header = [h.strip().lstrip("\ufeff") for h in header]
    try:
        key_column, text_column = caption_columns(header, filename_column, caption_column)
    except InputError as exc:
        raise InputError(path, 1, exc.message) from None
    shortcodes = (key_column, text_column) == SHORTCODE_COLUMNS
    fi, ci = header.index(key_column), header.index(text_column)
    captions: dict[str, str] = {}
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
            key, caption = row[fi].strip(), row[ci]
            if shortcodes:
                key = shortcode_of(key)
            if not key:
                raise InputError(path, start, f"has an empty '{key_column}'")
            if key in seen:
                raise InputError(path, start, f"captions '{key}' again (first on line "
                                              f"{seen[key]}); keep one caption per video")
            seen[key] = start
            captions[key] = caption
    except csv.Error as exc:
        # `line` is where the bad row starts (an open quote may run to the end of the file)
        raise InputError(path, line, f"is not valid CSV ({exc}); check the quotes "
                                     "on this line") from None
    out: list[Video] = []
    used: set[str] = set()
    for name, video in videos.items():
        key = _caption_key(name, captions) if shortcodes else (name if name in captions else None)
        if key is None:
            continue
        used.add(key)
        if captions[key].strip():
            out.append(Video(name, video, captions[key]))
    if not shortcodes:   # in the file's order, as the queue has always been
        order = {k: i for i, k in enumerate(captions)}
        out.sort(key=lambda v: order[v.filename])
    return out, len(captions) - len(used)


def _caption_key(filename: str, captions: dict[str, str]) -> str | None:
    """A shortcode-format video's caption: SHORTCODE.mp4 or SHORTCODE-2.mp4 takes the caption
    of SHORTCODE (one post, several clips)."""
    stem = Path(filename).stem
    if stem in captions:
        return stem
    m = _NUMBERED.match(stem)
    return m.group(1) if m and m.group(1) in captions else None


def load_campaign(root: Path, name: str | None = None) -> Campaign:
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, None, "is not a campaign folder")
    settings = load_settings(root / SETTINGS_FILE)
    accounts = parse_accounts(root / ACCOUNTS_FILE)
    videos = find_videos(videos_dir_of(root, settings), root)
    captioned, missing = parse_captions(root / CAPTIONS_FILE, settings.filename_column,
                                        settings.caption_column, videos)
    return Campaign(name or root.name, root, settings, accounts, captioned, missing)


def videos_dir_of(root: Path, settings: Settings) -> Path:
    """campaign.json's videos_dir; else videos/; else, as the earlier system did, the first
    subfolder (by name) that holds a video anywhere below it."""
    if settings.videos_dir:
        return root / settings.videos_dir
    default = root / VIDEOS_DIR
    if default.exists():
        return default
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return default
    for folder in folders:
        if any(p.suffix.lower() in VIDEO_SUFFIXES for p in folder.rglob("*")):
            return folder
    return default


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
