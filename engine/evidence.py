"""Evidence of failed attempts: what the phone showed when an attempt failed, kept for the operator.

Every failed (or unknown-outcome) attempt leaves a folder

    <campaign>/.postdeck/evidence/<job>/<attempt>/
        screen.png   the phone's last screen (the backend writes it, from its Appium session)
        page.xml     the app's view hierarchy at that moment (the backend too)
        step.txt     which flow step failed, the error and the time (the worker writes it)

`<job>` is the job id made safe as a folder name (`safe_name`), `<attempt>` the attempt number.
A backend's capture is best effort and bounded (`CAPTURE_SECONDS` in all); it never replaces the
attempt's own error. Folders older than `evidence_days` are removed by `prune` at run start, and
nothing outside `evidence/` is ever deleted.

The step that failed travels on the exception itself: the flow walker sets `postdeck_step` on
whatever a step raised (`annotate_step`), and `failed_step` finds it again, also when the session
layer wrapped that exception in a PostError of its own.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .durable import write_atomic

log = logging.getLogger("postdeck.evidence")

EVIDENCE_DIRNAME = "evidence"
SCREEN_FILE = "screen.png"
PAGE_FILE = "page.xml"
STEP_FILE = "step.txt"
CAPTURE_SECONDS = 10.0           # a backend's whole capture, screenshot and page source together
STEP_ATTR = "postdeck_step"      # the attribute the flow walker sets on a failing step's exception

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_NAME = 100                  # of the readable part; a hash follows when the id was changed
_DAY = 86_400.0


# --------------------------------------------------------------------------- where


def evidence_root(state_dir: Path) -> Path:
    """`.postdeck/evidence/` of a campaign (`state_dir` is its `.postdeck`)."""
    return Path(state_dir) / EVIDENCE_DIRNAME


def safe_name(job_id: str) -> str:
    """`job_id` as one folder name: kept as it is when it is plain (letters, digits, `._-`, not
    starting with a dot, not too long); otherwise the unsafe characters become `_` and a short
    hash of the whole id is added, so two different ids never share a folder and no id can name
    `..`, a path separator or a hidden file."""
    name = _UNSAFE.sub("_", job_id)
    if name == job_id and not name.startswith(".") and 0 < len(name) <= _MAX_NAME:
        return name
    digest = hashlib.sha256(job_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    readable = re.sub(r"^\.+", lambda m: "_" * len(m.group()), name)[:_MAX_NAME]
    return f"{readable}-{digest}" if readable else digest


def attempt_dir(state_dir: Path, job_id: str, attempt: int) -> Path:
    """The folder of one attempt's evidence (not created here: the backend creates it when it
    writes its files, `write_step` when it writes step.txt)."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ValueError(f"attempt must be a whole number >= 0, not {attempt!r}")
    return evidence_root(state_dir) / safe_name(job_id) / str(attempt)


# --------------------------------------------------------------------------- the failed step


def annotate_step(exc: BaseException, step: str) -> None:
    """Note on `exc` that it came from flow step `step`, unless an inner step already did."""
    if getattr(exc, STEP_ATTR, None):
        return
    try:
        setattr(exc, STEP_ATTR, step)
    except (AttributeError, TypeError):   # an exception type that takes no attributes
        pass


def failed_step(exc: BaseException) -> str | None:
    """The flow step an exception came from: its own annotation, else the one of the exception it
    was raised from or during (the session layer turns a driver error into a PostError)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        step = getattr(current, STEP_ATTR, None)
        if isinstance(step, str) and step:
            return step
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


# --------------------------------------------------------------------------- writing


def write_file(folder: Path, name: str, data: bytes) -> bool:
    """Write one evidence file atomically (creating the folder); False, logged, on OSError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / name, data, durable=False)
        return True
    except OSError as exc:
        log.warning("could not write evidence %s: %s", folder / name, exc)
        return False


def _fold(value: object) -> str:
    """One `key: value` value: continuation lines are indented by two spaces."""
    text = "" if value is None else str(value)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\n  ")


