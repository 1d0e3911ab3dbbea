"""How each front end words the engine's remedies (engine/problems.py): the headless CLI names
its flags, the console its keys."""
from __future__ import annotations

from engine.problems import Remedy
from engine.store import JobRefused

CLI_WORDS: dict[Remedy, str] = {
    Remedy.STATUS: "Watch it with --status.",
    Remedy.STOP: "Stop it with --stop (or --stop-all).",
    Remedy.STOP_ALL: "Wait for them to finish, or end them now with --stop-all.",
    Remedy.RESET_DAY: "Or run --reset-day to archive it and start a new day.",
    Remedy.RESET_AND_SEED: "Use --reset-day --force-reseed to start a new day and seed it.",
    Remedy.LIST_CAMPAIGNS: "See --list-campaigns.",
    Remedy.CAMPAIGNS_DIR: "Or pass --campaigns-dir.",
}

CONSOLE_WORDS: dict[Remedy, str] = {
    Remedy.STATUS: "",                     # the dashboard already shows it
    Remedy.STOP: "Press x to stop it (X to stop all).",
    Remedy.STOP_ALL: "Wait for them to finish, or press X to end them now.",
    Remedy.RESET_DAY: "Or press R to archive it and start a new day.",
    Remedy.RESET_AND_SEED: "Press R to start a new day, then S to seed it.",
    Remedy.LIST_CAMPAIGNS: "See the campaigns panel.",
    Remedy.CAMPAIGNS_DIR: "Or start postdeck with --campaigns-dir.",
}

# What to do after a refused action on one job (engine/store.py JobRefused.reason), in flags.
JOB_REFUSAL_CLI_WORDS: dict[str, str] = {
    JobRefused.CLAIMED: "--stop ends the run after its current jobs; --status shows the job.",
    JobRefused.NEEDS_CONSENT: "That is --retry-job with --retry-include-non-retryable.",
}
