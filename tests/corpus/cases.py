"""The bad-input corpus: each case is a small tree of files laid over a good campaign (or a
legacy working directory) and one command. Every case must exit 1 (2 for usage errors) with one
message that names the file and the line, and leave every file byte-for-byte as it was."""
from __future__ import annotations

from dataclasses import dataclass, field

HEADER = ("job_id,account,video_path,caption,status,worker_id,claimed_at,completed_at,error,"
          "attempts,max_attempts,retry_at,error_type,error_category,pass_number,run_id,video_id,"
          "phone_id,phase,claim_id\n")
ROW = "v000.mp4_c,a1,/x/v000.mp4,hi,pending,,,,,0,3,,,,1,,,a1,,\n"
ROW2 = "v001.mp4_c,a2,/x/v001.mp4,\"multi\nline, caption\",success,0,,,,1,3,,,,1,,,a2,,\n"
GOOD_ACCOUNTS = "# accounts\na1\na2,phone-2\n"
GOOD_CAPTIONS = "filename,post_caption\nv000.mp4,first\nv001.mp4,\"second, with comma\"\n"


@dataclass
class Case:
    name: str
    files: dict[str, str | bytes | None] = field(default_factory=dict)  # None removes
    args: tuple[str, ...] = ("--seed-only",)
    exit: int = 1
    file: str | None = None        # the file the message must name
    line: int | None = None        # the line it must name
    says: str = ""                 # a fragment the message must hold
    legacy: bool = False           # run in a legacy working directory instead of --campaign
    campaign: str = "c"            # the --campaign argument
    headless: bool = True          # add --no-ui


def progress(text: str | bytes) -> dict:
    return {"progress.csv": text}


