"""How fast chat messages reach 1,000 WebSockets, beside this machine's raw fan-out ceiling.

Measures, on ONE web process (SPOOL_WEB_PROCESSES=1) holding 1,000 identity sockets
(/ws/?access_token=...) of 100 threads of 10 participants:
- the posting side: messages posted through the ACS Chat API
  (POST /r/<slug>/chat/threads/<id>/messages, api-version 2024-03-07, Bearer token of one of
  the thread's participants) at a fixed offered rate from a few keep-alive connections,
  accepted per second and the API's p50/p99;
- the delivery side: chatMessageReceived frames per second over the sockets (every participant,
  the sender too, gets each message: 10 deliveries per message), p50/p99 from the time the post
  was sent (embedded in the message) to the frame's arrival, the p99 from the time the post was
  due (shows the poster falling behind its schedule), and lost deliveries (10 per accepted
  message, minus those that arrived);
- memory per idle connection: the RSS of serve's `runweb` process before and after opening the
  1,000 sockets, divided by 1,000.
Each offered rate runs twice: posts sent to the web process that holds the sockets, and posts
sent to a second web process (uvicorn on spool.asgi, same data dir, database and Redis), so the
first process only fans out.

In the same run, the ceiling of ../shared/baselines/: `ws_raw_server.py PORT` (plain websockets +
Redis pub/sub) loaded by `ws_load.py URL 1000 10 RATE SECONDS` at the same rates plus 400/s.
Aim: p99 under 100 ms while delivering at least 2,000 deliveries/s with none lost, and under
100 KiB per idle connection.

How: `tests.conftest.start_spool()` starts `manage.py serve` on free ports with a temporary
data dir, a throwaway PostgreSQL database when DATABASE_URL is set, and REDIS_URL's Redis when
set (its own database number; else the embedded private Redis). Identities and chat tokens come
from the HMAC-signed Identity API, threads from the Chat API. The sockets are read by one
asyncio loop in this process (websockets, no compression, like ws_load.py; --deflate offers
permessage-deflate as browsers do); the poster is a child process (this script with --post)
with one thread per connection. The load shares the machine's cores with the server.
ws_raw_server.py talks to Redis on 127.0.0.1:6379; if nothing answers there, the embedded
Redis's own redis-server is run there for the duration.

    .venv/bin/python bench/chat.py [--rates 100,200] [--seconds 15] [--connections 8]
        [--deflate] [--no-ceiling] [--quick] [--smoke] [--json PATH]

Prints figures and one JSON line; exits non-zero only when something could not be set up. With
--json PATH (or SPOOL_BENCH_JSON) its headline figures go to that file too
(bench/bench_results.py); --smoke is the CI-safe run: 20 sockets, 20 messages/s for 1 s, the
ceiling at that rate only.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from bench import bench_results, sms, tokens  # noqa: E402

IDENTITY_API_VERSION = "2023-10-01"
CHAT_API_VERSION = "2024-03-07"
CLIENTS = 1000  # --smoke: fewer
GROUP = 10  # participants per thread
CEILING_EXTRA_RATE = 400.0  # messages/s: where the raw ceiling still keeps up on this box
PAD = "x" * 80  # a message of ~120 characters, like ws_load.py's 100-byte payload
OPEN_CONCURRENCY = 50  # WebSocket handshakes in flight while opening the sockets
QUIET_SECONDS = 3.0  # a run's deliveries are over when none arrived for this long
DRAIN_LIMIT_SECONDS = 30.0
AIM_DELIVERIES_PER_SECOND = 2000
AIM_P99_MS = 100.0
AIM_KIB_PER_CONNECTION = 100.0
REST_WARNING_PERCENT = 20.0  # CPU of everything else during a run, % of a core
WARM_UP_SECONDS = 2.0  # posting off the record before each target's runs
OPEN_SETTLE_SECONDS = 3.0  # between opening the sockets and reading the memory they take
CEILING_LINE = re.compile(
    r"deliveries=(\d+)/(\d+) \(([\d,]+)/s\) p50=([\d.na]+)ms p99=([\d.na]+)ms lost=(-?\d+)"
)


@dataclass
class Posting:
    """What the poster process saw (one run)."""

    sent: int
    accepted: list[int]  # message numbers answered 201
    statuses: dict[str, int]
    error: str  # the first non-201 answer, if any
    api_p50_ms: float
    api_p99_ms: float
    lag_p99_ms: float  # how late requests left against their schedule
    first_sent: float  # time.time()
    last_answered: float
    cpu_seconds: float


@dataclass
class Run:
    target: str  # "same" (posts to the sockets' web process) or "other"
    rate: float  # messages/s offered
    seconds: float
    sent: int
    accepted: int
    accepted_per_second: float
    api_p50_ms: float
    api_p99_ms: float
    lag_p99_ms: float
    errors: int
    error: str
    delivered: int
    expected: int
    deliveries_per_second: float
    p50_ms: float
    p99_ms: float
    p99_from_schedule_ms: float
    duplicates: int
    closed_sockets: int
    cpu_percent: dict[str, float] = field(default_factory=dict)  # of one core, by process

    @property
    def lost(self) -> int:
        return self.expected - self.delivered


@dataclass
class Ceiling:
    rate: float
    deliveries: int
    expected: int
    per_second: float
    p50_ms: float
    p99_ms: float
    lost: int


@dataclass
class Memory:
    rss_before: int
    rss_open: int
    rss_end: int
    sockets: int

    @property
    def per_connection(self) -> float:
        return (self.rss_open - self.rss_before) / self.sockets


def finite(value: Any) -> Any:
    """value with NaN replaced by None at any depth, for a strict JSON line."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) of values, the way ws_load.py takes it; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


