"""Error classification: every failure gets a category and a type.

`account` and `content` failures are never retried (retrying a suspended account or a broken video
only burns attempts and risks the account); `infrastructure` failures are retried up to
`max_attempts`; `unknown` ones up to two attempts. `outcome_unknown` (a crash after the post may have
gone public) is never retried automatically: a retry could double-post.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

ACCOUNT = "account"
CONTENT = "content"
INFRASTRUCTURE = "infrastructure"
UNKNOWN = "unknown"
CATEGORIES = (ACCOUNT, CONTENT, INFRASTRUCTURE, UNKNOWN)

UNKNOWN_MAX_ATTEMPTS = 2
OUTCOME_UNKNOWN = "outcome_unknown"
RATE_LIMITED = "rate_limited"

# Error types after which the run stops claiming: the service's balance is gone or a phone was
# deleted or expired, so every later job would fail the same way (engine/devices/geelark.py
# maps Geelark's codes onto them).
RUN_STOPPING_TYPES = frozenset({"geelark_balance", "phone_deleted", "phone_expired"})

# Error types whose failure means the account itself cannot post: the account turns BLOCKED.
BLOCKING_TYPES = frozenset({"suspended", "disabled", "verification", "logged_out", "banned"})


@dataclass(frozen=True)
class Classification:
    category: str
    error_type: str

    @property
    def retryable(self) -> bool:
        return self.category in (INFRASTRUCTURE, UNKNOWN) and self.error_type != OUTCOME_UNKNOWN


class PostError(Exception):
    """A failure raised by a phone backend. Backends that know the type say so; otherwise the
    message is classified."""

    def __init__(self, message: str, error_type: str | None = None, category: str | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.category = category


# Order matters: the first pattern that matches wins, most specific first.
_PATTERNS: list[tuple[str, str, str]] = [
    (ACCOUNT, "suspended", r"suspend"),
    (ACCOUNT, "disabled", r"disabled|deactivated"),
    (ACCOUNT, "banned", r"\bbann?ed\b|\bban\b"),
    (ACCOUNT, "verification", r"verif|checkpoint|challenge|confirm (it'?s|your) (you|identity)"),
    (ACCOUNT, "logged_out", r"logged.?out|log in again|login required|session expired"),
    (INFRASTRUCTURE, RATE_LIMITED, r"rate.?limit|too many requests|try again later|action blocked"),
    (CONTENT, "corrupted_video", r"corrupt|can'?t (be )?(processed|play)|invalid (video|media)"),
    (CONTENT, "unsupported_format", r"unsupported|format not supported"),
    (CONTENT, "video_missing", r"video (file )?(not found|missing)|no such file"),
    (CONTENT, "caption_rejected", r"caption (too long|rejected)|community guidelines|copyright"),
    (INFRASTRUCTURE, "app_update_required", r"update (the )?app|app update"),
    (INFRASTRUCTURE, "appium_crash", r"instrumentation process is not running|cannot be proxied"
                                      r"|uiautomator2? .*(crash|not running)|session not created"),
    (INFRASTRUCTURE, "appium_unreachable", r"appium|connection refused|max retries exceeded"),
    (INFRASTRUCTURE, "adb_timeout", r"adb.*(timeout|timed out)"),
    (INFRASTRUCTURE, "device_offline", r"device (offline|not found)|no devices|unauthorized"),
    (INFRASTRUCTURE, "phone_start_failed", r"phone .*(start|boot)|failed to start"),
    (INFRASTRUCTURE, "element_not_found", r"no such element|element not found|could not be located"),
    (INFRASTRUCTURE, "timeout", r"time.?out|timed out"),
    (INFRASTRUCTURE, "network", r"network|connection (reset|aborted|error)"),
]
_COMPILED = [(c, t, re.compile(p, re.IGNORECASE)) for c, t, p in _PATTERNS]


def classify(error: str | BaseException) -> Classification:
    """Classify a failure. A PostError that names its type keeps it; everything else is matched
    by message, falling back to `unknown`."""
    if isinstance(error, PostError) and error.error_type:
        return Classification(error.category or category_of(error.error_type), error.error_type)
    message = str(error)
    for category, error_type, pattern in _COMPILED:
        if pattern.search(message):
            return Classification(category, error_type)
    return Classification(UNKNOWN, "unknown")


def category_of(error_type: str) -> str:
    """The category a known error type belongs to (`unknown` when it is not one we know)."""
    if error_type == OUTCOME_UNKNOWN:
        return UNKNOWN
    for category, known_type, _ in _PATTERNS:
        if known_type == error_type:
            return category
    return UNKNOWN


def attempts_allowed(category: str, max_attempts: int) -> int:
    """How many attempts a job of this category may have in all."""
    if category == INFRASTRUCTURE:
        return max_attempts
    if category == UNKNOWN:
        return min(UNKNOWN_MAX_ATTEMPTS, max_attempts)
    return 1
