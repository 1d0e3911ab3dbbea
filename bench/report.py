"""Run every benchmark in bench/ and write one markdown report with the machine they ran on.

Each benchmark prints its own figures; lines of the form
    figure: <name> | <value> | <target>
are gathered into the report's table, and each benchmark's full output follows it.

    python bench/report.py [--quick] [--out bench/REPORT.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["store.py", "farm.py", "console.py"]


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines()
                          if l.startswith("MemTotal")).split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        mem = "unknown memory"
    return (f"{cpu}, {os.cpu_count()} cores, {mem}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--out", type=Path, default=HERE / "REPORT.md")
    args = ap.parse_args()
    figures: list[tuple[str, str, str, str]] = []
    sections: list[str] = []
    for name in BENCHES:
        path = HERE / name
        if not path.exists():
            sections.append(f"## {name}\n\nnot present\n")
            continue
        cmd = [sys.executable, str(path)] + (["--quick"] if args.quick else [])
        started = time.time()
        res = subprocess.run(cmd, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(HERE.parent)})
        took = time.time() - started
        for line in res.stdout.splitlines():
            if line.startswith("figure:"):
                parts = [p.strip() for p in line[len("figure:"):].split("|")]
                parts += [""] * (3 - len(parts))
                figures.append((name, *parts[:3]))
        status = "ok" if res.returncode == 0 else f"exit {res.returncode}"
        out = res.stdout.strip() + (f"\n{res.stderr.strip()}" if res.returncode else "")
        sections.append(f"## {name} ({status}, {took:.0f} s)\n\n`{' '.join(cmd[1:])}`\n\n"
                        f"```\n{out}\n```\n")
        print(f"{name}: {status} in {took:.0f} s", file=sys.stderr)
    table = ["| benchmark | figure | value | target |", "|---|---|---|---|"]
    table += [f"| {b} | {n} | {v} | {t} |" for b, n, v, t in figures]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"# Benchmark report\n\nRun {when}{' (quick)' if args.quick else ''} on: "
            f"{machine()}.\nShared, noisy machines: compare figures within one report, as "
            "ratios, not across reports.\n\n" + "\n".join(table) + "\n\n" + "\n".join(sections))
    args.out.write_text(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
