"""Campaign settings: the one place that knows the keys of campaign.json, their defaults and their
valid values. Everything else reads a `Settings` object and never repeats a default."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .problems import InputError, decode_utf8, read_input

BACKENDS = ("simulated", "geelark", "adb", "geelark-task")
DAILY_LIMIT_MIN, DAILY_LIMIT_MAX = 1, 4
# Upper bounds for the numeric settings. Nothing sane is near them, and without them a typo such as
# 1e10 minutes passes here and crashes later, mid-run, in date arithmetic.
MAX_ATTEMPTS = 100                 # max_attempts, cooldown_after_consecutive
MAX_COOLDOWN_MINUTES = 7 * 24 * 60  # 10080: a week
MAX_SECONDS = 24 * 60 * 60         # 86400: a day; rate_limit_steps items, simulation timings
MAX_SEED = 2 ** 32 - 1
MAX_DIGITS = 20                    # longer whole numbers are no setting's value (and Python
                                   # refuses to convert past 4300 digits)
MAX_NESTING = 32                   # campaign.json needs 3 levels; capabilities a few more
MAX_EVIDENCE_DAYS = 3650
# What `notify.events` may name; the default is all of them.
NOTIFY_EVENTS = ("run_started", "run_ended", "account_blocked", "outcome_unknown",
                 "worker_crashed", "phone_failed", "run_blocked")
_WINDOW = re.compile(r"^\s*([01]\d|2[0-3]):([0-5]\d)\s*-\s*([01]\d|2[0-3]|24):([0-5]\d)\s*$")


@dataclass(frozen=True)
class Simulation:
    boot_seconds: float = 1.0
    post_seconds: float = 3.0
    failure_rate: float = 0.1
    seed: int = 1
    failures: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Notify:
    """Where alerts go: a command that reads one JSON object per event on stdin, and/or a URL
    that gets it as a POST. The URL may carry a token, so it is never logged whole."""
    command: tuple[str, ...] = ()
    webhook: str = ""
    events: tuple[str, ...] = NOTIFY_EVENTS

    def __repr__(self) -> str:   # a Settings repr must never carry the webhook's token
        return (f"Notify(command={self.command!r}, webhook={'<set>' if self.webhook else ''!r}, "
                f"events={self.events!r})")


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    max_posts_per_account_per_day: int = 1
    backend: str = "simulated"
    filename_column: str = "filename"
    caption_column: str = "post_caption"
    timezone: str = "UTC"
    max_attempts: int = 3
    cooldown_after_consecutive: int = 3
    cooldown_minutes: float = 45
    rate_limit_steps: tuple[int, ...] = (60, 120, 300, 600)
    simulation: Simulation = field(default_factory=Simulation)
    flow: str = "instagram_reel"                 # a flow in engine/flows/, or a path to one
    videos_dir: str = ""     # relative to the campaign folder; "" = videos/, else the first
                             # subfolder with videos (the earlier system's rule)
    appium_capabilities: dict = field(default_factory=dict)   # added to UiAutomator2's
    # Money and pacing (docs/RUNBOOK.md, "Phones, pacing and alerts").
    keep_phone_on_seconds: float = 0     # keep a phone on when its next job starts this soon
    posting_window: str = ""             # "09:00-23:30" in `timezone`; "" = any time
    min_gap_seconds: float = 0           # from the end of a post to the next claim on that phone
    jitter_seconds: float = 0            # a random extra wait of 0..N before each claim
    stagger_seconds: float = 0           # between worker starts
    evidence_days: int = 14              # failure evidence older than this is pruned
    check_videos: bool | None = None     # None: on for real backends, off for the simulated one
    notify: Notify | None = None
    task_poll_seconds: float = 15        # geelark-task: how often a running task is asked about
    lease_seconds: float = 30            # a worker silent this long is given up on (its claims
                                         # recovered; on a shared store, by any host)

    @property
    def daily_limit(self) -> int:
        return self.max_posts_per_account_per_day

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def videos_checked(self, backend: str) -> bool:
        """Whether a video is probed before a phone starts: always with a real backend, with
        the simulated one only when asked (its demo files are tiny but real)."""
        if self.check_videos is not None:
            return self.check_videos
        return backend != "simulated"


def validate_daily_limit(value: object, where: str = "max_posts_per_account_per_day") -> int:
    """The daily limit is an integer 1-4. Booleans are refused although Python counts them as ints:
    `true` in a JSON file is a typo, not a limit of 1."""
    if isinstance(value, bool) or not isinstance(value, int) or not (
            DAILY_LIMIT_MIN <= value <= DAILY_LIMIT_MAX):
        raise ValueError(f"{where} must be a whole number from {DAILY_LIMIT_MIN} to "
                         f"{DAILY_LIMIT_MAX}, not {value!r}")
    return value


def _line_of_key(text: str, key: str) -> int:
    m = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


def _number(value: object, *, minimum: float, maximum: float, integer: bool = False) -> bool:
    """A JSON number within [minimum, maximum]. Unusable numbers (Infinity, NaN, 5,000 digits)
    arrive as `_Unusable` markers, not numbers, so they fail here with the key's own message."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if integer and not isinstance(value, int):
        return False
    return minimum <= value <= maximum


