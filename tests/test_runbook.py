"""docs/RUNBOOK.md shows only commands the CLI accepts: every `postdeck ...` line of its code
blocks parses, and passes the same action/option checks as `postdeck` itself."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from console.__main__ import UsageError, build_parser, chosen_actions, validate_options

RUNBOOK = Path(__file__).resolve().parent.parent / "docs" / "RUNBOOK.md"


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def commands(text: str) -> list[str]:
    """Every `postdeck ...` command line in the code blocks (a `$ ` prompt and trailing
    `# comments` allowed, `\\` continuations joined)."""
    out = []
    for block in code_blocks(text):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = line.strip().removeprefix("$ ").strip()
            if re.match(r"postdeck(\s|$)", line):
                out.append(line)
    return out


def problem_with(command: str) -> str | None:
    """Why the CLI would refuse `command` as a usage error, or None when it accepts it."""
    argv = shlex.split(command, comments=True)[1:]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return f"the parser refuses it (exit {exc.code})"
    try:
        actions = chosen_actions(args)
        validate_options(args, actions)
    except UsageError as exc:
        return str(exc)
    # the rules main() adds on top
    if actions and not args.no_ui:
        return "an action without --no-ui"
    if args.no_ui and not actions:
        return "--no-ui without an action"
    return None


def known_flags() -> set[str]:
    return {s for a in build_parser()._actions for s in a.option_strings}


def test_the_runbook_has_commands():
    found = commands(RUNBOOK.read_text(encoding="utf-8"))
    assert len(found) >= 10, found
    text = " ".join(found)
    for flag in ("--run", "--workers", "--phones", "--detach", "--status", "--json", "--stop",
                 "--stop-all", "--reset-day", "--force-reseed", "--retry-all-failed",
                 "--retry-include-non-retryable", "--list-campaigns", "--seed-only"):
        assert re.search(re.escape(flag) + r"(\s|$)", text), f"the runbook shows no {flag}"
    assert "postdeck --campaign demo" in found                 # the console


@pytest.mark.parametrize("command", commands(RUNBOOK.read_text(encoding="utf-8")))
def test_every_runbook_command_is_accepted(command, capsys):
    assert problem_with(command) is None, f"{command!r}: {problem_with(command)}"


def test_every_flag_the_runbook_mentions_exists():
    mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", RUNBOOK.read_text("utf-8")))
    unknown = mentioned - known_flags()
    assert not unknown, f"the runbook mentions flags the CLI does not have: {sorted(unknown)}"


# The checker itself must be able to fail.
@pytest.mark.parametrize("bad", [
    "postdeck --no-ui --campaign demo --run --wrokers 4",          # a typo
    "postdeck --no-ui --campaign demo --status --watch",           # a flag that does not exist
    "postdeck --no-ui --campaign demo --force-reseed --status --seed-only",
    "postdeck --no-ui --campaign demo --status --detach",
    "postdeck --campaign demo --status",                           # action without --no-ui
    "postdeck --no-ui --campaign demo",                            # --no-ui without an action
    "postdeck --no-ui --campaign demo --run --workers 0",
])
def test_the_checker_catches_bad_commands(bad, capsys):
    doc = f"# x\n\n```sh\n{bad}\n```\n"
    assert commands(doc) == [bad]
    assert problem_with(bad) is not None


def test_extraction_handles_prompts_comments_and_continuations():
    doc = ("text postdeck --nope outside a block\n```sh\n$ postdeck --no-ui --status  # look\n"
           "postdeck --no-ui --campaign demo --run \\\n    --workers 4\necho postdeck\n```\n")
    assert commands(doc) == ["postdeck --no-ui --status  # look",
                             "postdeck --no-ui --campaign demo --run      --workers 4"]
    assert all(problem_with(c) is None for c in commands(doc))