# --- The poster (a child process: `chat.py --post`, plan on stdin, Posting as JSON on stdout) --
def post_main() -> int:
    plan = json.load(sys.stdin)
    threads: list[dict[str, Any]] = plan["threads"]  # {"path": ..., "tokens": [...]}
    rate, tag, connections = float(plan["rate"]), str(plan["tag"]), int(plan["connections"])
    total = max(1, round(rate * float(plan["seconds"])))
    jobs: queue.Queue[tuple[int, float] | None] = queue.Queue()
    records: list[tuple[int, int, float, float, float, float]] = []  # i, status, api s, lag...
    errors: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        api = Api(plan["base_url"])  # plain HTTP, or HTTPS (bench/scale.py)
        while (job := jobs.get()) is not None:
            i, due = job
            thread = threads[i % len(threads)]
            token = thread["tokens"][(i // len(threads)) % len(thread["tokens"])]
            sent = time.time()
            body = json.dumps({"content": f"{tag} {i} {sent:.6f} {due:.6f} {PAD}"}).encode()
            started = time.perf_counter()
            try:
                status, answer = api.call(
                    thread["path"], {"Authorization": f"Bearer {token}"}, body
                )
            except (OSError, http.client.HTTPException) as error:
                status, answer = 0, repr(error)
            elapsed = time.perf_counter() - started
            with lock:
                records.append((i, status, elapsed, sent - due, sent, time.time()))
                if status != 201 and not errors:
                    errors.append(f"{status} {str(answer)[:300]}")
        api.close()

    workers = [threading.Thread(target=work) for _ in range(connections)]
    for worker in workers:
        worker.start()
    start = time.time() + 0.05
    for i in range(total):
        due = start + i / rate
        if (wait := due - time.time()) > 0:
            time.sleep(wait)
        jobs.put((i, due))
    for _ in workers:
        jobs.put(None)
    for worker in workers:
        worker.join()
    api = [r[2] * 1000 for r in records if r[1] == 201]
    posting = Posting(
        sent=len(records),
        accepted=sorted(r[0] for r in records if r[1] == 201),
        statuses=dict(Counter(str(r[1]) for r in records)),
        error=errors[0] if errors else "",
        api_p50_ms=percentile(api, 50),
        api_p99_ms=percentile(api, 99),
        lag_p99_ms=percentile([max(0.0, r[3]) * 1000 for r in records], 99),
        first_sent=min(r[4] for r in records),
        last_answered=max(r[5] for r in records),
        cpu_seconds=time.process_time(),
    )
    json.dump(asdict(posting), sys.stdout)
    return 0


# --- Setting up -------------------------------------------------------------------------------
class Api:
    """Requests over one keep-alive connection (reopened after an error)."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.netloc = parts.netloc
        self.secure = parts.scheme == "https"  # (bench/scale.py, through HAProxy)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.secure else 80)
        self.connection = self.connect()

    def connect(self) -> http.client.HTTPConnection:
        if self.secure:  # trusting SSL_CERT_FILE, as the default context does
            return http.client.HTTPSConnection(self.host, self.port, timeout=30)
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(self, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        try:
            self.connection.request(
                "POST", target, body, {"Content-Type": "application/json", **headers}
            )
            response = self.connection.getresponse()
            status, answer = response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = self.connect()
            raise
        try:
            return status, json.loads(answer or b"null")
        except ValueError:
            return status, answer[:300]

    def close(self) -> None:
        self.connection.close()


def create_users(
    conftest: ModuleType, base_url: str, resource: tokens.Resource, count: int
) -> list[tuple[str, str]]:
    """(raw id, chat token) of `count` new identities, from 4 keep-alive connections."""
    target = f"{resource.prefix}/identities?api-version={IDENTITY_API_VERSION}"
    body = json.dumps({"createTokenWithScopes": ["chat"]}).encode()
    users: list[tuple[str, str] | None] = [None] * count
    problems: list[str] = []

    def run(indexes: range) -> None:
        api = Api(base_url)
        try:
            for n in indexes:
                headers = conftest.sign_headers(
                    "POST", target, body, resource.key, f"{api.netloc}{resource.prefix}"
                )
                status, answer = api.call(target, headers, body)
                if status != 201:
                    problems.append(f"creating an identity answered {status}: {answer}")
                    return
                users[n] = (answer["identity"]["id"], answer["accessToken"]["token"])
        except OSError as error:
            problems.append(repr(error))
        finally:
            api.close()

    threads = [threading.Thread(target=run, args=(range(k, count, 4),)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if problems:
        raise tokens.SetupError(problems[0])
    return [user for user in users if user is not None]


def create_threads(
    base_url: str, resource: tokens.Resource, users: list[tuple[str, str]]
) -> list[dict[str, Any]]:
    """Threads of GROUP participants (consecutive users), each created by its first member;
    for each, the messages path and its participants' tokens."""
    api = Api(base_url)
    threads = []
    try:
        for first in range(0, len(users), GROUP):
            members = users[first : first + GROUP]
            body = json.dumps(
                {
                    "topic": f"bench {first // GROUP}",
                    "participants": [
                        {
                            "communicationIdentifier": {
                                "rawId": raw_id,
                                "communicationUser": {"id": raw_id},
                            },
                            "displayName": f"user {first + n}",
                        }
                        for n, (raw_id, _) in enumerate(members)
                    ],
                }
            ).encode()
            target = f"{resource.prefix}/chat/threads?api-version={CHAT_API_VERSION}"
            status, answer = api.call(target, {"Authorization": f"Bearer {members[0][1]}"}, body)
            if status != 201 or not isinstance(answer, dict) or answer.get("invalidParticipants"):
                raise tokens.SetupError(f"creating a thread answered {status}: {answer}")
            thread_id = answer["chatThread"]["id"]
            threads.append(
                {
                    "path": f"{resource.prefix}/chat/threads/{quote(thread_id, safe='')}/messages"
                    f"?api-version={CHAT_API_VERSION}",
                    "tokens": [token for _, token in members],
                }
            )
    finally:
        api.close()
    return threads


def child_process(live: Any, word: str) -> Any:
    """serve's child whose command line holds `word` (runweb, redis-server), or None."""
    import psutil

    for child in psutil.Process(live.process.pid).children():
        if word in " ".join(child.cmdline()):
            return child
    return None


def external_redis(url: str) -> Any:
    """The local process listening on REDIS_URL's port, if it can be seen, or None."""
    import psutil

    port = urlsplit(url).port or 6379
    try:
        for connection in psutil.net_connections(kind="tcp"):
            if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port:
                return psutil.Process(connection.pid) if connection.pid else None
    except psutil.Error:
        pass
    return None


API_THREADS = 1  # --api-threads: SPOOL_WEB_THREADS of the second (posting) web process


def start_other_web(conftest: ModuleType, live: Any, scratch: Path) -> tuple[Any, str]:
    """A second web process on the same data dir, database and Redis: posts only."""
    port = conftest.free_port()
    log = scratch / "other-web.log"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "spool.asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**live.env, "SPOOL_WEB_THREADS": str(API_THREADS)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            tokens.send(base_url, "GET", "/healthz", {}, b"")
            return process, base_url
        except OSError:
            time.sleep(0.2)
    tokens.stop(process)
    raise tokens.SetupError(f"the second web process did not start:\n{log.read_text()[-3000:]}")


# --- The sockets --------------------------------------------------------------------------------
class Receiver:
    """The 1,000 sockets, read by one asyncio loop; counts the current run's deliveries."""

    def __init__(self) -> None:
        self.sockets: list[Any] = []
        self.readers: list[asyncio.Task[None]] = []
        self.tag = ""
        self.reset("")
        self.closed = 0

    def reset(self, tag: str) -> None:
        self.tag = tag
        self.counts: Counter[int] = Counter()
        self.latency: list[float] = []
        self.from_schedule: list[float] = []
        self.last_at = 0.0

    async def open(self, ws_url: str, user_tokens: list[str], deflate: bool) -> None:
        from websockets.asyncio.client import connect

        limit = asyncio.Semaphore(OPEN_CONCURRENCY)

        async def one(token: str) -> Any:
            async with limit:
                ws = await connect(
                    f"{ws_url}/ws/?access_token={quote(token, safe='')}",
                    compression="deflate" if deflate else None,
                    open_timeout=60,
                )
                hello = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if hello.get("type") != "hello":
                    await ws.close()
                    raise tokens.SetupError(f"the socket's first frame was {hello}")
                return ws

        results = await asyncio.gather(*(one(t) for t in user_tokens), return_exceptions=True)
        opened = [r for r in results if not isinstance(r, BaseException)]
        self.sockets += opened
        self.readers += [asyncio.create_task(self.read(ws)) for ws in opened]
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise tokens.SetupError(
                f"{len(failures)} of {len(user_tokens)} sockets did not open: {failures[0]!r}"
            )

    async def read(self, ws: Any) -> None:
        try:
            async for text in ws:
                now = time.time()
                frame = json.loads(text)
                if frame.get("type") != "chat" or frame.get("event") != "chatMessageReceived":
                    continue
                parts = frame["data"]["message"].split(" ", 4)
                if parts[0] != self.tag:  # a late frame of an earlier run
                    continue
                self.counts[int(parts[1])] += 1
                self.latency.append(now - float(parts[2]))
                self.from_schedule.append(now - float(parts[3]))
                self.last_at = now
        except Exception:  # a closed socket (ConnectionClosed) or a frame we cannot read
            pass
        self.closed += 1

    async def drain(self, accepted: set[int]) -> None:
        """Wait until every accepted message reached its GROUP sockets, or nothing arrives."""
        expected = len(accepted) * GROUP
        deadline = time.monotonic() + DRAIN_LIMIT_SECONDS
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            got = len(self.latency)
            if got >= expected:
                return
            if got != last:
                last, since = got, time.monotonic()
            elif time.monotonic() - since >= QUIET_SECONDS:
                return
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for reader in self.readers:
            reader.cancel()
        await asyncio.gather(*(ws.close() for ws in self.sockets), return_exceptions=True)


# --- Runs ---------------------------------------------------------------------------------------
def busy_seconds() -> float:
    """CPU seconds the whole machine spent busy so far (all cores)."""
    import psutil

    times = psutil.cpu_times()
    # guest time is already counted in user time.
    idle = sum(getattr(times, name, 0.0) for name in ("idle", "iowait", "guest", "guest_nice"))
    return float(sum(times) - idle)


def postgres_seconds() -> float:
    """CPU seconds of this machine's PostgreSQL processes (server and backends) so far."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name", "cpu_times"]):
        times = process.info["cpu_times"]
        if process.info["name"] == "postgres" and times is not None:
            total += times.user + times.system
    return total


def cpu_seconds(process: Any) -> float:
    """A process's CPU seconds so far; `process` may also be a function that counts them."""
    if process is None:
        return float("nan")
    if callable(process):
        return float(process())
    try:
        times = process.cpu_times()
        return float(times.user + times.system)
    except Exception:
        return float("nan")


async def post(
    base_url: str,
    threads: list[dict[str, Any]],
    rate: float,
    seconds: float,
    connections: int,
    tag: str,
) -> Posting:
    plan = {
        "base_url": base_url,
        "threads": threads,
        "rate": rate,
        "seconds": seconds,
        "connections": connections,
        "tag": tag,
    }
    poster = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).resolve()),
        "--post",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            poster.communicate(json.dumps(plan).encode()), timeout=seconds + 120
        )
    finally:
        if poster.returncode is None:
            poster.kill()
            await poster.wait()
    if poster.returncode != 0:
        raise tokens.SetupError(f"the poster failed:\n{err.decode()[-3000:]}")
    return Posting(**json.loads(out))


