"""How fast Spool searches and sells numbers with 1,000,000 numbers in inventory (PostgreSQL).

Measures, through the HMAC-authenticated ACS Phone Numbers API (api-version 2025-06-01):
- search latency p50/p99 for one client, N sequential searches (quantity 1) per scenario:
  (a) an area code + calling/SMS inbound+outbound, (b) a capability-only filter (no area
  code), (c) a rare combination (an area code where few numbers have the capabilities);
- searches per second with several concurrent clients for a few seconds;
- purchases per second end to end: M searches of 1-5 numbers, then one :purchase each, timed
  until every purchase operation has succeeded (a real Celery worker runs them);
- EXPLAIN (ANALYZE, BUFFERS) of the search's SELECT ... FOR UPDATE SKIP LOCKED, compiled
  from orders._candidates() exactly as do_search() runs it, and whether a Seq Scan appears;
  (the partial index numbers_available_search_idx is what keeps these short: this script
  found the need for it, p99 631 ms on 1M numbers without it).
Aim: search p99 under 50 ms, no full-table scans: no Seq Scan, and no index scan that reads
and discards a large part of the table either (an ORDER BY ... LIMIT plan can do that).

How: `tests.conftest.start_spool()` starts `manage.py serve` (its default web sizes) on free
ports with a throwaway PostgreSQL database. The script fills that database's
numbers_phonenumber with 1,000,000 synthetic numbers by COPY (307 area codes of uneven size,
mixed capabilities, 5% toll-free), VACUUM ANALYZEs it, then drives the API with http.client
over keep-alive connections, signing every request afresh. Needs DATABASE_URL (PostgreSQL)
and, for the shared Redis, REDIS_URL:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/phone_numbers.py [--searches 300] [--clients 8] [--seconds 10]
            [--smoke] [--json PATH]

Prints figures; exits non-zero only when something could not be set up. With --json PATH (or
SPOOL_BENCH_JSON) its headline figures go to that file too (bench/bench_results.py); --smoke is
the CI-safe run: 50,000 numbers, 3 searches each, 2 clients for 1 s, 3 purchases.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from bench import bench_results  # noqa: E402

API_VERSION = "2025-06-01"
INVENTORY = 1_000_000
AIM_P99_MS = 50.0

# Area codes: 299 ordinary geographic ones of uneven size (a Zipf-like spread, ~1k to ~13k
# numbers each), one "rare" geographic code where most numbers are voice-only, and the US
# toll-free codes.
TOLL_FREE_CODES = ("800", "833", "844", "855", "866", "877", "888")
TOLL_FREE_COUNT = 50_000
RARE_CODE = "907"
RARE_COUNT = 30_000
# One rare-code number in RARE_EVERY has full capabilities: 3,000 match scenario (c), enough
# for both rounds of sequential and concurrent runs, which hold one number per search.
RARE_EVERY = 10
GEOGRAPHIC_CODES = 299

# (calling, sms) by a row's slot out of 100: mostly full capabilities, some variety.
CAPABILITY_MIX = (
    [("inbound+outbound", "inbound+outbound")] * 80
    + [("inbound+outbound", "none")] * 8
    + [("inbound", "none")] * 5
    + [("outbound", "outbound")] * 4
    + [("inbound+outbound", "inbound")] * 3
)
STATES = ("WA", "OR", "CA", "NV", "AZ", "TX", "NY", "NJ", "MA", "IL", "OH", "GA", "FL", "CO")
CITIES = ("Springfield", "Riverside", "Fairview", "Franklin", "Greenville", "Bristol", "Salem")

COPY_COLUMNS = (
    "number",
    "country_code",
    "number_type",
    "locality",
    "administrative_division",
    "area_code",
    "assignable_to_person",
    "assignable_to_application",
    "calling",
    "sms",
    "monthly_cost",
    "setup_cost",
    "currency",
    "carrier",
    "status",
    "owned_assignment_type",
    "owned_calling",
    "owned_sms",
    "inbound_destination",
    "created_at",
)

BOTH = {"calling": "inbound+outbound", "sms": "inbound+outbound"}


class SetupError(Exception):
    """Something the measurement needs could not be started or did not answer."""


@dataclass
class Resource:
    prefix: str  # /r/<slug>
    key: str


@dataclass
class Inventory:
    geographic_codes: list[str]  # the ordinary ones, by size, largest first
    sizes: dict[str, int]


@dataclass
class Row:
    """One line of the results table."""

    scenario: str
    clients: int
    requests: int
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    note: str = ""


@dataclass
class Timings:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""


# --- Setting up -------------------------------------------------------------------------
def load_conftest(scratch: Path) -> ModuleType:
    """tests/conftest.py (as bench/tokens.py loads it): starts serve, signs requests.

    Django is set up with the test settings first (conftest imports models); their data dir
    goes to our scratch dir so nothing is left behind.
    """
    os.environ["SPOOL_DATA_DIR"] = str(scratch / "bench-process")
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from tests import conftest

    return conftest


def serve_sizes() -> dict[str, str]:
    """serve's own defaults (spool.settings); start_spool() would otherwise trim them to 1."""
    from django.conf import settings

    return {
        "SPOOL_WEB_PROCESSES": str(settings.WEB_PROCESSES),
        "SPOOL_WEB_THREADS": str(settings.WEB_THREADS),
        "SPOOL_WORKER_CONCURRENCY": str(settings.WORKER_CONCURRENCY),
    }


