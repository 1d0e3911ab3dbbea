"""The progress file's columns and statuses. The first 17 columns are the earlier system's, in
its order, so its files load unchanged; files with only the first 9 load too."""
from __future__ import annotations

COLUMNS = (
    "job_id", "account", "video_path", "caption", "status", "worker_id", "claimed_at",
    "completed_at", "error", "attempts", "max_attempts", "retry_at", "error_type",
    "error_category", "pass_number", "run_id", "video_id", "phone_id", "phase", "claim_id",
)
ACCEPTED_HEADERS = (COLUMNS, COLUMNS[:17], COLUMNS[:9])
WIDTH = len(COLUMNS)

(JOB_ID, ACCOUNT, VIDEO_PATH, CAPTION, STATUS, WORKER_ID, CLAIMED_AT, COMPLETED_AT, ERROR,
 ATTEMPTS, MAX_ATTEMPTS, RETRY_AT, ERROR_TYPE, ERROR_CATEGORY, PASS_NUMBER, RUN_ID, VIDEO_ID,
 PHONE_ID, PHASE, CLAIM_ID) = range(WIDTH)

PENDING, CLAIMED, SUCCESS, FAILED, RETRYING, SKIPPED = (
    "pending", "claimed", "success", "failed", "retrying", "skipped")
STATUSES = (PENDING, CLAIMED, SUCCESS, FAILED, RETRYING, SKIPPED)

# A claim moves claimed -> preparing -> publishing. After `publishing` the post may be public,
# so a crash there is an unknown outcome, never a silent retry.
PHASES = ("claimed", "preparing", "publishing")

LEDGER_COLUMNS = ("posted_at", "account", "video_path", "job_id")