async def measure(
    receiver: Receiver,
    target: str,
    base_url: str,
    threads: list[dict[str, Any]],
    rate: float,
    seconds: float,
    connections: int,
    processes: dict[str, Any],
) -> Run:
    tag = f"{target}-{rate:g}-{time.monotonic_ns()}"
    receiver.reset(tag)
    closed_before = receiver.closed
    processes = {name: p for name, p in processes.items() if p is not None}
    cpu_before = {name: cpu_seconds(p) for name, p in processes.items()}
    busy_before = busy_seconds()
    wall_before = time.monotonic()
    posting = await post(base_url, threads, rate, seconds, connections, tag)
    accepted = set(posting.accepted)
    await receiver.drain(accepted)
    wall = time.monotonic() - wall_before
    cpu = {name: (cpu_seconds(p) - cpu_before[name]) / wall * 100 for name, p in processes.items()}
    cpu["poster"] = posting.cpu_seconds / wall * 100
    # Whatever else ran meanwhile (serve's worker and beat, other programs): a high figure
    # says the run shared the cores with something and should be repeated.
    cpu["rest"] = max(
        0.0, (busy_seconds() - busy_before) / wall * 100 - sum(v for v in cpu.values() if v == v)
    )
    delivered = sum(min(GROUP, n) for i, n in receiver.counts.items() if i in accepted)
    duplicates = sum(max(0, n - GROUP) for n in receiver.counts.values())
    span = max(receiver.last_at - posting.first_sent, 1e-9)
    post_span = max(posting.last_answered - posting.first_sent, 1e-9)
    return Run(
        target=target,
        rate=rate,
        seconds=seconds,
        sent=posting.sent,
        accepted=len(accepted),
        accepted_per_second=len(accepted) / post_span,
        api_p50_ms=posting.api_p50_ms,
        api_p99_ms=posting.api_p99_ms,
        lag_p99_ms=posting.lag_p99_ms,
        errors=posting.sent - len(accepted),
        error=posting.error,
        delivered=delivered,
        expected=len(accepted) * GROUP,
        deliveries_per_second=len(receiver.latency) / span if receiver.latency else 0.0,
        p50_ms=percentile(receiver.latency, 50) * 1000,
        p99_ms=percentile(receiver.latency, 99) * 1000,
        p99_from_schedule_ms=percentile(receiver.from_schedule, 99) * 1000,
        duplicates=duplicates,
        closed_sockets=receiver.closed - closed_before,
        cpu_percent=cpu,
    )


