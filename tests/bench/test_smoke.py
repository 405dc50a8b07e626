"""Every bench script still runs: its --smoke run, in a fresh interpreter exactly as `make bench`
runs it (`.venv/bin/python bench/<name>.py`, from the repository's root), takes its real code
path end to end with tiny counts and records its headline figures. No figure is judged.

A script that needs a tool (wrk, Janus, sipp, Kamailio, espeak-ng, ffmpeg, HAProxy) or the
ceilings of ../shared/baselines/ skips without it, unless SPOOL_REQUIRE_TOOLS=1 (CI) makes that
a failure; bench/phone_numbers.py needs PostgreSQL (DATABASE_URL) and skips without it, and the
others run only without it (`make test`'s embedded pass: once is enough).

Each script takes 5-50 s, most of it starting `manage.py serve` and the engines, which leaves
a 2-core machine half idle: the selected scripts start together when the first test asks, in
two lanes that run side by side (one when REDIS_URL is set: start_spool() gives each live
server a Redis database from a per-process offset, which two processes can share).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from apps.core import kamailio
from tests.janus import JANUS

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench"
BASELINES = Path(os.environ.get("SPOOL_BASELINES_DIR") or ROOT.parent / "shared" / "baselines")
# Debian packages of the tools the scripts run.
PACKAGES = {
    "wrk": "wrk",
    "janus": "janus",
    "kamailio": "kamailio",
    "sipp": "sip-tester",
    "espeak-ng": "espeak-ng",
    "ffmpeg": "ffmpeg",
    "haproxy": "haproxy",
}
NEEDS: dict[str, tuple[str, ...]] = {
    "tokens": ("baselines", "wrk"),
    "sms": ("baselines", "wrk"),
    "chat": ("baselines",),
    "calls": ("janus",),
    "automation": ("janus", "espeak-ng", "ffmpeg"),
    "pstn": ("janus", "kamailio", "sipp", "espeak-ng"),
    "console": ("baselines",),
    "phone_numbers": ("postgres",),
    "scale": ("wrk", "haproxy"),
}
# Longest first in each. sms and chat share a lane: for their ceilings each starts a Redis on
# 127.0.0.1:6379 when none answers there, and stops it when done.
LANES = (
    ("pstn", "calls", "tokens", "phone_numbers", "console"),
    ("sms", "automation", "scale", "chat"),
)
# Modules of bench/ that are not scripts `make bench` runs.
HELPERS = {"bench_results", "summary", "compare"}
TIMEOUT = 180  # seconds for one script's smoke run
GRACE = 30  # seconds for an interrupted script to stop its servers
# The longest a test may wait for its script: every script before it in one lane timing out.
WAIT = (TIMEOUT + GRACE + 5) * len(NEEDS)
TEST = "test_bench_script_runs_end_to_end_and_records_its_figures"


def on_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://"))


def unmet(needs: tuple[str, ...]) -> tuple[str, bool] | None:
    """What is missing for a script, and whether that is a tool (CI must have those)."""
    if on_postgres() and "postgres" not in needs:
        # `make test` runs the suite on both backends; a smoke run once is enough (CI's time).
        return "smoke-run in the suite's embedded pass (no DATABASE_URL)", False
    for need in needs:
        if need == "baselines":
            if not (BASELINES / "djbase").is_dir():
                return f"the ceilings' programs are not in {BASELINES} (SPOOL_BASELINES_DIR)", True
        elif need == "postgres":
            if not on_postgres():
                return "bench/phone_numbers.py measures PostgreSQL: DATABASE_URL is not set", False
        elif need == "janus":
            if not os.path.exists(JANUS):
                return "Janus not installed: apt-get install janus", True
        elif need == "kamailio":
            if kamailio.kamailio_binary() is None:
                return "Kamailio not installed: apt-get install kamailio", True
        elif shutil.which(need) is None:
            return f"{need} not installed: apt-get install {PACKAGES[need]}", True
    return None


def bench_env(results: Path) -> dict[str, str]:
    """The environment `make bench` gives a script: the caller's, without what the test
    settings put there (a script sets up Django on its own), and the results file."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "SPOOL_DATA_DIR")
    }
    env["SPOOL_BENCH_JSON"] = str(results)
    return env


@dataclass
class Smoke:
    """One script's smoke run: its exit code, output, results file and time."""

    results: Path
    done: threading.Event = field(default_factory=threading.Event)
    returncode: int | None = None
    timed_out: bool = False
    output: str = ""
    seconds: float = 0.0
    left_behind: list[str] = field(default_factory=list)