def write_step(folder: Path, *, step: str | None, error: str, at: str, job_id: str,
               account: str, phone: str, attempt: int) -> None:
    """Write `step.txt`: a few `key: value` lines (a multi-line error goes on indented lines).
    Atomic; never raises on OSError (the failure is logged)."""
    fields = (("job_id", job_id), ("attempt", attempt), ("account", account), ("phone", phone),
              ("step", step or ""), ("at", at), ("error", error))
    text = "".join(f"{key}: {_fold(value)}\n" for key, value in fields)
    write_file(Path(folder), STEP_FILE, text.encode("utf-8", "backslashreplace"))


def parse_step(text: str) -> dict[str, str]:
    """The fields of a step.txt (continuation lines joined back with newlines)."""
    fields: dict[str, str] = {}
    key = None
    for line in text.splitlines():
        if line.startswith("  ") and key is not None:
            fields[key] += "\n" + line[2:]
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            key = None
            continue
        key = name.strip()
        fields[key] = value[1:] if value.startswith(" ") else value
    return fields


# --------------------------------------------------------------------------- capturing


def _bounded(fetch: Callable[[], Any], seconds: float, what: str, about: str) -> tuple[bool, Any]:
    """Run `fetch` in a thread for at most `seconds`. (True, value) when it returned in time;
    (False, None) when it raised (logged) or is still running (logged, left behind: a daemon
    thread whose late result is dropped)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fetch()
        except BaseException as exc:  # noqa: BLE001 (reported below, never raised)
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"postdeck-evidence-{what.replace(' ', '-')}",
                              daemon=True)
    thread.start()
    thread.join(max(0.0, seconds))
    if thread.is_alive():
        log.warning("evidence%s: the %s did not return within %.1fs; left it running", about,
                    what, seconds)
        return False, None
    if "error" in box:
        exc = box["error"]
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("evidence%s: the %s failed: %s: %s", about, what, type(exc).__name__,
                    first[:300])
        return False, None
    return True, box.get("value")


def capture_driver(driver: Any, folder: Path, *, timeout: float = CAPTURE_SECONDS,
                   label: str | None = None) -> list[str]:
    """Save `driver`'s screenshot (screen.png) and page source (page.xml) into `folder`, within
    `timeout` seconds in all. Never raises: what could not be captured is logged and missing.
    Returns the names of the files written. `label` (the job id) goes into the log lines."""
    written: list[str] = []
    about = f" for {label}" if label else ""
    try:
        deadline = time.monotonic() + timeout
        wanted: tuple[tuple[str, str, Callable[[], Any]], ...] = (
            (SCREEN_FILE, "screenshot", lambda: driver.get_screenshot_as_png()),
            (PAGE_FILE, "page source", lambda: driver.page_source),
        )
        for name, what, fetch in wanted:
            left = deadline - time.monotonic()
            if left <= 0:
                log.warning("evidence%s: no time left for the %s (%gs in all)", about, what, timeout)
                break
            ok, value = _bounded(fetch, left, what, about)
            if not ok:
                continue
            if isinstance(value, str):
                value = value.encode("utf-8", "backslashreplace")
            if not isinstance(value, (bytes, bytearray)):
                log.warning("evidence%s: the %s is a %s, not data; not saved", about, what,
                            type(value).__name__)
                continue
            if write_file(Path(folder), name, bytes(value)):
                written.append(name)
        if written:
            log.info("evidence%s: saved %s in %s", about, ", ".join(written), folder)
    except Exception as exc:  # noqa: BLE001 (evidence never replaces the attempt's own error)
        log.warning("evidence%s: capture failed: %s: %s", about, type(exc).__name__, exc)
    return written


def png_from_rgb(width: int, height: int, rgb: bytes) -> bytes:
    """A PNG of `width` x `height` pixels from raw RGB bytes (3 per pixel, rows top to bottom),
    encoded by PyAV's png encoder."""
    import av  # imported here: only the simulated backend draws pictures

    row = width * 3
    if len(rgb) != row * height:
        raise ValueError(f"{width}x{height} RGB needs {row * height} bytes, not {len(rgb)}")
    frame = av.VideoFrame(width, height, "rgb24")
    plane = frame.planes[0]
    if plane.line_size != row:   # FFmpeg pads each row to its alignment
        rgb = b"".join(rgb[y * row:(y + 1) * row].ljust(plane.line_size, b"\0") for y in range(height))
    plane.update(rgb)
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "rgb24"
    packets = codec.encode(frame) + codec.encode(None)
    return b"".join(bytes(p) for p in packets)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Attempt:
    attempt: int
    folder: Path
    files: list[str]
    step: str | None
    error: str | None
    at: str | None