CASES = [
    # --- accounts.txt ---------------------------------------------------------------------------
    Case("accounts missing", {"accounts.txt": None}, file="accounts.txt", says="missing"),
    Case("accounts empty", {"accounts.txt": ""}, file="accounts.txt", says="no accounts"),
    Case("accounts only comments", {"accounts.txt": "# nobody\n\n"}, file="accounts.txt",
         says="no accounts"),
    Case("accounts duplicate", {"accounts.txt": "a1\na2\na1\n"}, file="accounts.txt", line=3,
         says="twice"),
    Case("accounts three fields", {"accounts.txt": "a1\na2,p,extra\n"}, file="accounts.txt",
         line=2, says="3 fields"),
    Case("accounts empty phone", {"accounts.txt": "a1,\n"}, file="accounts.txt", line=1,
         says="empty"),
    Case("accounts not utf-8", {"accounts.txt": b"a1\nb\xe9a\n"}, file="accounts.txt", line=2,
         says="UTF-8"),
    Case("accounts is a folder", {"accounts.txt": None, "accounts.txt/x": "a1\n"},
         file="accounts.txt", says="must be a file"),
    # --- captions.csv ---------------------------------------------------------------------------
    Case("captions missing", {"captions.csv": None}, file="captions.csv", says="missing"),
    Case("captions zero bytes", {"captions.csv": ""}, file="captions.csv", line=1, says="empty"),
    Case("captions no filename column", {"captions.csv": "file,post_caption\nv000.mp4,x\n"},
         file="captions.csv", line=1, says="'filename'"),
    Case("captions no caption column", {"captions.csv": "filename,text\nv000.mp4,x\n"},
         file="captions.csv", line=1, says="'post_caption'"),
    Case("captions wrong field count",
         {"captions.csv": "filename,post_caption\nv000.mp4,a\nv001.mp4,b,c\n"},
         file="captions.csv", line=3, says="3 fields"),
    Case("captions duplicate video",
         {"captions.csv": "filename,post_caption\nv000.mp4,a\nv000.mp4,b\n"},
         file="captions.csv", line=3, says="again"),
    Case("captions video missing",
         {"captions.csv": "filename,post_caption\nv000.mp4,a\nnope.mp4,b\n"},
         file="captions.csv", line=3, says="nope.mp4"),
    Case("captions unclosed quote",
         {"captions.csv": "filename,post_caption\nv000.mp4,\"never closed\nv001.mp4,b\n"},
         file="captions.csv", line=2, says="CSV"),
    Case("captions utf-16", {"captions.csv": "filename,post_caption\n".encode("utf-16")},
         file="captions.csv", line=1, says="UTF-8"),
    Case("captions empty filename", {"captions.csv": "filename,post_caption\n,orphan caption\n"},
         file="captions.csv", line=2, says="empty"),
    Case("captions latin-1 caption",
         {"captions.csv": b"filename,post_caption\nv000.mp4,caf\xe9\n"},
         file="captions.csv", line=2, says="UTF-8"),
    # --- videos/ --------------------------------------------------------------------------------
    Case("videos folder missing", {"videos/v000.mp4": None, "videos/v001.mp4": None,
                                   "videos": None}, file="videos", says="missing"),
    Case("duplicate video names", {"videos/sub/v000.mp4": b"\0"}, file="v000.mp4",
         says="same file name"),
    # --- campaign.json --------------------------------------------------------------------------
    Case("json syntax", {"campaign.json": '{\n  "enabled": true,\n  "backend" "simulated"\n}'},
         file="campaign.json", line=3, says="not valid JSON"),
    Case("json empty", {"campaign.json": "  \n"}, file="campaign.json", line=1, says="empty"),
    Case("json not an object", {"campaign.json": "[1, 2]"}, file="campaign.json", line=1,
         says="one JSON object"),
    Case("json unknown key", {"campaign.json": '{\n  "enabled": true,\n  "max_post": 2\n}'},
         file="campaign.json", line=3, says="unknown key"),
    Case("limit zero", {"campaign.json": '{"max_posts_per_account_per_day": 0}'},
         file="campaign.json", line=1, says="1 to 4"),
    Case("limit five", {"campaign.json": '{\n"max_posts_per_account_per_day": 5}'},
         file="campaign.json", line=2, says="1 to 4"),
    Case("limit string", {"campaign.json": '{"max_posts_per_account_per_day": "2"}'},
         file="campaign.json", line=1, says="1 to 4"),
    Case("limit float", {"campaign.json": '{"max_posts_per_account_per_day": 1.5}'},
         file="campaign.json", line=1, says="1 to 4"),
    Case("limit boolean", {"campaign.json": '{"max_posts_per_account_per_day": true}'},
         file="campaign.json", line=1, says="1 to 4"),
    Case("backend unknown", {"campaign.json": '{"backend": "iphone"}'}, file="campaign.json",
         line=1, says="simulated"),
    Case("timezone unknown", {"campaign.json": '{"timezone": "Mars/Olympus"}'},
         file="campaign.json", line=1, says="time zone"),
    Case("max attempts zero", {"campaign.json": '{"max_attempts": 0}'}, file="campaign.json",
         line=1, says="at least 1"),
    Case("rate limit steps empty", {"campaign.json": '{"rate_limit_steps": []}'},
         file="campaign.json", line=1, says="list"),
    Case("simulation unknown key", {"campaign.json": '{"simulation": {\n"speed": 2}}'},
         file="campaign.json", line=2, says="unknown key"),
    Case("failure rate above one", {"campaign.json": '{"simulation": {"failure_rate": 2}}'},
         file="campaign.json", line=1, says="0 to 1"),
    Case("enabled not boolean", {"campaign.json": '{"enabled": "yes"}'}, file="campaign.json",
         line=1, says="true or false"),
    Case("campaign disabled", {"campaign.json": '{"enabled": false}'}, file="campaign.json",
         says="disabled"),
    Case("campaign disabled retry", {"campaign.json": '{"enabled": false}'},
         args=("--retry-all-failed",), file="campaign.json", says="disabled"),
    # --- campaign names -------------------------------------------------------------------------
    Case("name leaves the folder", campaign="../outside", says="would leave the campaigns"),
    Case("name dot dot", campaign="..", says="would leave the campaigns"),
    Case("name unknown", campaign="nosuch", says="no campaign 'nosuch'"),
    Case("name symlink out", campaign="link", says="outside the campaigns folder"),
    # --- progress.csv ---------------------------------------------------------------------------
    Case("progress zero bytes", progress(""), file="progress.csv", line=1, says="zero bytes"),
    Case("progress zero bytes status", progress(""), args=("--status",), file="progress.csv",
         line=1, says="--reset-day"),
    Case("progress truncated last line", progress(HEADER + ROW + "v001.mp4_c,a2,/x/v0"),
         file="progress.csv", line=3, says="fields"),
    Case("progress truncated in quotes", progress(HEADER + ROW + 'v001.mp4_c,a2,/x,"multi\nli'),
         args=("--status",), file="progress.csv", says="CSV"),
    Case("progress wrong header", progress("id,account,status\n" + ROW), file="progress.csv",
         line=1, says="header"),
    Case("progress unknown status", progress(HEADER + ROW.replace("pending", "done")),
         args=("--retry-all-failed",), file="progress.csv", line=2, says="unknown status"),
    Case("progress duplicate job", progress(HEADER + ROW + ROW2 + ROW), file="progress.csv",
         line=5, says="twice"),
    Case("progress wrong field count", progress(HEADER + ROW.replace(",,\n", ",\n") + ROW2),
         args=("--status", "--json"), file="progress.csv", line=2, says="fields"),
    Case("progress not utf-8", progress(HEADER.encode() + b"v\xff,a1\n"), file="progress.csv",
         line=2, says="UTF-8"),
    Case("progress corrupt refuses run", progress(HEADER + ROW + ROW), args=("--run",),
         file="progress.csv", line=3, says="twice"),
    # --- legacy scheduler_state.json -------------------------------------------------------------
    Case("state syntax", {"scheduler_state.json": '{"videos": [\n  {"video_path": }\n]}'},
         legacy=True, file="scheduler_state.json", line=2, says="not valid JSON"),
    Case("state empty", {"scheduler_state.json": ""}, legacy=True, file="scheduler_state.json",
         line=1, says="empty"),
    Case("state wrong shape", {"scheduler_state.json": '{"queue": 3}'}, legacy=True,
         file="scheduler_state.json", line=1, says='"videos" list'),
    Case("state video without path",
         {"scheduler_state.json": '{"videos": [\n {"video_path": "videos/v000.mp4", "caption": "a"},\n'
                                  ' {"caption": "b"}\n]}'},
         legacy=True, file="scheduler_state.json", line=3, says="no video_path"),
    Case("state video missing",
         {"scheduler_state.json": '{"videos": [{"video_path": "videos/gone.mp4", "caption": "x"}]}'},
         legacy=True, file="scheduler_state.json", line=1, says="does not exist"),
    Case("state missing", {"scheduler_state.json": None}, legacy=True,
         file="scheduler_state.json", says="missing"),
    Case("legacy progress corrupt", {"parallel_progress.csv": HEADER[:40]}, legacy=True,
         args=("--status",), file="parallel_progress.csv", line=1, says="header"),
    # --- the command line -----------------------------------------------------------------------
    Case("action without --no-ui", args=("--status",), exit=2, says="--no-ui", headless=False),
    Case("--no-ui without action", args=(), exit=2, says="needs an action"),
    Case("two actions", args=("--status", "--seed-only"), exit=2, says="one action"),
    Case("json with seed", args=("--seed-only", "--json"), exit=2, says="--json"),
    Case("detach without run", args=("--status", "--detach"), exit=2, says="--detach"),
    Case("workers zero", args=("--run", "--workers", "0"), exit=2, says="at least 1"),
    Case("workers not a number", args=("--run", "--workers", "many"), exit=2, says="invalid int"),
    Case("phones without run", args=("--status", "--phones", "a"), exit=2, says="--phones"),
    Case("non-retryable without retry", args=("--status", "--retry-include-non-retryable"),
         exit=2, says="--retry-all-failed"),
    Case("negative retry delay", args=("--run", "--retry-delay", "-1"), exit=2, says="0 or more"),
    Case("unknown flag", args=("--status", "--colour"), exit=2, says="unrecognized"),
    Case("force reseed without reset", args=("--seed-only", "--force-reseed"),
         says="requires --reset-day"),
    Case("phones count mismatch", args=("--run", "--workers", "2", "--phones", "a1"),
         says="names 1 phone(s)"),
    Case("phones repeated", args=("--run", "--workers", "2", "--phones", "a1,a1"),
         says="repeats a1"),
]