async def measure_spool_async(
    conftest: ModuleType,
    live: Any,
    users: list[tuple[str, str]],
    threads: list[dict[str, Any]],
    rates: list[float],
    seconds: float,
    connections: int,
    deflate: bool,
    scratch: Path,
) -> tuple[list[Run], Memory]:
    web = child_process(live, "runweb")
    if web is None:
        raise tokens.SetupError("no runweb process under serve")
    redis_url = live.env.get("REDIS_URL")
    redis_process = external_redis(redis_url) if redis_url else child_process(live, "redis")
    receiver = Receiver()
    ws_url = live.http_url.replace("http://", "ws://")
    other, other_url = start_other_web(conftest, live, scratch)
    try:
        import psutil

        processes = {
            "web": web,
            "other web": psutil.Process(other.pid),
            "redis": redis_process,
            "postgres": postgres_seconds if live.env.get("DATABASE_URL") else None,
            "bench": psutil.Process(),
        }
        # One socket first, off the record: the first one pays for lazy imports and the
        # channel layer's Redis connections, which are not per-connection costs.
        spare = users[-1][1]
        await receiver.open(ws_url, [spare], deflate)
        await asyncio.sleep(1)
        rss_before = web.memory_info().rss
        started = time.monotonic()
        await receiver.open(ws_url, [token for _, token in users[:CLIENTS]], deflate)
        print(
            f"  {len(receiver.sockets) - 1:,} sockets open in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        await asyncio.sleep(OPEN_SETTLE_SECONDS)
        rss_open = web.memory_info().rss
        runs = []
        for target, base_url in (("same", live.http_url), ("other", other_url)):
            # Warm the poster's path and the target process off the record.
            await measure(
                receiver, target, base_url, threads, min(rates), WARM_UP_SECONDS, connections, {}
            )
            for rate in rates:
                run = await measure(
                    receiver, target, base_url, threads, rate, seconds, connections, processes
                )
                runs.append(run)
                print(
                    f"  posts to the {target} web process at {rate:g}/s: "
                    f"{run.deliveries_per_second:,.0f} deliveries/s, p99 {run.p99_ms:,.1f} ms, "
                    f"{run.lost:,} lost",
                    flush=True,
                )
        memory = Memory(rss_before, rss_open, web.memory_info().rss, len(receiver.sockets) - 1)
        await receiver.close()
        return runs, memory
    finally:
        tokens.stop(other)


def measure_spool(
    conftest: ModuleType,
    rates: list[float],
    seconds: float,
    connections: int,
    deflate: bool,
    scratch: Path,
) -> tuple[list[Run], Memory]:
    started = time.monotonic()
    live, cleanups = conftest.start_spool(
        {**tokens.serve_sizes(), **tokens.QUOTA_COUNTED, "SPOOL_WEB_PROCESSES": "1"}
    )
    try:
        resource = tokens.resource_of(live, live.create_resource(f"bench-{os.getpid()}"))
        users = create_users(conftest, live.http_url, resource, CLIENTS + 1)  # +1: the spare
        threads = create_threads(live.http_url, resource, users[:CLIENTS])
        print(
            f"  serve started; {len(users):,} identities and {len(threads)} threads created in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        return asyncio.run(
            measure_spool_async(
                conftest, live, users, threads, rates, seconds, connections, deflate, scratch
            )
        )
    finally:
        conftest.stop_spool(live, cleanups)


# --- The raw ceiling ------------------------------------------------------------------------------
def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    import socket

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise tokens.SetupError(f"ws_raw_server.py did not listen:\n{log.read_text()[-3000:]}")


def raw_memory(server: Any, port: int, clients: int, deadline: float) -> int | None:
    """The raw server's RSS once `clients` sockets are established (ws_load.py waits 1 s
    between opening them and sending), or None if that moment was missed."""
    import psutil

    while time.monotonic() < deadline:
        try:
            established = sum(
                1
                for c in server.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
            )
        except psutil.Error:
            return None
        if established >= clients:
            return int(server.memory_info().rss)
        time.sleep(0.05)
    return None


def measure_ceiling(
    conftest: ModuleType, rates: list[float], seconds: float, scratch: Path
) -> tuple[list[Ceiling], float | None]:
    """ws_load.py against a fresh ws_raw_server.py per rate; the raw server's bytes per idle
    connection (from the first run)."""
    import psutil

    results, per_connection = [], None
    for rate in rates:
        port = conftest.free_port()
        log = scratch / f"ws-raw-{rate:g}.log"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [sys.executable, "ws_raw_server.py", str(port)],
                cwd=tokens.BASELINES,
                env=tokens.baseline_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port(port, server, log)
            watched = psutil.Process(server.pid)
            before = watched.memory_info().rss
            load = subprocess.Popen(
                [
                    sys.executable,
                    "ws_load.py",
                    f"ws://127.0.0.1:{port}",
                    str(CLIENTS),
                    str(GROUP),
                    f"{rate:g}",
                    f"{seconds:g}",
                ],
                cwd=tokens.BASELINES,
                env=tokens.baseline_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                opened = raw_memory(watched, port, CLIENTS, time.monotonic() + 60)
                if per_connection is None and opened is not None:
                    per_connection = (opened - before) / CLIENTS
                out, err = load.communicate(timeout=seconds + 120)
            finally:
                if load.poll() is None:
                    load.kill()
                    load.wait()
            found = CEILING_LINE.search(out)
            if load.returncode != 0 or found is None:
                raise tokens.SetupError(f"ws_load.py failed:\n{out}\n{err[-3000:]}")
            got, expected = int(found[1]), int(found[2])
            results.append(
                Ceiling(
                    rate=rate,
                    deliveries=got,
                    expected=expected,
                    per_second=float(found[3].replace(",", "")),
                    p50_ms=float(found[4]),
                    p99_ms=float(found[5]),
                    lost=int(found[6]),
                )
            )
            print(f"  ceiling at {rate:g} messages/s done", flush=True)
        finally:
            tokens.stop(server)
    return results, per_connection


# --- Report -------------------------------------------------------------------------------------
TARGETS = {"same": "the sockets' process", "other": "a second process"}


def print_posting(runs: list[Run], connections: int) -> None:
    print(
        f"Posting through the Chat API ({connections} keep-alive connections, Bearer token of a "
        "participant, ~120-character messages)"
    )
    print(
        f"  {'posts to':<20}  {'offered/s':>9}  {'sent':>6}  {'accepted':>8}  {'accepted/s':>10}"
        f"  {'API p50 ms':>10}  {'API p99 ms':>10}  {'late p99 ms':>11}  {'errors':>6}"
    )
    for r in runs:
        print(
            f"  {TARGETS[r.target]:<20}  {r.rate:>9,.0f}  {r.sent:>6,}  {r.accepted:>8,}"
            f"  {r.accepted_per_second:>10,.0f}  {r.api_p50_ms:>10.1f}  {r.api_p99_ms:>10.1f}"
            f"  {r.lag_p99_ms:>11.1f}  {r.errors:>6,}"
        )
    for r in runs:
        if r.error:
            print(f"  e.g. ({TARGETS[r.target]}, {r.rate:g}/s): {r.error}")
    print("  late = how long after its scheduled time a post left (all connections busy)")


def print_delivery(runs: list[Run], ceilings: list[Ceiling]) -> None:
    print(
        f"Delivery to {CLIENTS:,} WebSockets on one web process ({CLIENTS // GROUP} threads of "
        f"{GROUP}; {GROUP} deliveries per message)"
    )
    print(
        f"  {'posts to':<20}  {'offered/s':>9}  {'deliveries/s':>12}  {'p50 ms':>7}  {'p99 ms':>7}"
        f"  {'p99 sched':>9}  {'lost':>6}  {'/ ceiling':>9}  CPU % of a core (web, other web, "
        "redis, postgres, bench, poster, rest)"
    )
    by_rate = {c.rate: c for c in ceilings}
    for r in runs:
        ceiling = by_rate.get(r.rate)
        ratio = r.deliveries_per_second / ceiling.per_second if ceiling else None
        cpu = ", ".join(
            sms.figure(r.cpu_percent.get(name))
            for name in ("web", "other web", "redis", "postgres", "bench", "poster", "rest")
        )
        print(
            f"  {TARGETS[r.target]:<20}  {r.rate * GROUP:>9,.0f}  {r.deliveries_per_second:>12,.0f}"
            f"  {r.p50_ms:>7.1f}  {r.p99_ms:>7.1f}  {r.p99_from_schedule_ms:>9.1f}  {r.lost:>6,}"
            f"  {sms.figure(ratio, 2):>9}  {cpu}"
        )
    extras = [r for r in runs if r.duplicates or r.closed_sockets]
    for r in extras:
        print(
            f"  ({TARGETS[r.target]}, {r.rate:g}/s): {r.duplicates} duplicate deliveries, "
            f"{r.closed_sockets} sockets closed"
        )
    print(
        "  latency from the post's send time; p99 sched = from its scheduled time; "
        "deliveries/s = frames / (last frame - first post)"
    )


def print_ceiling(
    ceilings: list[Ceiling], raw_per_connection: float | None, seconds: float
) -> None:
    print(
        f"Ceiling: ../shared/baselines/ws_raw_server.py + ws_load.py {CLIENTS} {GROUP} RATE "
        f"{seconds:g} (websockets + Redis pub/sub on 127.0.0.1:6379)"
    )
    print(f"  {'offered/s':>9}  {'deliveries/s':>12}  {'p50 ms':>7}  {'p99 ms':>7}  {'lost':>6}")
    for c in ceilings:
        print(
            f"  {c.rate * GROUP:>9,.0f}  {c.per_second:>12,.0f}  {c.p50_ms:>7.1f}  {c.p99_ms:>7.1f}"
            f"  {c.lost:>6,}"
        )
    if raw_per_connection is not None:
        print(f"  memory per idle connection (RSS): {raw_per_connection / 1024:,.1f} KiB")


def print_memory(memory: Memory) -> None:
    print(
        f"Memory of the web process (RSS): {memory.rss_before / 2**20:,.1f} MiB before the "
        f"sockets, {memory.rss_open / 2**20:,.1f} MiB with {memory.sockets:,} idle, "
        f"{memory.rss_end / 2**20:,.1f} MiB after the runs: "
        f"{memory.per_connection / 1024:,.1f} KiB per idle connection"
    )


def print_verdict(runs: list[Run], memory: Memory) -> None:
    for target in TARGETS:
        candidates = [
            r for r in runs if r.target == target and r.rate * GROUP >= AIM_DELIVERIES_PER_SECOND
        ]
        if not candidates:
            continue
        r = min(candidates, key=lambda r: r.rate)
        met = (
            r.p99_ms < AIM_P99_MS
            and r.lost == 0
            and r.errors == 0
            and r.deliveries_per_second >= AIM_DELIVERIES_PER_SECOND * 0.95
        )
        print(
            f"aim: >= {AIM_DELIVERIES_PER_SECOND:,} deliveries/s at p99 < {AIM_P99_MS:g} ms, none "
            f"lost, posts to {TARGETS[target]}: {'met' if met else 'NOT met'} "
            f"({r.deliveries_per_second:,.0f}/s, p99 {r.p99_ms:,.1f} ms, {r.lost:,} lost, "
            f"{r.errors} posts refused)"
        )
    busy = [r for r in runs if r.cpu_percent.get("rest", 0) > REST_WARNING_PERCENT]
    if busy:
        print(
            f"note: other work used up to {max(r.cpu_percent['rest'] for r in busy):.0f}% of a "
            f"core during {len(busy)} run(s) (column 'rest'): repeat on a quiet machine"
        )
    kib = memory.per_connection / 1024
    print(
        f"aim: < {AIM_KIB_PER_CONNECTION:g} KiB per idle connection: "
        f"{'met' if kib < AIM_KIB_PER_CONNECTION else 'NOT met'} ({kib:,.1f} KiB)"
    )


def record_figures(
    results_file: bench_results.Results,
    runs: list[Run],
    memory: Memory,
    ceilings: list[Ceiling],
    raw_per_connection: float | None,
) -> None:
    """Deliveries/s beside the raw fan-out at the same rate, the posting API's latency, and the
    memory per idle socket beside the raw server's."""
    by_rate = {c.rate: c for c in ceilings}
    for r in runs:
        ceiling = by_rate.get(r.rate)
        results_file.add(
            f"deliveries, posts to {TARGETS[r.target]} at {r.rate:g} messages/s",
            r.deliveries_per_second,
            "deliveries/s",
            ceiling_name=f"raw websockets + Redis (ws_raw_server.py), {r.rate:g} messages/s"
            if ceiling
            else "",
            ceiling=ceiling.per_second if ceiling else None,
            p50_ms=r.p50_ms,
            p99_ms=r.p99_ms,
        )
    for r in runs:
        results_file.add(
            f"posts accepted by the Chat API, to {TARGETS[r.target]} at {r.rate:g} messages/s",
            r.accepted_per_second,
            "posts/s",
            p50_ms=r.api_p50_ms,
            p99_ms=r.api_p99_ms,
        )
    results_file.add(
        f"memory per idle WebSocket ({memory.sockets:,} open)",
        memory.per_connection / 1024,
        "KiB",
        better="lower",
        ceiling_name="raw websockets server (ws_raw_server.py)"
        if raw_per_connection is not None
        else "",
        ceiling=raw_per_connection / 1024 if raw_per_connection is not None else None,
    )


def main() -> int:
    if "--post" in sys.argv[1:]:
        return post_main()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", default="100,200", help="messages/s offered, comma-separated (100,200)"
    )
    parser.add_argument("--seconds", type=float, default=15, help="length of each run (15)")
    parser.add_argument(
        "--connections", type=int, default=8, help="the poster's keep-alive connections (8)"
    )
    parser.add_argument(
        "--deflate", action="store_true", help="offer permessage-deflate, as browsers do"
    )
    parser.add_argument(
        "--api-threads",
        type=int,
        default=1,
        help="SPOOL_WEB_THREADS of the second web process, which takes the posts (1); more "
        "threads overlap waits on a networked database",
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the raw ceiling")
    parser.add_argument("--quick", action="store_true", help="a short run: 100/s for 3 s")
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    global API_THREADS, CLIENTS, WARM_UP_SECONDS, OPEN_SETTLE_SECONDS
    API_THREADS = args.api_threads
    if args.quick:
        args.rates, args.seconds = "100", 3
    if args.smoke:
        args.rates, args.seconds, args.connections = "20", 1, 2
        CLIENTS, WARM_UP_SECONDS, OPEN_SETTLE_SECONDS = 2 * GROUP, 0.1, 0.5
        tokens.SERVE_SIZES = tokens.SMOKE_SERVE_SIZES
    results_file = bench_results.Results("chat", smoke=args.smoke, path=args.json)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]

    began, load = time.monotonic(), os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    redis_server = None
    ceilings: list[Ceiling] = []
    raw_per_connection = None
    ceiling_redis = ""
    try:
        conftest = tokens.load_conftest(scratch)
        database = (
            "PostgreSQL (DATABASE_URL)" if os.environ.get("DATABASE_URL") else "SQLite (embedded)"
        )
        redis = "Redis at REDIS_URL" if os.environ.get("REDIS_URL") else "private Redis (embedded)"
        sizes = tokens.serve_sizes()
        print(
            f"Spool chat fan-out: {database}, {redis}, 1 web process x "
            f"{sizes['SPOOL_WEB_THREADS']} thread(s), {CLIENTS:,} sockets in threads of {GROUP}, "
            f"{'with' if args.deflate else 'without'} permessage-deflate, {args.seconds:g} s per "
            f"rate, {os.cpu_count()} CPUs, second web process x {API_THREADS} thread(s); "
            f"load average {load:.2f}",
            flush=True,
        )
        runs, memory = measure_spool(
            conftest, rates, args.seconds, args.connections, args.deflate, scratch
        )
        if not args.no_ceiling:
            ceiling_redis, redis_server = sms.baseline_redis(scratch)
            ceiling_rates = sorted({*rates} if args.smoke else {*rates, CEILING_EXTRA_RATE})
            ceilings, raw_per_connection = measure_ceiling(
                conftest, ceiling_rates, args.seconds, scratch
            )
    except (tokens.SetupError, RuntimeError, subprocess.SubprocessError, OSError) as error:
        detail = getattr(error, "stderr", None) or ""
        print(f"setup failed: {error}\n{detail}", file=sys.stderr)
        return 1
    finally:
        tokens.stop(redis_server)
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print_posting(runs, args.connections)
    print()
    print_delivery(runs, ceilings)
    print()
    print_memory(memory)
    if ceilings:
        print()
        print_ceiling(ceilings, raw_per_connection, args.seconds)
    print()
    print_verdict(runs, memory)
    record_figures(results_file, runs, memory, ceilings, raw_per_connection)
    results_file.save()
    print(
        f"total run time {time.monotonic() - began:.0f} s; "
        f"load average at the end {os.getloadavg()[0]:.2f} (1 min)"
    )
    print(
        json.dumps(
            finite(
                {
                    "runs": [{**asdict(r), "lost": r.lost} for r in runs],
                    "memory": {**asdict(memory), "per_connection": memory.per_connection},
                    "ceiling": [asdict(c) for c in ceilings],
                    "ceiling_bytes_per_connection": raw_per_connection,
                    "ceiling_redis": ceiling_redis,
                    "database": database,
                    "redis": redis,
                    "deflate": args.deflate,
                    "load_average": [load, os.getloadavg()[0]],
                }
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
