"""Run every benchmark script one after the other and print a Markdown table of the results,
ready to paste into the README's performance section.

Each script prints its figures and one `BENCH {json}` line per measurement; this collects them.
Run: `.venv/bin/python benchmarks/run_all.py` (about 3 minutes: the drain runs take 40–50 s).
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# (script, arguments): the drain benchmark runs once per rate.
RUNS: list[tuple[str, list[str]]] = [
    ("intake_rate.py", ["--runs", "3"]),
    ("package_cpu.py", []),
    ("drain_rate.py", ["--rate", "5"]),
    ("drain_rate.py", ["--rate", "4"]),
    ("service_footprint.py", []),
]


def run(script: str, args: list[str]) -> tuple[list[dict[str, object]], str | None]:
    """The BENCH results of one script (its output is echoed), and an error if it failed."""
    print(f"\n$ {Path(sys.executable).name} benchmarks/{script} {' '.join(args)}".rstrip(),
          flush=True)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / script), *args], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    results = []
    for line in proc.stdout.splitlines():
        if line.startswith("BENCH "):
            results.append(json.loads(line[len("BENCH "):]))
        else:
            print(line)
    print(f"  [{time.monotonic() - start:.1f} s]", flush=True)
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return results, f"exit code {proc.returncode}"
    return results, None


def fmt(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| benchmark | measure | result | target | result ÷ target | within target | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        unit = f" {r['unit']}" if r["unit"] else ""
        target = "—" if r["target"] is None else f"{r['direction']} {fmt(r['target'])}{unit}"
        meets = {True: "yes", False: "**no**", None: "—"}[r["meets"]]  # type: ignore[index]
        lines.append(f"| {r['script']} | {r['metric']} | {fmt(r['value'])}{unit} | {target} | "
                     f"{fmt(r['ratio'])} | {meets} | {r['note']} |")
    return "\n".join(lines)


def main() -> int:
    rows: list[dict[str, object]] = []
    failures = []
    for script, args in RUNS:
        results, error = run(script, args)
        rows += results
        if error:
            failures.append(f"{script} {' '.join(args)}: {error}")
    print(f"\n## Performance ({time.strftime('%Y-%m-%d')}, {platform.machine()}, "
          f"Python {platform.python_version()}, {platform.system()})\n")
    print(table(rows))
    for failure in failures:
        print(f"\nFAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