class SmokeRuns:
    """The selected scripts' smoke runs, lane by lane in background threads."""

    def __init__(self, names: set[str], folder: Path) -> None:
        self.runs = {name: Smoke(folder / f"{name}.json") for name in names}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        lanes = LANES if not os.environ.get("REDIS_URL") else (sum(LANES, ()),)
        self.threads = [threading.Thread(target=self._lane, args=(lane,)) for lane in lanes]
        for thread in self.threads:
            thread.start()

    def _lane(self, lane: tuple[str, ...]) -> None:
        for name in lane:
            if name in self.runs and not self.stopping:
                self._run(name, self.runs[name])

    def _run(self, name: str, smoke: Smoke) -> None:
        started = time.monotonic()
        # Output to a file, not a pipe: a process the script leaves behind would hold a pipe
        # open, and reading it to its end would never finish.
        log = smoke.results.with_suffix(".log")
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [sys.executable, f"bench/{name}.py", "--smoke"],
                cwd=ROOT,
                env=bench_env(smoke.results),
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: what it leaves running there is found and stopped afterwards.
                start_new_session=True,
            )
        self.processes[name] = process
        try:
            process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            smoke.timed_out = True
            interrupt(process)
        smoke.left_behind = stop_session(process.pid)
        smoke.returncode = process.returncode
        smoke.seconds = time.monotonic() - started
        smoke.output = log.read_text(errors="replace")
        smoke.done.set()

    def wait(self, name: str) -> Smoke:
        smoke = self.runs[name]
        assert smoke.done.wait(WAIT), f"bench/{name}.py did not finish within {WAIT} s"
        return smoke

    def stop(self) -> None:
        """After the tests, or when they stop early (-x): end what still runs."""
        self.stopping = True
        for process in self.processes.values():
            interrupt(process)
        for thread in self.threads:
            thread.join()


def interrupt(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, so that the script's finally blocks stop its servers; then a kill."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=GRACE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_session(session: int) -> list[str]:
    """Kill what is still running in a finished script's session; their command lines. (The
    engines serve and the test helpers start have sessions of their own: not seen here.)"""
    import psutil

    time.sleep(0.5)  # a child stopped just now may still be on its way out
    left = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            if os.getsid(process.pid) != session or process.info["status"] == "zombie":
                continue
            left.append(" ".join(process.info["cmdline"] or [])[:200])
            process.kill()
        except (OSError, psutil.Error):
            continue
    return left


@pytest.fixture(scope="module")
def smoke_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SmokeRuns]:
    """Started for the scripts whose tests were selected (-k, -m) and can run here."""
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if getattr(item, "originalname", "") == TEST and hasattr(item, "callspec")
    }
    runnable = {name for name in selected if unmet(NEEDS[name]) is None}
    runs = SmokeRuns(runnable, tmp_path_factory.mktemp("bench-smoke"))
    yield runs
    runs.stop()


def test_every_bench_script_has_a_smoke_run() -> None:
    # given every script in bench/
    scripts = {path.stem for path in BENCH.glob("*.py")} - HELPERS

    # then each one is smoke-tested here, in a lane
    assert scripts == set(NEEDS)
    assert sorted(sum(LANES, ())) == sorted(NEEDS)


@pytest.mark.e2e
@pytest.mark.timeout(WAIT + 60)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=[pytest.mark.postgres] if "postgres" in NEEDS[n] else [])
        for n in NEEDS
    ],
)
def test_bench_script_runs_end_to_end_and_records_its_figures(
    name: str, smoke_runs: SmokeRuns
) -> None:
    # given the tools the script needs
    if missing := unmet(NEEDS[name]):
        message, tool = missing
        if tool and os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":  # CI installs them
            pytest.fail(message)
        pytest.skip(message)

    # when it ran as `make bench` runs it, in its smoke mode
    smoke = smoke_runs.wait(name)

    # then it succeeded and appended one smoke run with its headline figures
    output = smoke.output[-6000:]
    assert not smoke.timed_out, f"{output}\n(interrupted after {TIMEOUT} s)"
    assert smoke.returncode == 0, output
    assert not smoke.left_behind, f"processes left running: {smoke.left_behind}"
    document = json.loads(smoke.results.read_text())
    assert document["machine"]["cpus"] == os.cpu_count()
    [run] = document["runs"]
    assert run["bench"] == name
    assert run["smoke"] is True
    assert run["figures"], output
    assert all(figure["bench"] == name for figure in run["figures"])
    # Tiny runs on a busy machine: a figure may be missing (no call flowed in time), not all.
    assert any(figure["value"] is not None for figure in run["figures"]), run["figures"]
    print(f"bench/{name}.py --smoke: {smoke.seconds:.0f} s, {len(run['figures'])} figures")


def test_no_bench_module_shadows_the_standard_library() -> None:
    # given the modules of bench/ (its own folder is first on sys.path when a script runs)
    names = {path.stem for path in BENCH.glob("*.py")} | {"bench"}

    # then none hides a standard module from the scripts' imports
    assert not names & set(sys.stdlib_module_names)
