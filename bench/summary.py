"""One table of a bench run's headline figures, each beside its ceiling measured in the same run.

Reads the JSON file the bench scripts appended their figures to (bench/bench_results.py):

    .venv/bin/python bench/summary.py [bench/results/<timestamp>.json] [--failed "chat calls"]

Without a path: $SPOOL_BENCH_JSON, else the newest file in bench/results/. `--failed` names the
scripts that exited non-zero (`make bench` passes them): they are listed under the table, kept
in the file, and make this script exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from bench import bench_results  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def figure(value: float | None) -> str:
    """A figure with as many digits as it needs to be read."""
    if value is None:
        return "-"
    value = float(value)
    if value.is_integer():
        return f"{value:,.0f}"
    size = abs(value)
    digits = 0 if size >= 100 else 1 if size >= 10 else 2 if size >= 0.1 else 3
    return f"{value:,.{digits}f}"


def machine_line(document: dict[str, Any]) -> str:
    m = document["machine"]
    commit = (m.get("commit") or "no commit")[:10]
    changes = " + uncommitted changes" if m.get("uncommitted_changes") else ""
    return (
        f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, {m['database']}, "
        f"{m['redis']}, Python {m['python']}, {m['hostname']}, commit {commit}{changes}"
    )


def table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def print_summary(document: dict[str, Any], path: Path) -> None:
    print(f"Bench summary: {path}")
    print(f"  started {document['created']} on {machine_line(document)}")
    rows = [
        [
            "bench",
            "figure",
            "value",
            "unit",
            "p50 ms",
            "p99 ms",
            "ceiling (same run)",
            "ceiling",
            "ratio",
        ]
    ]
    for run in document["runs"]:
        bench = run["bench"] + (" (smoke)" if run["smoke"] else "")
        for f in run["figures"]:
            rows.append(
                [
                    bench,
                    f["name"],
                    figure(f["value"]),
                    f["unit"] + ("" if f["better"] == "higher" else " (lower is better)"),
                    figure(f["p50_ms"]),
                    figure(f["p99_ms"]),
                    f["ceiling_name"] or "-",
                    figure(f["ceiling"]),
                    figure(f["ratio"]),
                ]
            )
    print()
    for line in table(rows, right={2, 4, 5, 7, 8}):
        print(f"  {line}")
    print()
    print("  ratio = value / ceiling: for a rate, the share of the ceiling reached; for a time or")
    print("  a cost, how many times the ceiling's. Compare two runs: bench/compare.py OLD NEW")
    durations = ", ".join(f"{run['bench']} {run['seconds']:.0f} s" for run in document["runs"])
    print(f"  run times: {durations or 'no script recorded figures'}")


def default_path() -> Path | None:
    if os.environ.get(bench_results.JSON_ENV):
        return Path(os.environ[bench_results.JSON_ENV])
    files = sorted(RESULTS.glob("*.json"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("path", nargs="?", help="a results file (default: see above)")
    parser.add_argument(
        "--failed", default=None, help="scripts that exited non-zero, comma- or space-separated"
    )
    args = parser.parse_args()
    path = Path(args.path) if args.path else default_path()
    if path is None or (args.failed is None and not path.exists()):
        print(f"no bench results file ({path or 'bench/results/ is empty'})", file=sys.stderr)
        return 1
    # With --failed the file may not exist yet: every script failed before recording.
    document = bench_results.load_or_new(path)
    print_summary(document, path)
    if args.failed is None:
        return 0
    failed = args.failed.replace(",", " ").split()
    document["failed"] = failed
    document["finished"] = bench_results.now()
    bench_results.write(path, document)
    if failed:
        print(f"  FAILED (exited non-zero, see their output above): {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