class _Unusable:
    """A number json accepts but no setting can use: Infinity, NaN, 1e999 (a float overflow) or a
    whole number of more than MAX_DIGITS digits (at 5,000 json itself fails, with a ValueError that
    names no line). Parsing keeps it as this marker, so the check of its key refuses it with that
    key's line and range; its repr says what it was."""

    def __init__(self, what: str):
        self.what = what

    def __repr__(self) -> str:
        return self.what


def _parse_int(token: str) -> int | _Unusable:
    digits = len(token.lstrip("-"))
    if digits > MAX_DIGITS:
        return _Unusable(f"a {digits}-digit number")
    return int(token)


def _parse_float(token: str) -> float | _Unusable:
    value = float(token)
    if not math.isfinite(value):
        return _Unusable(f"{token[:12]}{'...' if len(token) > 12 else ''} (too large to be a number)")
    return value


def _parse_constant(token: str) -> _Unusable:
    return _Unusable(f"{token} (not a finite number)")   # Infinity, -Infinity, NaN


def _first_unusable(data: dict) -> tuple[str, _Unusable] | None:
    """The first marker anywhere in the parsed file, with the nearest key above it: the net under
    the key checks, for values none of them looks into (appium_capabilities)."""
    stack: list[tuple[str, object]] = [(k, v) for k, v in reversed(list(data.items()))]
    while stack:
        key, value = stack.pop()
        if isinstance(value, _Unusable):
            return key, value
        if isinstance(value, dict):
            stack.extend((k, v) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((key, v) for v in reversed(value))
    return None


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _line_too_deep(text: str) -> int | None:
    """The line where brackets first nest deeper than MAX_NESTING (strings skipped), or None."""
    depth = 0
    for m in _JSON_TOKENS.finditer(text):
        token = m.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_NESTING:
                return text.count("\n", 0, m.start()) + 1
        elif token in ("]", "}"):
            depth -= 1
    return None


def load_settings(path: Path) -> Settings:
    """Read campaign.json (all keys optional). A missing file means all defaults."""
    text = _read_text(path)
    if text is None:
        return Settings()
    data = _parse(path, text)

    def bad(key: str, why: str) -> InputError:
        return InputError(path, _line_of_key(text, key), f"key '{key}': {why}")

    known = {f.name for f in fields(Settings)}
    values: dict[str, object] = {}
    for key, value in data.items():
        if key not in known:
            raise bad(key, f"unknown key; the known keys are {', '.join(sorted(known))}")
        if key == "enabled":
            if not isinstance(value, bool):
                raise bad(key, "must be true or false")
        elif key == "max_posts_per_account_per_day":
            try:
                validate_daily_limit(value, "the value")
            except ValueError as exc:
                raise bad(key, str(exc)) from None
        elif key == "backend":
            if value not in BACKENDS:
                raise bad(key, f"must be one of {', '.join(BACKENDS)}, not {value!r}")
        elif key in ("filename_column", "caption_column"):
            if not isinstance(value, str) or not value.strip():
                raise bad(key, "must be a column name")
        elif key == "timezone":
            try:
                ZoneInfo(str(value))
            except (ZoneInfoNotFoundError, ValueError):
                raise bad(key, f"{value!r} is not a time zone name like 'Europe/Berlin'") from None
        elif key in ("max_attempts", "cooldown_after_consecutive"):
            if not _number(value, minimum=1, maximum=MAX_ATTEMPTS, integer=True):
                raise bad(key, f"must be a whole number of at least 1 and at most {MAX_ATTEMPTS}, "
                               f"not {value!r}")
        elif key == "cooldown_minutes":
            if not _number(value, minimum=0, maximum=MAX_COOLDOWN_MINUTES):
                raise bad(key, f"must be a number of minutes, 0 or more and at most "
                               f"{MAX_COOLDOWN_MINUTES} (7 days), not {value!r}")
        elif key == "rate_limit_steps":
            if (not isinstance(value, list) or not value
                    or not all(_number(v, minimum=1, maximum=MAX_SECONDS, integer=True)
                               for v in value)):
                raise bad(key, f"must be a non-empty list of whole seconds, each from 1 to "
                               f"{MAX_SECONDS} (a day), like [60, 120, 300]")
            value = tuple(value)
        elif key == "simulation":
            value = _simulation(value, bad)
        elif key == "flow":
            if not isinstance(value, str) or not value.strip():
                raise bad(key, "must name a flow, like \"instagram_reel\"")
        elif key == "videos_dir":
            if (not isinstance(value, str) or not value.strip() or Path(value).is_absolute()
                    or ".." in Path(value).parts):
                raise bad(key, "must be a folder inside the campaign folder, like "
                               "\"videos/chunk_01\" (no absolute path, no ..)")
        elif key == "appium_capabilities":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise bad(key, 'must be an object of capabilities, like {"appium:noReset": true}')
        elif key in ("keep_phone_on_seconds", "min_gap_seconds", "jitter_seconds",
                     "stagger_seconds"):
            if not _number(value, minimum=0, maximum=MAX_SECONDS):
                raise bad(key, f"must be a number of seconds, 0 or more and at most "
                               f"{MAX_SECONDS} (a day), not {value!r}")
        elif key == "task_poll_seconds":
            if not _number(value, minimum=0.05, maximum=600):
                raise bad(key, f"must be a number of seconds from 0.05 to 600, not {value!r}")
        elif key == "lease_seconds":
            # above a few heartbeats (2 s each), so one slow beat does not lose a claim
            if not _number(value, minimum=6, maximum=600):
                raise bad(key, f"must be a number of seconds from 6 to 600, not {value!r}")
        elif key == "posting_window":
            if not isinstance(value, str) or (value.strip() and not window_bounds(value)):
                raise bad(key, 'must be a time range in the campaign\'s time zone, like '
                               '"09:00-23:30" (it may wrap past midnight: "20:00-02:00"), '
                               f'or "" for any time; not {value!r}')
        elif key == "evidence_days":
            if not _number(value, minimum=1, maximum=MAX_EVIDENCE_DAYS, integer=True):
                raise bad(key, f"must be a whole number of days from 1 to {MAX_EVIDENCE_DAYS}, "
                               f"not {value!r}")
        elif key == "check_videos":
            if not isinstance(value, bool):
                raise bad(key, "must be true or false")
        elif key == "notify":
            value = _notify(value, bad)
        values[key] = value
    unusable = _first_unusable(data)
    if unusable:
        key, marker = unusable
        raise bad(key, f"holds {marker!r}, which postdeck cannot use; write a plain number")
    return Settings(**values)  # type: ignore[arg-type]


def _read_text(path: Path) -> str | None:
    """The file's text, or None when there is no file (all defaults). A folder, a pipe or a link to
    nothing in its place is refused: silently running on defaults would post with the wrong
    backend or limits."""
    if path.is_symlink() and not path.exists():
        raise InputError(path, None, "is a link that leads nowhere (its target does not exist); "
                                     "fix the link, or remove it for all defaults")
    raw = read_input(path, "campaign.json (no file means all defaults)")
    if raw is None:
        return None
    text = decode_utf8(path, raw)
    if not text.strip():
        raise InputError(path, 1, "is empty; write {} for all defaults or remove the file")
    return text


def _parse(path: Path, text: str) -> dict:
    """One JSON object. Numbers no setting can use become `_Unusable` markers (refused later with
    their key's line); nesting deeper than MAX_NESTING is refused here, also when it is so deep
    that json itself gives up with a RecursionError."""
    too_deep = False
    try:
        data = json.loads(text, parse_int=_parse_int, parse_float=_parse_float,
                          parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, f"is not valid JSON ({exc.msg}); fix the syntax") from None
    except RecursionError:
        too_deep, data = True, None
    except ValueError as exc:   # anything else json refuses: still one message, not a traceback
        raise InputError(path, 1, f"is not valid JSON ({exc}); fix it") from None
    line = _line_too_deep(text) or (1 if too_deep else None)
    if line:
        raise InputError(path, line, f"nests [ and {{ more than {MAX_NESTING} levels deep; "
                                     "campaign.json needs only a few, like {\"simulation\": "
                                     "{\"failures\": {...}}}; remove the extra brackets")
    if not isinstance(data, dict):
        raise InputError(path, 1, "must hold one JSON object, like {\"enabled\": true}")
    return data


def window_bounds(text: str) -> tuple[int, int] | None:
    """A posting window "HH:MM-HH:MM" as (start, end) minutes after midnight, or None when the
    text is not one. "24:00" may end a window; a start equal to its end is refused (it would
    mean never, or always, and the operator should say which)."""
    m = _WINDOW.match(text)
    if not m:
        return None
    start = int(m.group(1)) * 60 + int(m.group(2))
    end = int(m.group(3)) * 60 + int(m.group(4))
    if end > 24 * 60 or start == end:
        return None
    return start, end


def _notify(value: object, bad) -> Notify:
    if not isinstance(value, dict):
        raise bad("notify", 'must be an object like {"command": ["notify-send", "postdeck"], '
                            '"events": ["account_blocked"]}')
    unknown = set(value) - {"command", "webhook", "events"}
    if unknown:
        raise bad(sorted(unknown)[0], "unknown key in 'notify'; the known keys are command, "
                                      "events, webhook")
    command = value.get("command", [])
    if not isinstance(command, list) or not all(isinstance(c, str) and c for c in command):
        raise bad("command", 'must be a list of a program and its arguments, like '
                             '["/usr/local/bin/alert", "--team", "ops"]')
    webhook = value.get("webhook", "")
    if not isinstance(webhook, str) or (webhook and not re.match(r"^https?://[^\s/]+", webhook)):
        raise bad("webhook", "must be an http:// or https:// address")
    if not command and not webhook:
        raise bad("notify", "needs a command, a webhook or both")
    events = value.get("events", list(NOTIFY_EVENTS))
    if (not isinstance(events, list) or not events
            or not all(isinstance(e, str) and e in NOTIFY_EVENTS for e in events)):
        raise bad("events", f"must be a list of events, each one of {', '.join(NOTIFY_EVENTS)}")
    return Notify(tuple(command), webhook, tuple(dict.fromkeys(events)))


def _simulation(value: object, bad) -> Simulation:
    if not isinstance(value, dict):
        raise bad("simulation", "must be an object")
    known = {f.name for f in fields(Simulation)}
    out: dict[str, object] = {}
    for key, v in value.items():
        if key not in known:
            raise bad(key, f"unknown key in 'simulation'; the known keys are {', '.join(sorted(known))}")
        if key in ("boot_seconds", "post_seconds") and not _number(v, minimum=0,
                                                                   maximum=MAX_SECONDS):
            raise bad(key, f"must be a number of seconds, 0 or more and at most {MAX_SECONDS} "
                           f"(a day), not {v!r}")
        if key == "failure_rate" and not _number(v, minimum=0, maximum=1):
            raise bad(key, f"must be a number from 0 to 1, not {v!r}")
        if key == "seed" and not _number(v, minimum=0, maximum=MAX_SEED, integer=True):
            raise bad(key, f"must be a whole number from 0 to {MAX_SEED}, not {v!r}")
        if key == "failures" and not (isinstance(v, dict) and all(
                isinstance(a, str) and isinstance(m, str) for a, m in v.items())):
            raise bad(key, "must map account names to error messages")
        out[key] = v
    return Simulation(**out)  # type: ignore[arg-type]
