"""The boundaries the architecture promises (docs/ARCHITECTURE.md), checked on the source: the
engine never imports the console, never prints, never parses a command line or draws; the
progress file is parsed in one module."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENGINE = sorted((REPO / "engine").rglob("*.py"))


def imported(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_the_engine_never_imports_the_console_nor_a_cli_or_terminal_library():
    for path in ENGINE:
        names = imported(ast.parse(path.read_text()))
        assert not names & {"console", "argparse", "rich", "textual"}, \
            f"{path.relative_to(REPO)} imports {names & {'console', 'argparse', 'rich', 'textual'}}"


def test_the_engine_never_prints():
    for path in ENGINE:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                raise AssertionError(f"{path.relative_to(REPO)}:{node.lineno} prints")


def test_only_the_codec_reads_progress_rows_with_the_csv_module_strictly():
    """csv.reader(..., strict=True) over progress rows lives in engine/progress_csv.py; the other
    csv readers parse other files (captions, the ledger) or read leniently on purpose."""
    strict = []
    for path in [*ENGINE, *sorted((REPO / "console").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "reader"
                    and any(k.arg == "strict" for k in node.keywords)):
                strict.append(path.relative_to(REPO).as_posix())
    assert set(strict) <= {"engine/progress_csv.py", "engine/campaigns.py"}, strict
