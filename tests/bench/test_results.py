"""The bench scripts' shared results file (bench/bench_results.py), the summary table of a run
(bench/summary.py) and the comparison of two runs (bench/compare.py)."""

from __future__ import annotations

import json
import math
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bench import bench_results, compare, summary

ROOT = Path(__file__).resolve().parent.parent.parent


def _run_of(bench: str, path: Path, figures: list[tuple[str, float, float | None]]) -> None:
    results = bench_results.Results(bench, path=str(path))
    for name, value, ceiling in figures:
        results.add(name, value, "/s", ceiling_name="bare" if ceiling else "", ceiling=ceiling)
    results.save()


def test_each_script_appends_its_run_to_one_file_with_the_machine_facts(tmp_path: Path) -> None:
    # given a results file two scripts write to, one after the other
    path = tmp_path / "run.json"

    # when
    _run_of("tokens", path, [("HTTP, 32 clients", 500.0, 2000.0)])
    _run_of("sms", path, [("accepted", 900.0, None)])

    # then
    document = json.loads(path.read_text())
    assert [run["bench"] for run in document["runs"]] == ["tokens", "sms"]
    assert document["machine"]["cpus"] >= 1
    assert document["machine"]["database"] in ("SQLite (embedded)", "PostgreSQL")
    [tokens] = document["runs"][0]["figures"]
    assert tokens["ratio"] == 0.25
    assert tokens["ceiling_name"] == "bare"
    assert document["runs"][1]["figures"][0]["ratio"] is None


def test_a_pipe_named_as_the_file_is_written_to_and_stays_a_pipe(tmp_path: Path) -> None:
    # given a path that is not a plain file (as /dev/null is), with a reader at its end
    pipe = tmp_path / "results"
    os.mkfifo(pipe)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)
    reader.start()

    bench_results.write(pipe, bench_results.new_document())
    reader.join(5)

    assert stat.S_ISFIFO(os.stat(pipe).st_mode)  # not renamed over
    assert json.loads(received[0])["runs"] == []


def test_a_missing_figure_is_stored_as_null_not_nan(tmp_path: Path) -> None:
    # given
    path = tmp_path / "run.json"
    results = bench_results.Results("calls", path=str(path))

    # when
    results.add("setup p50", math.nan, "ms", better="lower", ceiling=10.0, p99_ms=math.inf)
    results.save()

    # then the file is strict JSON
    [figure] = json.loads(path.read_text())["runs"][0]["figures"]
    assert figure["value"] is None
    assert figure["ratio"] is None
    assert figure["p99_ms"] is None


def test_a_script_run_alone_writes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # given neither --json nor SPOOL_BENCH_JSON
    monkeypatch.delenv(bench_results.JSON_ENV, raising=False)
    results = bench_results.Results("tokens")
    results.add("HTTP", 1.0, "/s")

    # when / then
    assert results.save() is None


def test_the_summary_shows_each_figure_beside_its_ceiling_and_ratio(tmp_path: Path) -> None:
    # given
    path = tmp_path / "run.json"
    _run_of("tokens", path, [("HTTP, 32 clients", 500.0, 2000.0)])

    # when
    completed = subprocess.run(
        [sys.executable, "bench/summary.py", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )

    # then
    line = next(row for row in completed.stdout.splitlines() if "HTTP, 32 clients" in row)
    assert line.split()[0] == "tokens"
    assert "500" in line
    assert "2,000" in line
    assert line.rstrip().endswith("0.25")


def test_the_summary_keeps_the_failed_scripts_and_exits_non_zero(tmp_path: Path) -> None:
    # given a run in which no script recorded anything
    path = tmp_path / "run.json"

    # when
    completed = subprocess.run(
        [sys.executable, "bench/summary.py", str(path), "--failed", "chat calls"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )

    # then
    assert completed.returncode == 1
    assert "FAILED" in completed.stdout
    assert json.loads(path.read_text())["failed"] == ["chat", "calls"]


def test_compare_prints_the_change_of_each_figure_and_ratio_in_percent(tmp_path: Path) -> None:
    # given two runs of the same figures, the second 10% faster against a ceiling 20% faster
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    _run_of("tokens", old, [("HTTP, 32 clients", 500.0, 2000.0)])
    _run_of("tokens", new, [("HTTP, 32 clients", 550.0, 2400.0), ("HTTPS", 400.0, None)])

    # when
    lines = compare.compare(bench_results.load(old), bench_results.load(new), threshold=5)

    # then
    [http] = [line for line in lines if "HTTP, 32 clients" in line]
    assert http.split()[-6:] == ["+10.0%", "better", "0.25", "0.23", "-8.3%", "worse"]
    [https] = [line for line in lines if "HTTPS" in line]
    assert "(none)" in https


def test_a_lower_is_better_figure_that_drops_is_better() -> None:
    # given / when / then
    assert compare.verdict(compare.change(200.0, 150.0), "lower", 5) == "better"
    assert compare.verdict(compare.change(200.0, 205.0), "lower", 5) == ""
    assert summary.figure(0.1234) == "0.12"
    assert summary.figure(12_345.6) == "12,346"