# --- The synthetic inventory ------------------------------------------------------------
def plan_inventory(rng: random.Random) -> tuple[Inventory, list[tuple[str, int, str, str]]]:
    """Area codes with their sizes, and (area code, count, locality, division) blocks."""
    candidates = [
        str(code)
        for code in range(201, 990)
        if str(code) not in TOLL_FREE_CODES and str(code) != RARE_CODE and code % 100 != 11
    ]
    codes = sorted(rng.sample(candidates, GEOGRAPHIC_CODES))
    ordinary = INVENTORY - TOLL_FREE_COUNT - RARE_COUNT
    # Zipf-like weights, shuffled over the codes so size is unrelated to sort order.
    weights = [1 / (rank + 30) for rank in range(GEOGRAPHIC_CODES)]
    rng.shuffle(weights)
    total = sum(weights)
    sizes = {code: int(ordinary * w / total) for code, w in zip(codes, weights, strict=True)}
    sizes[codes[0]] += ordinary - sum(sizes.values())  # exactly INVENTORY in all
    blocks = [(code, sizes[code], rng.choice(CITIES), rng.choice(STATES)) for code in codes]
    blocks.append((RARE_CODE, RARE_COUNT, "Anchorage", "AK"))
    per_toll_free = TOLL_FREE_COUNT // len(TOLL_FREE_CODES)
    for n, code in enumerate(TOLL_FREE_CODES):
        count = per_toll_free + (TOLL_FREE_COUNT % len(TOLL_FREE_CODES) if n == 0 else 0)
        blocks.append((code, count, "", ""))
    # In number order, so the unique index on `number` takes its entries in order.
    blocks.sort()
    by_size = sorted(codes, key=lambda c: -sizes[c])
    all_sizes = {code: count for code, count, _, _ in blocks}
    return Inventory(geographic_codes=by_size, sizes=all_sizes), blocks


def inventory_lines(blocks: list[tuple[str, int, str, str]]) -> Iterator[str]:
    """COPY text-format lines: every NOT NULL column gets a value (Django's defaults are
    Python-side, not database defaults); the nullable ones are left to NULL."""
    created = datetime.now(UTC).isoformat()
    for code, count, locality, division in blocks:
        toll_free = code in TOLL_FREE_CODES
        kind = "tollFree" if toll_free else "geographic"
        cost = "2.00" if toll_free else "1.00"
        head = f"\tUS\t{kind}\t{locality}\t{division}\t{code}\t"
        tail = f"\t{cost}\t0.00\tUSD\tloopback\tavailable\t\t\t\t\t{created}\n"
        for k in range(count):
            if code == RARE_CODE:
                calling, sms = BOTH.values() if k % RARE_EVERY == 0 else ("inbound", "none")
            else:
                # A multiplier coprime to 100 scatters the mix along the number order.
                calling, sms = CAPABILITY_MIX[(k * 37) % 100]
            person = "f" if k % 10 == 9 else "t"
            application = "f" if k % 50 == 49 else "t"
            # +1 NPA NXX XXXX: exchanges from 200, so every number is 12 characters.
            number = f"+1{code}{200 + k // 10_000}{k % 10_000:04d}"
            yield f"{number}{head}{person}\t{application}\t{calling}\t{sms}{tail}"


