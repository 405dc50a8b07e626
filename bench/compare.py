"""Two bench runs side by side: each headline figure and its ratio to the ceiling, old vs new.

    .venv/bin/python bench/compare.py OLD.json NEW.json [--threshold 5]

Figures are matched by script and name. The change is (new - old) / old in %; a change beyond
the threshold (5 %) in the figure's good direction is marked "better", in the other "worse"
(ratios too: a ratio is the figure measured against a ceiling of the same run, so it moves
less with the machine than the figure does). Machine facts that differ are listed first: a
run on another box, on PostgreSQL rather than SQLite, or with other code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from bench import bench_results  # noqa: E402
from bench.summary import figure, table  # noqa: E402

Key = tuple[str, str]


def change(old: float | None, new: float | None) -> float | None:
    """(new - old) / old in %, or None when either is missing or old is 0."""
    if old is None or new is None or old == 0:
        return None
    return (new - old) / abs(old) * 100


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def verdict(delta: float | None, better: str, threshold: float) -> str:
    if delta is None or abs(delta) < threshold:
        return ""
    return "better" if (delta > 0) == (better == "higher") else "worse"


def by_key(document: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    """Figures by (bench, name); a later run of the same script wins."""
    return {(f["bench"], f["name"]): f for f in bench_results.figures_of(document)}


def machine_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    a, b = old["machine"], new["machine"]
    return [
        f"  {key}: {a.get(key)!r} -> {b.get(key)!r}"
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    ]


def compare(old: dict[str, Any], new: dict[str, Any], threshold: float) -> list[str]:
    before, after = by_key(old), by_key(new)
    keys = list(before) + [key for key in after if key not in before]
    rows = [
        [
            "bench",
            "figure",
            "unit",
            "old",
            "new",
            "change",
            "",
            "old ratio",
            "new ratio",
            "change",
            "",
        ]
    ]
    for key in keys:
        a, b = before.get(key), after.get(key)
        shown = b or a
        assert shown is not None
        better = shown["better"]
        value_change = change(a["value"] if a else None, b["value"] if b else None)
        ratio_change = change(a["ratio"] if a else None, b["ratio"] if b else None)
        rows.append(
            [
                key[0],
                key[1],
                shown["unit"] + ("" if better == "higher" else " (lower is better)"),
                figure(a["value"]) if a else "(none)",
                figure(b["value"]) if b else "(none)",
                percent(value_change),
                verdict(value_change, better, threshold),
                figure(a["ratio"]) if a else "-",
                figure(b["ratio"]) if b else "-",
                percent(ratio_change),
                verdict(ratio_change, better, threshold),
            ]
        )
    return table(rows, right={3, 4, 5, 7, 8, 9})


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument(
        "--threshold", type=float, default=5.0, help="%% change marked better/worse (5)"
    )
    args = parser.parse_args()
    old, new = bench_results.load(args.old), bench_results.load(args.new)
    print(f"old: {args.old} ({old['created']})")
    print(f"new: {args.new} ({new['created']})")
    differences = machine_differences(old, new)
    if differences:
        print("machine facts that differ (figures may not be comparable):")
        print("\n".join(differences))
    smoke = [
        f"{name}: {run['bench']}"
        for name, document in (("old", old), ("new", new))
        for run in document["runs"]
        if run["smoke"]
    ]
    if smoke:
        print(f"smoke runs (their figures mean nothing): {', '.join(smoke)}")
    print()
    for line in compare(old, new, args.threshold):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
