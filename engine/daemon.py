"""The detached supervisor: `python -m engine.daemon SPEC`, started by runs.start_detached in a
session of its own. SPEC is the JSON runs.start_detached writes (the campaign, the RunOptions,
whether to seed a fresh day); nobody types it, so it is not a command line to parse. What it
has to say goes to the run's logs; a refusal is one line that start_detached reads back."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from .context import PostingContext
from .problems import InputError, Refused
from .runs import DAEMON_SAYS, run_foreground
from .workers import RunOptions

log = logging.getLogger("postdeck.daemon")


def context_of(spec: dict) -> PostingContext:
    if spec["legacy"]:
        return PostingContext.for_legacy(Path(spec["root"]))
    campaigns = Path(spec["campaigns_dir"]) if spec.get("campaigns_dir") else None
    return PostingContext.for_campaign_dir(Path(spec["root"]), campaigns)


def main(raw: str) -> int:
    # stderr is the run's detached.out: one line per refusal, read back by start_detached
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    spec = json.loads(raw)
    try:
        ctx = context_of(spec)
        result = run_foreground(ctx, RunOptions(**spec["options"]),
                                force_reseed=spec.get("force_reseed", False))
    except (InputError, Refused) as exc:
        log.error("%s%s", DAEMON_SAYS, exc)
        return 1
    if result.failure:
        log.error("the run could not go on: %s", result.failure)
        return 1
    log.info("run ended: %s", result.counts)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