def fill_inventory(database_url: str, blocks: list[tuple[str, int, str, str]]) -> float:
    import psycopg

    started = time.monotonic()
    with psycopg.connect(database_url) as conn:
        with conn.cursor() as cur:
            columns = ", ".join(COPY_COLUMNS)
            with cur.copy(f"COPY numbers_phonenumber ({columns}) FROM STDIN") as copy:
                chunk: list[str] = []
                for line in inventory_lines(blocks):
                    chunk.append(line)
                    if len(chunk) == 50_000:
                        copy.write("".join(chunk))
                        chunk = []
                if chunk:
                    copy.write("".join(chunk))
        conn.commit()
        count = conn.execute("SELECT count(*) FROM numbers_phonenumber").fetchone()
        if not count or count[0] != INVENTORY:
            raise SetupError(f"expected {INVENTORY:,} numbers, found {count}")
    with psycopg.connect(database_url, autocommit=True) as conn:
        # VACUUM as well as ANALYZE: it sets hint bits and the visibility map, as autovacuum
        # would have long since done on an inventory that was imported days ago.
        conn.execute("VACUUM (ANALYZE) numbers_phonenumber")
    return time.monotonic() - started


# --- HTTP ---------------------------------------------------------------------------------
class Client:
    """One keep-alive connection to serve's plain HTTP port, signing like an ACS SDK."""

    def __init__(self, conftest: ModuleType, http_url: str, resource: Resource) -> None:
        self.conftest = conftest
        self.netloc = urlsplit(http_url).netloc
        self.resource = resource
        self.signing_host = f"{self.netloc}{resource.prefix}"
        self.connection = self._connect()

    def _connect(self) -> http.client.HTTPConnection:
        host, _, port = self.netloc.partition(":")
        return http.client.HTTPConnection(host, int(port), timeout=30)

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, http.client.HTTPResponse, bytes, float]:
        """(status, response, body, seconds) of one signed request; retried once on a fresh
        connection if the server had closed the idle one (uvicorn's keep-alive timeout)."""
        target = f"{self.resource.prefix}{path}?api-version={API_VERSION}"
        data = json.dumps(body).encode() if body is not None else b""
        for attempt in (1, 2):
            headers = self.conftest.sign_headers(
                method, target, data, self.resource.key, self.signing_host
            )
            headers["Content-Type"] = "application/json"
            started = time.perf_counter()
            try:
                self.connection.request(method, target, body=data, headers=headers)
                response = self.connection.getresponse()
                payload = response.read()
            except (http.client.RemoteDisconnected, ConnectionError, BrokenPipeError):
                self.connection.close()
                self.connection = self._connect()
                if attempt == 2:
                    raise
                continue
            return response.status, response, payload, time.perf_counter() - started
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.connection.close()


