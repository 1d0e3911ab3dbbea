"""The progress file's columns and statuses. The first 17 columns are the earlier system's, in
its order, so its files load unchanged; files with only the first 9 load too."""
from __future__ import annotations

from enum import StrEnum

COLUMNS = (
    "job_id", "account", "video_path", "caption", "status", "worker_id", "claimed_at",
    "completed_at", "error", "attempts", "max_attempts", "retry_at", "error_type",
    "error_category", "pass_number", "run_id", "video_id", "phone_id", "phase", "claim_id",
    "task_id",
)
# Older files load unchanged (padded): the earlier system's 9 and 17 columns, and postdeck's 20
# before remote tasks (task_id) were added.
ACCEPTED_HEADERS = (COLUMNS, COLUMNS[:20], COLUMNS[:17], COLUMNS[:9])
WIDTH = len(COLUMNS)

(JOB_ID, ACCOUNT, VIDEO_PATH, CAPTION, STATUS, WORKER_ID, CLAIMED_AT, COMPLETED_AT, ERROR,
 ATTEMPTS, MAX_ATTEMPTS, RETRY_AT, ERROR_TYPE, ERROR_CATEGORY, PASS_NUMBER, RUN_ID, VIDEO_ID,
 PHONE_ID, PHASE, CLAIM_ID, TASK_ID) = range(WIDTH)



class Status(StrEnum):
    """A job's status, as the file spells it (a StrEnum: the same bytes in the file, and equal to
    the plain strings a parsed row holds). Which status may follow which: engine/lifecycle.py."""
    PENDING = "pending"
    CLAIMED = "claimed"
    SUCCESS = "success"
    FAILED = "failed"
    RETRYING = "retrying"
    SKIPPED = "skipped"


class Phase(StrEnum):
    """A claim moves claimed -> preparing -> publishing. After `publishing` the post may be
    public, so a crash there is an unknown outcome, never a silent retry."""
    CLAIMED = "claimed"
    PREPARING = "preparing"
    PUBLISHING = "publishing"


PENDING, CLAIMED, SUCCESS, FAILED, RETRYING, SKIPPED = Status
# The plain strings, for counting and checking what a file holds.
STATUSES = tuple(s.value for s in Status)
PHASES = tuple(p.value for p in Phase)

LEDGER_COLUMNS = ("posted_at", "account", "video_path", "job_id")
# A line may carry a fifth cell: the post's link (geelark-task), proof of the post. The header
# stays the four columns the earlier system wrote, so its ledgers and ours stay one format.
LEDGER_LINK = "link"
