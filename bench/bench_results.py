"""Headline figures of the bench scripts, recorded into one JSON file per `make bench` run.

Each script builds a `Results`, adds its headline figures (each beside the ceiling it measured
in the same run, when it has one) and calls `save()` at the end. `save()` appends the script's
run to the file named by `--json PATH` or SPOOL_BENCH_JSON; with neither, it writes nothing,
so a script run alone behaves as before. The file's first writer stores the machine's facts
(cores, CPU, database and Redis backends, commit), so two files can be compared:

    .venv/bin/python bench/summary.py bench/results/<timestamp>.json
    .venv/bin/python bench/compare.py old.json new.json

`--smoke` (or SPOOL_BENCH_SMOKE=1) asks a script for its CI-safe run: its real code path end to
end with tiny counts, for a few seconds; its figures are recorded but mean nothing.

The file:

    {"format": 1, "created": "...", "machine": {...},
     "runs": [{"bench": "tokens", "argv": [...], "smoke": false, "started": "...",
               "finished": "...", "seconds": 95.1, "load_average": [0.4, 1.9],
               "figures": [{"bench": "tokens", "name": "...", "value": 812.0, "unit": "tokens/s",
                            "better": "higher", "ceiling_name": "...", "ceiling": 2100.0,
                            "ratio": 0.39, "p50_ms": 31.2, "p99_ms": 48.0}, ...]}, ...],
     "failed": ["chat"], "finished": "..."}

(`failed` and `finished`: written by `bench/summary.py --failed`, as `make bench` ends.)

`ratio` is value / ceiling: for a rate, the share of the ceiling reached; for a latency or a
cost, how many times the ceiling's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
FORMAT = 1
JSON_ENV = "SPOOL_BENCH_JSON"
SMOKE_ENV = "SPOOL_BENCH_SMOKE"

Better = Literal["higher", "lower"]


@dataclass
class Figure:
    bench: str
    name: str
    value: float | None
    unit: str
    better: Better
    ceiling_name: str = ""
    ceiling: float | None = None
    ratio: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None


def number(value: float | None) -> float | None:
    """value as a float, or None when it is missing or not finite (strict JSON)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """--smoke and --json, the same in every bench script."""
    parser.add_argument(
        "--smoke",
        action="store_true",
        default=os.environ.get(SMOKE_ENV) == "1",
        help=f"a CI-safe run: the whole code path with tiny counts, no figures worth reading "
        f"(also {SMOKE_ENV}=1)",
    )
    parser.add_argument(
        "--json",
        default=os.environ.get(JSON_ENV, ""),
        help=f"append this run's headline figures to this JSON file (default ${JSON_ENV}; "
        "none: nothing written)",
    )


class Results:
    """One script's headline figures, saved together at the end of its run."""

    def __init__(self, bench: str, *, smoke: bool = False, path: str = "") -> None:
        self.bench = bench
        self.smoke = smoke
        self.path = path or os.environ.get(JSON_ENV, "")
        self.figures: list[Figure] = []
        self.started = now()
        self.began = time.monotonic()
        self.load = os.getloadavg()[0]

    def add(
        self,
        name: str,
        value: float | None,
        unit: str,
        *,
        better: Better = "higher",
        ceiling_name: str = "",
        ceiling: float | None = None,
        p50_ms: float | None = None,
        p99_ms: float | None = None,
    ) -> Figure:
        value, ceiling = number(value), number(ceiling)
        ratio = value / ceiling if value is not None and ceiling else None
        figure = Figure(
            bench=self.bench,
            name=name,
            value=value,
            unit=unit,
            better=better,
            ceiling_name=ceiling_name,
            ceiling=ceiling,
            ratio=ratio,
            p50_ms=number(p50_ms),
            p99_ms=number(p99_ms),
        )
        self.figures.append(figure)
        return figure

    def run(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "argv": sys.argv[1:],
            "smoke": self.smoke,
            "started": self.started,
            "finished": now(),
            "seconds": round(time.monotonic() - self.began, 1),
            "load_average": [self.load, os.getloadavg()[0]],
            "figures": [asdict(f) for f in self.figures],
        }

    def save(self) -> Path | None:
        """Append this run to the JSON file, if one was named; its path, or None."""
        if not self.path:
            return None
        path = Path(self.path)
        append_run(path, self.run())
        print(f"{len(self.figures)} headline figures recorded in {path}", flush=True)
        return path


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def append_run(path: Path, run: dict[str, Any]) -> None:
    """Add `run` to the file (created with the machine's facts if it is new or empty). The
    scripts run one after the other; the write goes through a temporary file and a rename, so
    an interrupted one never leaves half a file."""
    document = load_or_new(path, created=run["started"])
    document["runs"].append(run)
    write(path, document)


def write(path: Path, document: dict[str, Any]) -> None:
    text = json.dumps(document, indent=1, allow_nan=False) + "\n"
    if path.exists() and not path.is_file():
        # /dev/null or a pipe: written to, never renamed over (a rename replaced /dev/null
        # with a plain file, and every program on the machine lost it).
        with open(path, "w") as target:
            target.write(text)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def new_document(created: str = "") -> dict[str, Any]:
    return {"format": FORMAT, "created": created or now(), "machine": machine(), "runs": []}


def load_or_new(path: Path, created: str = "") -> dict[str, Any]:
    return load(path) if path.exists() and path.stat().st_size else new_document(created)


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{path}: not a bench results file of format {FORMAT}")
    return document


def figures_of(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [figure for run in document["runs"] for figure in run["figures"]]


# --- The machine ------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """What makes two runs comparable or not: the box, the backends, the code."""
    database_url = os.environ.get("DATABASE_URL", "")
    return {
        "hostname": socket.gethostname(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "database": "PostgreSQL"
        if database_url.startswith(("postgres://", "postgresql://"))
        else "SQLite (embedded)",
        "redis": "REDIS_URL" if os.environ.get("REDIS_URL") else "private Redis (embedded)",
        "web_processes": os.environ.get("SPOOL_WEB_PROCESSES", "serve's default"),
        "web_threads": os.environ.get("SPOOL_WEB_THREADS", "serve's default"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor()


def git(*args: str) -> str:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return completed.stdout.strip() if completed.returncode == 0 else ""