def search_body(area_code: str, calling: str, sms: str, quantity: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {
        "phoneNumberType": "geographic",
        "assignmentType": "application",
        "capabilities": {"calling": calling, "sms": sms},
        "quantity": quantity,
    }
    if area_code:
        body["areaCode"] = area_code
    return body


SEARCH_PATH = "/availablePhoneNumbers/countries/US/:search"


def scenario_bodies(inventory: Inventory) -> dict[str, Callable[[random.Random], dict[str, Any]]]:
    """Each scenario's request body, drawn afresh per request."""
    codes = inventory.geographic_codes
    return {
        # Any of the 299 ordinary codes, uniformly: small and large ones alike.
        "(a) area code + in+out": lambda rng: search_body(rng.choice(codes), **BOTH),
        "(b) calling inbound, sms none, no area code": lambda rng: search_body(
            "", "inbound", "none"
        ),
        f"(c) rare: {RARE_CODE} + in+out": lambda rng: search_body(RARE_CODE, **BOTH),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


def record(timings: Timings, status: int, payload: bytes, seconds: float) -> None:
    if status == 202:
        timings.latencies.append(seconds)
    else:
        timings.errors += 1
        timings.first_error = timings.first_error or f"{status} {payload[:200]!r}"


def sequential(client: Client, body: Callable[[random.Random], dict[str, Any]], n: int) -> Timings:
    rng = random.Random(7)
    timings = Timings()
    for _ in range(n):
        status, _, payload, seconds = client.call("POST", SEARCH_PATH, body(rng))
        record(timings, status, payload, seconds)
    return timings


def concurrent(
    conftest: ModuleType,
    http_url: str,
    resource: Resource,
    bodies: list[Callable[[random.Random], dict[str, Any]]],
    clients: int,
    seconds: float,
) -> tuple[Timings, float]:
    """Each thread its own connection, cycling through the scenarios until the deadline."""
    results = [Timings() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    deadline = [0.0]

    def run(index: int) -> None:
        client = Client(conftest, http_url, resource)
        rng = random.Random(index)
        timings = results[index]
        start.wait()
        turn = index
        try:
            while time.monotonic() < deadline[0]:
                body = bodies[turn % len(bodies)](rng)
                turn += 1
                status, _, payload, took = client.call("POST", SEARCH_PATH, body)
                record(timings, status, payload, took)
        finally:
            client.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + seconds
    began = time.monotonic()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    merged = Timings()
    for timings in results:
        merged.latencies += timings.latencies
        merged.errors += timings.errors
        merged.first_error = merged.first_error or timings.first_error
    return merged, elapsed


def row(scenario: str, clients: int, timings: Timings, elapsed: float, note: str = "") -> Row:
    done = len(timings.latencies)
    return Row(
        scenario=scenario,
        clients=clients,
        requests=done + timings.errors,
        per_second=done / elapsed if elapsed else float("nan"),
        p50_ms=percentile(timings.latencies, 0.50) * 1000,
        p99_ms=percentile(timings.latencies, 0.99) * 1000,
        errors=timings.errors,
        note=note or (f"first error: {timings.first_error}" if timings.first_error else ""),
    )


def purchases(client: Client, inventory: Inventory, count: int) -> list[Row]:
    """M searches (1-5 numbers each), then M purchases, timed until all have succeeded."""
    rng = random.Random(11)
    search_ids: list[str] = []
    held = 0
    for _ in range(count):
        quantity = rng.randint(1, 5)
        body = search_body(rng.choice(inventory.geographic_codes), **BOTH, quantity=quantity)
        status, response, payload, _ = client.call("POST", SEARCH_PATH, body)
        if status != 202:
            raise SetupError(f"a search for the purchases answered {status}: {payload[:300]!r}")
        search_ids.append(response.headers["search-id"])
        held += quantity

    submit = Timings()
    pending: dict[str, str] = {}  # operation id -> its status
    started = time.monotonic()
    for search_id in search_ids:
        status, response, payload, took = client.call(
            "POST", "/availablePhoneNumbers/:purchase", {"searchId": search_id}
        )
        record(submit, status, payload, took)
        if status == 202:
            pending[response.headers["operation-id"]] = "notStarted"
    submitted = time.monotonic() - started
    # Poll as an SDK would (it waits Retry-After: 1 s; we poll faster, for a finer figure).
    polls = 0
    while any(s in ("notStarted", "running") for s in pending.values()):
        if time.monotonic() - started > 90:
            raise SetupError(f"purchases unfinished after 90 s: {sorted(pending.values())}")
        for operation_id, state in list(pending.items()):
            if state in ("notStarted", "running"):
                status, _, payload, _ = client.call(
                    "GET", f"/phoneNumbers/operations/{operation_id}"
                )
                polls += 1
                if status == 200:
                    pending[operation_id] = json.loads(payload)["status"]
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    succeeded = sum(1 for s in pending.values() if s == "succeeded")
    return [
        row(
            f":purchase requests ({held} numbers in {count} searches)",
            1,
            submit,
            submitted,
            note="202 latency; the worker runs them meanwhile",
        ),
        Row(
            "purchases end to end (submit -> all succeeded)",
            1,
            count,
            succeeded / elapsed,
            float("nan"),
            float("nan"),
            count - succeeded,
            note=f"{succeeded * held / count / elapsed:,.0f} numbers/s over {elapsed:.2f} s "
            f"({polls} operation polls)",
        ),
    ]


# --- Query plans --------------------------------------------------------------------------
def search_sql(body: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """The SELECT ... FOR UPDATE SKIP LOCKED that do_search() runs for this request body,
    compiled by Django itself (the compiler needs an open transaction for FOR UPDATE; the
    SQL does not depend on which database that is)."""
    from django.db import connection, transaction

    from apps.numbers import orders

    request = orders.check_search_request("US", body)
    with transaction.atomic():
        query = (
            orders._candidates(request)
            .select_for_update(skip_locked=connection.features.has_select_for_update_skip_locked)
            .values_list("pk", flat=True)[: request["quantity"]]
        )
        sql, params = query.query.get_compiler(connection=connection).as_sql()
    connection.close()
    return sql, tuple(params)


@dataclass
class Plan:
    label: str
    sql: str
    lines: list[str]

    @property
    def seq_scan(self) -> bool:
        return any("Seq Scan" in line for line in self.lines)

    @property
    def rows_filtered(self) -> int:
        return sum(
            int(line.split(":")[1])
            for line in self.lines
            if line.strip().startswith("Rows Removed by Filter:")
        )

    @property
    def full_walk(self) -> bool:
        """A full-table scan in effect: a Seq Scan, or an index scan that reads and throws
        away a large part of the table (here: at least a tenth of it)."""
        return self.seq_scan or self.rows_filtered >= INVENTORY // 10

    @property
    def execution_ms(self) -> float:
        for line in self.lines:
            if line.strip().startswith("Execution Time:"):
                return float(line.split(":")[1].split()[0])
        return float("nan")


def explain(database_url: str, cases: list[tuple[str, dict[str, Any]]]) -> list[Plan]:
    """EXPLAIN (ANALYZE, BUFFERS) each case in a transaction that is rolled back (the query
    locks the rows it picks). Run twice, keeping the second: the first reads pages into the
    cache, and a search that repeats is served from it."""
    import psycopg

    plans: list[Plan] = []
    with psycopg.connect(database_url) as conn:
        # Client-side binding, as Django's PostgreSQL backend uses by default: the planner
        # sees the literal values, exactly as for the server's own queries.
        cur = psycopg.ClientCursor(conn)
        for _ in range(2):
            plans = []
            try:
                for label, body in cases:
                    sql, params = search_sql(body)
                    cur.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
                    lines = [line for (line,) in cur.fetchall()]
                    plans.append(Plan(label, cur.mogrify(sql, params), lines))
            finally:
                conn.rollback()
    return plans


def print_plans(title: str, plans: list[Plan], with_sql: bool) -> None:
    print(f"\n=== {title} ===")
    for plan in plans:
        print(
            f"\n--- {plan.label}: {plan.execution_ms:.2f} ms; Seq Scan: "
            f"{'yes' if plan.seq_scan else 'no'}; rows read and filtered out: "
            f"{plan.rows_filtered:,}{' (a full walk in effect)' if plan.full_walk else ''} ---"
        )
        if with_sql:
            print(plan.sql)
        for line in plan.lines:
            print(f"  {line}")


def plan_cases(inventory: Inventory) -> list[tuple[str, dict[str, Any]]]:
    """The searches whose plans are shown: for (a) the largest and smallest area codes and the
    one last in number order (the planner's walk of the `number` index reaches it last)."""
    largest, smallest = inventory.geographic_codes[0], inventory.geographic_codes[-1]
    last = max(inventory.geographic_codes)
    return [
        (f"(a) largest area code {largest}", search_body(largest, **BOTH)),
        (f"(a) smallest area code {smallest}", search_body(smallest, **BOTH)),
        (f"(a) area code last in number order {last}", search_body(last, **BOTH)),
        ("(b) calling inbound, sms none, no area code", search_body("", "inbound", "none")),
        (f"(c) rare {RARE_CODE}", search_body(RARE_CODE, **BOTH)),
    ]


def measure_searches(
    conftest: ModuleType,
    http_url: str,
    resource: Resource,
    inventory: Inventory,
    args: argparse.Namespace,
    tag: str,
) -> list[Row]:
    """The sequential runs of each scenario, then the concurrent run of all three."""
    bodies = scenario_bodies(inventory)
    client = Client(conftest, http_url, resource)
    # Off the record: imports, connections and caches warm in both web processes.
    other = Client(conftest, http_url, resource)
    for body in bodies.values():
        sequential(client, body, 5)
        sequential(other, body, 5)
    other.close()
    rows: list[Row] = []
    for name, body in bodies.items():
        started = time.monotonic()
        timings = sequential(client, body, args.searches)
        rows.append(row(f"search {name}{tag}", 1, timings, time.monotonic() - started))
        print(f"  measured {rows[-1].scenario}", flush=True)
    client.close()
    timings, elapsed = concurrent(
        conftest, http_url, resource, list(bodies.values()), args.clients, args.seconds
    )
    rows.append(row(f"search, (a)(b)(c) in turn{tag}", args.clients, timings, elapsed))
    print(f"  measured {rows[-1].scenario}", flush=True)
    return rows


# --- Report ---------------------------------------------------------------------------------
def print_table(rows: list[Row]) -> None:
    width = max(len(r.scenario) for r in rows)
    print(
        f"{'scenario':<{width}}  {'clients':>7}  {'requests':>8}  {'per s':>7}  {'p50 ms':>7}"
        f"  {'p99 ms':>7}  {'errors':>6}  note"
    )
    for r in rows:
        print(
            f"{r.scenario:<{width}}  {r.clients:>7}  {r.requests:>8}  {r.per_second:>7,.1f}"
            f"  {r.p50_ms:>7.1f}  {r.p99_ms:>7.1f}  {r.errors:>6}  {r.note}"
        )


def verdict(label: str, rows: list[Row], plans: list[Plan]) -> None:
    searches = [r for r in rows if r.scenario.startswith("search")]
    worst = max(searches, key=lambda r: r.p99_ms)
    walks = [p.label for p in plans if p.full_walk]
    print(
        f"{label}: search p99 < {AIM_P99_MS:g} ms "
        f"{'met' if worst.p99_ms < AIM_P99_MS else 'NOT met'} (worst {worst.p99_ms:.1f} ms, "
        f"{worst.scenario}); Seq Scan in {sum(p.seq_scan for p in plans)} of {len(plans)} "
        f"plans; no full-table scans "
        + ("met" if not walks else f"NOT met (full walk of an index: {', '.join(walks)})")
    )


def record_figures(results_file: bench_results.Results, rows: list[Row], plans: list[Plan]) -> None:
    """Searches/s with their p50/p99 (the aim is on p99), purchases/s end to end, and the
    query plans that walk the table (the aim: none). No ceiling is measured for these."""
    for r in rows:
        if r.scenario.startswith("search"):
            results_file.add(
                f"{r.scenario}, {r.clients} client(s)",
                r.per_second,
                "searches/s",
                p50_ms=r.p50_ms,
                p99_ms=r.p99_ms,
            )
        elif r.scenario.startswith("purchases end to end"):
            results_file.add(
                "purchases end to end (submit -> all succeeded)", r.per_second, "purchases/s"
            )
    results_file.add(
        "search query plans walking the table",
        sum(p.full_walk for p in plans),
        f"of {len(plans)} plans",
        better="lower",
    )


def main() -> int:
    global INVENTORY, TOLL_FREE_COUNT, RARE_COUNT
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=300, help="sequential searches each")
    parser.add_argument("--clients", type=int, default=8, help="threads in the concurrent run")
    parser.add_argument("--seconds", type=float, default=10, help="length of the concurrent run")
    parser.add_argument("--purchases", type=int, default=100, help="searches then purchased")
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    if args.smoke:
        args.searches, args.clients, args.seconds, args.purchases = 3, 2, 1, 3
        # A twentieth of the inventory; the rare code keeps 300 numbers with every capability.
        INVENTORY, TOLL_FREE_COUNT, RARE_COUNT = 50_000, 3_500, 3_000
    results_file = bench_results.Results("phone_numbers", smoke=args.smoke, path=args.json)
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        print(
            "bench/phone_numbers.py measures PostgreSQL: set DATABASE_URL (e.g. "
            "postgres://postgres@127.0.0.1:5432/test) and REDIS_URL (e.g. "
            "redis://127.0.0.1:6379/0)",
            file=sys.stderr,
        )
        return 2

    began = time.monotonic()
    scratch = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    live = cleanups = None
    try:
        conftest = load_conftest(scratch)
        sizes = serve_sizes()
        redis = "Redis at REDIS_URL" if os.environ.get("REDIS_URL") else "private Redis (embedded)"
        print(
            f"Spool number search and purchase: PostgreSQL, {redis}, "
            f"{sizes['SPOOL_WEB_PROCESSES']} web processes x {sizes['SPOOL_WEB_THREADS']} "
            f"threads, worker concurrency {sizes['SPOOL_WORKER_CONCURRENCY']}, "
            f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        # The searches hold their numbers until they expire: the cap on numbers held per
        # resource is checked on every search but never reached, as the benches do with quotas.
        live, cleanups = conftest.start_spool({**sizes, "SPOOL_MAX_HELD_NUMBERS": "1000000"})
        connection = live.create_resource(f"bench-{os.getpid()}")
        fields = dict(part.partition("=")[::2] for part in connection.split(";") if part)
        resource = Resource(prefix=f"/r/{live.slug_of(connection)}", key=fields["accesskey"])
        database_url = live.env["DATABASE_URL"]

        inventory, blocks = plan_inventory(random.Random(2026))
        filled = fill_inventory(database_url, blocks)
        ordinary = sorted(inventory.sizes[c] for c in inventory.geographic_codes)
        print(
            f"inventory: {INVENTORY:,} numbers by COPY + VACUUM ANALYZE in {filled:.1f} s; "
            f"{len(inventory.sizes)} area codes ({GEOGRAPHIC_CODES} ordinary: "
            f"{ordinary[0]:,} to {ordinary[-1]:,} numbers, median {ordinary[len(ordinary) // 2]:,}; "
            f"rare {RARE_CODE}: {RARE_COUNT:,} numbers, {math.ceil(RARE_COUNT / RARE_EVERY):,} "
            f"with full capabilities; {len(TOLL_FREE_CODES)} toll-free: {TOLL_FREE_COUNT:,})",
            flush=True,
        )

        rows = measure_searches(conftest, live.http_url, resource, inventory, args, "")
        client = Client(conftest, live.http_url, resource)
        rows += purchases(client, inventory, args.purchases)
        client.close()
        print("  measured purchases", flush=True)
        # After the runs, so the plans see the numbers those searches hold, as the server did.
        plans = explain(database_url, plan_cases(inventory))
    except (SetupError, RuntimeError) as error:
        print(f"setup failed: {error}", file=sys.stderr)
        return 1
    finally:
        if live is not None and cleanups is not None:
            conftest.stop_spool(live, cleanups)
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print_table(rows)
    print_plans("query plans", plans, with_sql=True)

    print()
    verdict("aim", rows, plans)
    record_figures(results_file, rows, plans)
    results_file.save()
    print(
        f"total run time {time.monotonic() - began:.0f} s; "
        f"load average at the end {os.getloadavg()[0]:.2f} (1 min)"
    )
    return 0


if __name__ == "__main__":
    # This file shares its name with the stdlib's `numbers`, which decimal (and so Django)
    # imports: drop the script's own directory from the path before anything imports it.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
    sys.exit(main())
