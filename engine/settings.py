"""Campaign settings: the one place that knows the keys of campaign.json, their defaults and their
valid values. Everything else reads a `Settings` object and never repeats a default."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .problems import InputError

BACKENDS = ("simulated", "geelark", "adb")
DAILY_LIMIT_MIN, DAILY_LIMIT_MAX = 1, 4


@dataclass(frozen=True)
class Simulation:
    boot_seconds: float = 1.0
    post_seconds: float = 3.0
    failure_rate: float = 0.1
    seed: int = 1
    failures: dict[str, str] = field(default_factory=dict)


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
    appium_capabilities: dict = field(default_factory=dict)   # added to UiAutomator2's

    @property
    def daily_limit(self) -> int:
        return self.max_posts_per_account_per_day

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


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


def _number(value: object, *, minimum: float, integer: bool = False) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if integer and not isinstance(value, int):
        return False
    return value >= minimum


def load_settings(path: Path) -> Settings:
    """Read campaign.json (all keys optional). A missing file means all defaults."""
    if not path.exists():
        return Settings()
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(path, line, "is not UTF-8 text; save it as UTF-8") from None
    if not text.strip():
        raise InputError(path, 1, "is empty; write {} for all defaults or remove the file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, f"is not valid JSON ({exc.msg}); fix the syntax") from None
    if not isinstance(data, dict):
        raise InputError(path, 1, "must hold one JSON object, like {\"enabled\": true}")

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
            if not _number(value, minimum=1, integer=True):
                raise bad(key, f"must be a whole number of at least 1, not {value!r}")
        elif key == "cooldown_minutes":
            if not _number(value, minimum=0):
                raise bad(key, f"must be a number of minutes, 0 or more, not {value!r}")
        elif key == "rate_limit_steps":
            if (not isinstance(value, list) or not value
                    or not all(_number(v, minimum=1, integer=True) for v in value)):
                raise bad(key, "must be a non-empty list of whole seconds, like [60, 120, 300]")
            value = tuple(value)
        elif key == "simulation":
            value = _simulation(value, bad)
        elif key == "flow":
            if not isinstance(value, str) or not value.strip():
                raise bad(key, "must name a flow, like \"instagram_reel\"")
        elif key == "appium_capabilities":
            if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
                raise bad(key, 'must be an object of capabilities, like {"appium:noReset": true}')
        values[key] = value
    return Settings(**values)  # type: ignore[arg-type]


def _simulation(value: object, bad) -> Simulation:
    if not isinstance(value, dict):
        raise bad("simulation", "must be an object")
    known = {f.name for f in fields(Simulation)}
    out: dict[str, object] = {}
    for key, v in value.items():
        if key not in known:
            raise bad(key, f"unknown key in 'simulation'; the known keys are {', '.join(sorted(known))}")
        if key in ("boot_seconds", "post_seconds") and not _number(v, minimum=0):
            raise bad(key, f"must be a number of seconds, 0 or more, not {v!r}")
        if key == "failure_rate" and not (_number(v, minimum=0) and v <= 1):
            raise bad(key, f"must be a number from 0 to 1, not {v!r}")
        if key == "seed" and not _number(v, minimum=0, integer=True):
            raise bad(key, f"must be a whole number, not {v!r}")
        if key == "failures" and not (isinstance(v, dict) and all(
                isinstance(a, str) and isinstance(m, str) for a, m in v.items())):
            raise bad(key, "must map account names to error messages")
        out[key] = v
    return Simulation(**out)  # type: ignore[arg-type]