def _is_attempt_name(name: str) -> bool:
    return name.isascii() and name.isdigit()


def read_evidence(state_dir: Path, job_id: str) -> list[Attempt]:
    """The evidence kept for a job, by attempt number. Never raises on OSError (what cannot be
    read is left out)."""
    job_folder = evidence_root(state_dir) / safe_name(job_id)
    try:
        entries = [e for e in os.scandir(job_folder)
                   if _is_attempt_name(e.name) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []
    attempts = []
    for entry in entries:
        folder = Path(entry.path)
        try:
            files = sorted(f.name for f in os.scandir(folder)
                           if not f.name.startswith(".") and f.is_file(follow_symlinks=False))
        except OSError as exc:
            log.warning("could not read evidence folder %s: %s", folder, exc)
            continue
        fields: dict[str, str] = {}
        if STEP_FILE in files:
            try:
                fields = parse_step((folder / STEP_FILE).read_text(encoding="utf-8", errors="replace"))
            except OSError as exc:
                log.warning("could not read %s: %s", folder / STEP_FILE, exc)
        attempts.append(Attempt(attempt=int(entry.name), folder=folder, files=files,
                                step=fields.get("step") or None, error=fields.get("error") or None,
                                at=fields.get("at") or None))
    return sorted(attempts, key=lambda a: a.attempt)


# --------------------------------------------------------------------------- pruning


def _newest_mtime(folder: str) -> float:
    """The newest modification time of the files under `folder` (symlinks are not followed; their
    own time counts); the folder's own when it holds no file."""
    newest: float | None = None
    stack = [folder]
    while stack:
        current = stack.pop()
        with os.scandir(current) as it:
            for entry in it:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(info.st_mode):
                    stack.append(entry.path)
                else:
                    newest = info.st_mtime if newest is None else max(newest, info.st_mtime)
    return newest if newest is not None else os.lstat(folder).st_mtime


def prune(state_dir: Path, days: int, now: float) -> int:
    """Remove the attempt folders under `.postdeck/evidence/` whose newest file is older than
    `days` days at `now` (a time.time() value), then the job folders that leaves empty. Nothing
    else is touched: not files or other folders in there, not what a symlink points to (a symlink
    is never followed, nor removed unless it sits inside an old attempt folder). Returns how many
    attempt folders were removed; problems are logged, never raised."""
    root = evidence_root(state_dir)
    try:
        if root.is_symlink():
            log.warning("%s is a symlink; evidence there is never pruned", root)
            return 0
        if not root.is_dir():
            return 0
        jobs = [e.path for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError as exc:
        log.warning("could not list %s: %s", root, exc)
        return 0
    cutoff = now - days * _DAY
    removed = 0
    for job in jobs:
        emptied = False
        try:
            attempts = [e.path for e in os.scandir(job)
                        if _is_attempt_name(e.name) and e.is_dir(follow_symlinks=False)]
        except OSError as exc:
            log.warning("could not list %s: %s", job, exc)
            continue
        for folder in attempts:
            try:
                if _newest_mtime(folder) >= cutoff:
                    continue
                if os.path.islink(folder):    # replaced by a symlink since it was listed
                    continue
                shutil.rmtree(folder)         # removes symlinks inside, never their targets
                removed += 1
                emptied = True
            except OSError as exc:
                log.warning("could not prune evidence %s: %s", folder, exc)
        if emptied:
            try:
                os.rmdir(job)                 # only when nothing is left in it
            except OSError:
                pass
    if removed:
        log.info("pruned %d evidence folder(s) older than %d day(s) from %s", removed, days, root)
    return removed
