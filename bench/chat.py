"""How fast chat messages reach 1,000 WebSockets on two web processes, and what an idle socket
costs, beside this machine's raw fan-out ceiling measured in the same run.

Issue 18's aim: 4,000 deliveries/s to 1,000 sockets at p99 under 100 ms, none lost, with the
sockets spread over two web processes and posts through a third; 10,000 idle sockets on one web
process at under 30 KiB each. Measured:
- fan-out: 1,000 identity sockets (/ws/?access_token=...) of 100 threads of 10 participants,
  every other one on each of two web processes (so each message reaches both); messages posted
  through the ACS Chat API (POST /r/<slug>/chat/threads/<id>/messages, api-version 2024-03-07,
  Bearer token of one of the thread's participants) to a third web process, at fixed offered
  rates up to 400 messages/s (4,000 deliveries/s), from a few keep-alive connections. Printed:
  accepted posts/s and the API's p50/p99; chatMessageReceived frames per second over the
  sockets (every participant, the sender too, gets each message: 10 deliveries per message),
  p50/p99 from the time the post was sent (embedded in the message) to the frame's arrival, the
  p99 from the time the post was due (shows the poster falling behind its schedule), lost
  deliveries (10 per accepted message, minus those that arrived), and each process's CPU;
- memory per idle socket: 10,000 sockets opened on a fresh web process, its RSS before them,
  with the first 1,000 and with all 10,000, divided by the number open; and the CPU the
  process then spends on them over 10 s while they sit idle.
The web processes are `manage.py runweb`, as serve runs them: serve's own (SPOOL_WEB_PROCESSES=1)
and others this script starts on listening sockets of their own, with the same data dir,
database and Redis.

In the same run, the ceiling of ../shared/baselines/: `ws_raw_server.py PORT` (plain websockets +
Redis pub/sub, one process) loaded by `ws_load.py URL 1000 10 RATE SECONDS` at the same rates,
and the raw server's RSS per idle socket with 1,000 and with 10,000 clients; each figure is
printed beside its ceiling.

How: `tests.conftest.start_spool()` starts `manage.py serve` on free ports with a temporary
data dir, a throwaway PostgreSQL database when DATABASE_URL is set, and REDIS_URL's Redis when
set (its own database number; else the embedded private Redis). Identities and chat tokens come
from the HMAC-signed Identity API, threads from the Chat API. The sockets are read by one
asyncio loop in this process (websockets, no compression, like ws_load.py; --deflate offers
permessage-deflate as browsers do); the poster is a child process (this script with --post)
with one thread per connection. The load shares the machine's cores with the server. The
script raises its open-file limit to the hard limit (its children inherit it): 10,000 sockets
need more than 10,000 descriptors on both ends. ws_raw_server.py talks to Redis on
127.0.0.1:6379; if nothing answers there, the embedded Redis's own redis-server is run there for
the duration.

    .venv/bin/python bench/chat.py [--rates 100,200,400] [--seconds 10] [--idle 10000]
        [--connections 8] [--api-threads N] [--deflate] [--no-ceiling] [--profile DIR]
        [--quick] [--smoke] [--json PATH]

Prints figures and one JSON line; exits non-zero only when something could not be set up. With
--json PATH (or SPOOL_BENCH_JSON) its headline figures go to that file too
(bench/bench_results.py). --quick runs 400 messages/s for 3 s (the idle sockets as usual);
--smoke is the CI-safe run: 20 sockets, 20 messages/s for 1 s, 40 idle sockets, the ceiling at
that rate only. --profile DIR records the web processes with py-spy (`--gil --format raw`)
during the run at the highest rate, one file per process in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import queue
import re
import resource
import shutil
import socket
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
CLIENTS = 1000  # fan-out sockets (--smoke: fewer)
GROUP = 10  # participants per thread
IDLE_SOCKETS = 10_000  # --idle
IDLE_FIRST = 1000  # the idle scenario's first reading, after this many
PAD = "x" * 80  # a message of ~120 characters, like ws_load.py's 100-byte payload
OPEN_CONCURRENCY = 50  # WebSocket handshakes in flight while opening the sockets
QUIET_SECONDS = 3.0  # a run's deliveries are over when none arrived for this long
DRAIN_LIMIT_SECONDS = 30.0
AIM_DELIVERIES_PER_SECOND = 4000
AIM_P99_MS = 100.0
AIM_KIB_PER_CONNECTION = 30.0  # at IDLE_SOCKETS on one web process
REST_WARNING_PERCENT = 20.0  # CPU of everything else during a run, % of a core
WARM_UP_SECONDS = 2.0  # posting off the record before the runs
OPEN_SETTLE_SECONDS = 3.0  # between opening sockets and reading the memory they take
IDLE_CPU_SECONDS = 10.0  # how long the idle sockets' CPU is watched (token re-checks, pings)
CEILING_LINE = re.compile(
    r"deliveries=(\d+)/(\d+) \(([\d,]+)/s\) p50=([\d.na]+)ms p99=([\d.na]+)ms lost=(-?\d+)"
)
WEB_NAMES = ("web 1", "web 2", "posting web")  # the sockets' two processes, the posts' one
CPU_NAMES = (*WEB_NAMES, "redis", "postgres", "bench", "poster", "rest")


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
    target: str  # a name for the run (a tag of its messages: no spaces)
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
@dataclass
class Memory:
    """A web process's RSS with `sockets` idle sockets open, and before them."""

    sockets: int
    rss_before: int
    rss_open: int
    cpu_percent: float | None = None  # of one core, while they sat idle (the last reading)

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


API_THREADS = 1  # --api-threads (else serve's default): SPOOL_WEB_THREADS of the posting process


@dataclass
class Web:
    """A web process this script started (`manage.py runweb`), and its plain-HTTP URL."""

    process: subprocess.Popen[bytes]
    url: str


def start_web(live: Any, scratch: Path, name: str, env: dict[str, str] | None = None) -> Web:
    """Another web process as serve runs them (`manage.py runweb` on inherited listening
    sockets), on ports of its own, with serve's data dir, database and Redis."""
    listeners = []
    for _ in ("http", "https"):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        sock.set_inheritable(True)
        listeners.append(sock)
    http, https = listeners
    # Its own ports are its console ports, as serve's are for the processes serve starts:
    # else every request on them is looked up as a resource's own origin (a query per post).
    own_ports = {
        "SPOOL_HTTP_PORT": str(http.getsockname()[1]),
        "SPOOL_HTTPS_PORT": str(https.getsockname()[1]),
    }
    log = scratch / f"web-{name}.log"
    try:
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "manage.py"),
                    "runweb",
                    "--http-fd",
                    str(http.fileno()),
                    "--https-fd",
                    str(https.fileno()),
                ],
                cwd=ROOT,
                env={**live.env, **own_ports, **(env or {})},
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(http.fileno(), https.fileno()),
            )
        base_url = f"http://127.0.0.1:{http.getsockname()[1]}"
    finally:
        for sock in listeners:  # the child holds its own copies
            sock.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            tokens.send(base_url, "GET", "/healthz", {}, b"")
            return Web(process, base_url)
        except OSError:
            time.sleep(0.2)
    tokens.stop(process)
    raise tokens.SetupError(f"the {name} web process did not start:\n{log.read_text()[-3000:]}")


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://").replace("https://", "wss://")


# --- The sockets --------------------------------------------------------------------------------
class Receiver:
    """The sockets, read by one asyncio loop; counts the current run's deliveries."""

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


def start_profiles(
    processes: dict[str, Any], seconds: float, folder: Path | None
) -> list[subprocess.Popen[bytes]]:
    """py-spy recording each web process for `seconds` (--profile), or nothing."""
    if folder is None:
        return []
    spy = Path(sys.executable).parent / "py-spy"
    folder.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen(
            [
                str(spy),
                "record",
                "--gil",
                "-r",
                "200",
                "--format",
                "raw",
                "-d",
                f"{max(1, round(seconds))}",
                "-p",
                str(processes[name].pid),
                "-o",
                str(folder / f"{name.replace(' ', '-')}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in WEB_NAMES
    ]


async def measure_fan_out(
    live: Any,
    users: list[tuple[str, str]],
    threads: list[dict[str, Any]],
    rates: list[float],
    seconds: float,
    connections: int,
    deflate: bool,
    scratch: Path,
    profile: Path | None,
) -> list[Run]:
    """The sockets every other one on serve's web process and on a second one, the posts
    through a third."""
    receiver = Receiver()
    with contextlib.ExitStack() as started_webs:
        second = start_web(live, scratch, "sockets")
        started_webs.callback(tokens.stop, second.process)
        posting = start_web(live, scratch, "posts", {"SPOOL_WEB_THREADS": str(API_THREADS)})
        started_webs.callback(tokens.stop, posting.process)
        try:
            return await fan_out(
                live,
                receiver,
                second,
                posting,
                users,
                threads,
                rates,
                seconds,
                connections,
                deflate,
                profile,
            )
        finally:
            await receiver.close()


async def fan_out(
    live: Any,
    receiver: Receiver,
    second: Web,
    posting: Web,
    users: list[tuple[str, str]],
    threads: list[dict[str, Any]],
    rates: list[float],
    seconds: float,
    connections: int,
    deflate: bool,
    profile: Path | None,
) -> list[Run]:
    import psutil

    web = child_process(live, "runweb")
    if web is None:
        raise tokens.SetupError("no runweb process under serve")
    redis_url = live.env.get("REDIS_URL")
    redis_process = external_redis(redis_url) if redis_url else child_process(live, "redis")
    processes = {
        "web 1": web,
        "web 2": psutil.Process(second.process.pid),
        "posting web": psutil.Process(posting.process.pid),
        "redis": redis_process,
        "postgres": postgres_seconds if live.env.get("DATABASE_URL") else None,
        "bench": psutil.Process(),
    }
    started = time.monotonic()
    participant_tokens = [token for _, token in users[:CLIENTS]]
    for n, base_url in enumerate((live.http_url, second.url)):
        await receiver.open(ws_url(base_url), participant_tokens[n::2], deflate)
    print(
        f"  {len(receiver.sockets):,} sockets open on two web processes in "
        f"{time.monotonic() - started:.1f} s",
        flush=True,
    )
    # Warm the poster's path and the processes off the record.
    await measure(
        receiver, "warm-up", posting.url, threads, min(rates), WARM_UP_SECONDS, connections, {}
    )
    runs = []
    for rate in rates:
        spies = start_profiles(processes, seconds, profile if rate == max(rates) else None)
        run = await measure(
            receiver, "fan-out", posting.url, threads, rate, seconds, connections, processes
        )
        for spy in spies:
            spy.wait()
        runs.append(run)
        print(
            f"  {rate:g} messages/s: {run.deliveries_per_second:,.0f} deliveries/s, "
            f"p99 {run.p99_ms:,.1f} ms, {run.lost:,} lost",
            flush=True,
        )
    return runs


async def measure_idle(
    live: Any, user_tokens: list[str], count: int, deflate: bool, scratch: Path
) -> list[Memory]:
    """RSS per idle socket on a fresh web process, with IDLE_FIRST and with `count` open."""
    import psutil

    web = start_web(live, scratch, "idle")
    receiver = Receiver()
    try:
        watched = psutil.Process(web.process.pid)
        url = ws_url(web.url)
        # One socket first, off the record: the first one pays for lazy imports and the
        # channel layer's Redis connections, which are not per-connection costs.
        await receiver.open(url, user_tokens[-1:], deflate)
        await asyncio.sleep(1)
        rss_before = watched.memory_info().rss
        readings, opened, started = [], 0, time.monotonic()
        for step in sorted({min(IDLE_FIRST, count), count}):
            await receiver.open(url, user_tokens[opened:step], deflate)
            opened = step
            await asyncio.sleep(OPEN_SETTLE_SECONDS)
            readings.append(Memory(step, rss_before, watched.memory_info().rss))
            if step == count:
                before = cpu_seconds(watched)
                await asyncio.sleep(IDLE_CPU_SECONDS)
                readings[-1].cpu_percent = (cpu_seconds(watched) - before) / IDLE_CPU_SECONDS * 100
            print(
                f"  {step:,} idle sockets open in {time.monotonic() - started:.1f} s: "
                f"{readings[-1].per_connection / 1024:,.1f} KiB each",
                flush=True,
            )
        return readings
    finally:
        await receiver.close()
        tokens.stop(web.process)


def measure_spool(
    conftest: ModuleType,
    rates: list[float],
    seconds: float,
    connections: int,
    deflate: bool,
    idle: int,
    scratch: Path,
    profile: Path | None,
) -> tuple[list[Run], list[Memory]]:
    started = time.monotonic()
    live, cleanups = conftest.start_spool(
        {**tokens.serve_sizes(), **tokens.QUOTA_COUNTED, "SPOOL_WEB_PROCESSES": "1"}
    )
    try:
        resource_ = tokens.resource_of(live, live.create_resource(f"bench-{os.getpid()}"))
        # The fan-out's participants are also the first of the idle sockets; +1: a spare.
        users = create_users(conftest, live.http_url, resource_, max(CLIENTS, idle) + 1)
        threads = create_threads(live.http_url, resource_, users[:CLIENTS])
        print(
            f"  serve started; {len(users):,} identities and {len(threads)} threads created in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        runs = asyncio.run(
            measure_fan_out(
                live, users, threads, rates, seconds, connections, deflate, scratch, profile
            )
        )
        idle_tokens = [token for _, token in users]
        memory = asyncio.run(measure_idle(live, idle_tokens, idle, deflate, scratch))
        return runs, memory
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


def raw_memory(server: Any, clients: int, fds_before: int, deadline: float) -> int | None:
    """The raw server's RSS once it holds `clients` more descriptors than before (its sockets;
    ws_load.py waits 1 s between opening them and sending), or None if that moment was missed."""
    import psutil

    while time.monotonic() < deadline:
        try:
            if server.num_fds() - fds_before >= clients:
                return int(server.memory_info().rss)
        except psutil.Error:
            return None
        time.sleep(0.05)
    return None


def start_raw_server(scratch: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = scratch / f"ws-raw-{name}.log"
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
    except BaseException:
        tokens.stop(server)
        raise
    return server, port


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ws_load(port: int, clients: int, rate: float, seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "ws_load.py",
            f"ws://127.0.0.1:{port}",
            str(clients),
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


def measure_ceiling(
    rates: list[float], seconds: float, scratch: Path
) -> tuple[list[Ceiling], Memory | None]:
    """ws_load.py against a fresh ws_raw_server.py per rate; the raw server's RSS with CLIENTS
    idle sockets (from the first run)."""
    import psutil

    results, memory = [], None
    for rate in rates:
        server, port = start_raw_server(scratch, f"{rate:g}")
        try:
            watched = psutil.Process(server.pid)
            before, fds = watched.memory_info().rss, watched.num_fds()
            load = ws_load(port, CLIENTS, rate, seconds)
            try:
                opened = raw_memory(watched, CLIENTS, fds, time.monotonic() + 60)
                if memory is None and opened is not None:
                    memory = Memory(CLIENTS, before, opened)
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
    return results, memory


def measure_raw_idle(count: int, scratch: Path) -> Memory | None:
    """The raw server's RSS with `count` idle sockets (ws_load.py's, opened one after another),
    or None if it never held them all."""
    import psutil

    server, port = start_raw_server(scratch, f"idle-{count}")
    try:
        watched = psutil.Process(server.pid)
        before, fds = watched.memory_info().rss, watched.num_fds()
        # A message a second to a group of 10: the sockets are opened, then idle.
        load = ws_load(port, count, 1, OPEN_SETTLE_SECONDS + 10)
        try:
            opened = raw_memory(watched, count, fds, time.monotonic() + 120)
            if opened is not None:
                time.sleep(OPEN_SETTLE_SECONDS)  # as for Spool's
                opened = int(watched.memory_info().rss)
        finally:
            load.kill()
            load.wait()
        print(f"  ceiling with {count:,} idle sockets done", flush=True)
        return None if opened is None else Memory(count, before, opened)
    finally:
        tokens.stop(server)


# --- Report -------------------------------------------------------------------------------------
def print_posting(runs: list[Run], connections: int) -> None:
    print(
        f"Posting through the Chat API to the posting web process ({connections} keep-alive "
        f"connections, {API_THREADS} request thread(s), Bearer token of a participant, "
        "~120-character messages)"
    )
    print(
        f"  {'offered/s':>9}  {'sent':>6}  {'accepted':>8}  {'accepted/s':>10}  {'API p50 ms':>10}"
        f"  {'API p99 ms':>10}  {'late p99 ms':>11}  {'errors':>6}"
    )
    for r in runs:
        print(
            f"  {r.rate:>9,.0f}  {r.sent:>6,}  {r.accepted:>8,}  {r.accepted_per_second:>10,.0f}"
            f"  {r.api_p50_ms:>10.1f}  {r.api_p99_ms:>10.1f}  {r.lag_p99_ms:>11.1f}"
            f"  {r.errors:>6,}"
        )
    for r in runs:
        if r.error:
            print(f"  e.g. ({r.rate:g}/s): {r.error}")
    print("  late = how long after its scheduled time a post left (all connections busy)")


def print_delivery(runs: list[Run], ceilings: list[Ceiling]) -> None:
    print(
        f"Delivery to {CLIENTS:,} WebSockets on two web processes ({CLIENTS // 2:,} each; "
        f"{CLIENTS // GROUP} threads of {GROUP} with members on both; {GROUP} deliveries per "
        "message), beside the raw ceiling at the same rate"
    )
    print(
        f"  {'offered/s':>9}  {'deliveries/s':>12}  {'p50 ms':>7}  {'p99 ms':>7}  {'p99 sched':>9}"
        f"  {'lost':>6}  |  {'ceiling/s':>9}  {'p50 ms':>7}  {'p99 ms':>7}  {'lost':>6}"
        f"  {'ratio':>5}"
    )
    by_rate = {c.rate: c for c in ceilings}
    for r in runs:
        c = by_rate.get(r.rate)
        ratio = r.deliveries_per_second / c.per_second if c else None
        print(
            f"  {r.rate * GROUP:>9,.0f}  {r.deliveries_per_second:>12,.0f}  {r.p50_ms:>7.1f}"
            f"  {r.p99_ms:>7.1f}  {r.p99_from_schedule_ms:>9.1f}  {r.lost:>6,}  |  "
            f"{sms.figure(c.per_second if c else None):>9}"
            f"  {sms.figure(c.p50_ms if c else None, 1):>7}"
            f"  {sms.figure(c.p99_ms if c else None, 1):>7}"
            f"  {sms.figure(c.lost if c else None):>6}  {sms.figure(ratio, 2):>5}"
        )
    for r in runs:
        if r.duplicates or r.closed_sockets:
            print(
                f"  ({r.rate:g}/s): {r.duplicates} duplicate deliveries, "
                f"{r.closed_sockets} sockets closed"
            )
    print(
        "  latency from the post's send time; p99 sched = from its scheduled time; "
        "deliveries/s = frames / (last frame - first post)"
    )
    print(f"  CPU, % of a core: {', '.join(CPU_NAMES)}")
    for r in runs:
        cpu = ", ".join(sms.figure(r.cpu_percent.get(name)) for name in CPU_NAMES)
        print(f"  {r.rate * GROUP:>9,.0f}  {cpu}")


def print_memory(memory: list[Memory], raw: dict[int, Memory]) -> None:
    print(
        "Memory per idle WebSocket (RSS of one web process, after the sockets, less before them, "
        "divided by their number), beside the raw server's"
    )
    print(
        f"  {'sockets':>7}  {'RSS MiB':>8}  {'KiB each':>8}  {'idle CPU %':>10}  |  "
        f"{'ceiling KiB each':>16}"
    )
    for m in memory:
        ceiling = raw.get(m.sockets)
        print(
            f"  {m.sockets:>7,}  {m.rss_open / 2**20:>8,.1f}  {m.per_connection / 1024:>8.1f}"
            f"  {sms.figure(m.cpu_percent):>10}  |  "
            f"{sms.figure(ceiling.per_connection / 1024 if ceiling else None, 1):>16}"
        )
    print(
        f"  idle CPU = the web process's, % of a core, over {IDLE_CPU_SECONDS:g} s with the "
        "sockets open and silent (token re-checks every 30 s, keep-alive pings every 20 s)"
    )


def print_verdict(runs: list[Run], memory: list[Memory]) -> None:
    candidates = [r for r in runs if r.rate * GROUP >= AIM_DELIVERIES_PER_SECOND]
    if candidates:
        r = min(candidates, key=lambda r: r.rate)
        met = (
            r.p99_ms < AIM_P99_MS
            and r.lost == 0
            and r.errors == 0
            and r.deliveries_per_second >= AIM_DELIVERIES_PER_SECOND * 0.95
        )
        print(
            f"aim: {AIM_DELIVERIES_PER_SECOND:,} deliveries/s to {CLIENTS:,} sockets on two web "
            f"processes at p99 < {AIM_P99_MS:g} ms, none lost, posts through a third: "
            f"{'met' if met else 'NOT met'} ({r.deliveries_per_second:,.0f}/s, p99 "
            f"{r.p99_ms:,.1f} ms, {r.lost:,} lost, {r.errors} posts refused)"
        )
    else:
        print(f"aim: not measured (no rate reached {AIM_DELIVERIES_PER_SECOND:,} deliveries/s)")
    busy = [r for r in runs if r.cpu_percent.get("rest", 0) > REST_WARNING_PERCENT]
    if busy:
        print(
            f"note: other work used up to {max(r.cpu_percent['rest'] for r in busy):.0f}% of a "
            f"core during {len(busy)} run(s) (column 'rest'): repeat on a quiet machine"
        )
    last = memory[-1]
    kib = last.per_connection / 1024
    print(
        f"aim: {last.sockets:,} idle sockets on one web process at < "
        f"{AIM_KIB_PER_CONNECTION:g} KiB each: "
        f"{'met' if kib < AIM_KIB_PER_CONNECTION else 'NOT met'} ({kib:,.1f} KiB)"
    )


def record_figures(
    results_file: bench_results.Results,
    runs: list[Run],
    memory: list[Memory],
    ceilings: list[Ceiling],
    raw: dict[int, Memory],
) -> None:
    """Deliveries/s beside the raw fan-out at the same rate, the posting API's latency, and the
    memory per idle socket beside the raw server's with as many."""
    by_rate = {c.rate: c for c in ceilings}
    for r in runs:
        ceiling = by_rate.get(r.rate)
        results_file.add(
            f"deliveries to {CLIENTS:,} sockets on two web processes at {r.rate:g} messages/s",
            r.deliveries_per_second,
            "deliveries/s",
            ceiling_name=f"raw websockets + Redis (ws_raw_server.py), {r.rate:g} messages/s"
            if ceiling
            else "",
            ceiling=ceiling.per_second if ceiling else None,
            p50_ms=r.p50_ms,
            p99_ms=r.p99_ms,
        )
        results_file.add(
            f"lost deliveries at {r.rate:g} messages/s",
            r.lost,
            "deliveries",
            better="lower",
            ceiling_name="raw websockets + Redis (ws_raw_server.py)" if ceiling else "",
            ceiling=ceiling.lost if ceiling else None,
        )
    for r in runs:
        results_file.add(
            f"posts accepted by the Chat API on a third web process at {r.rate:g} messages/s",
            r.accepted_per_second,
            "posts/s",
            p50_ms=r.api_p50_ms,
            p99_ms=r.api_p99_ms,
        )
    for m in memory:
        ceiling = raw.get(m.sockets)
        results_file.add(
            f"memory per idle WebSocket ({m.sockets:,} open on one web process)",
            m.per_connection / 1024,
            "KiB",
            better="lower",
            ceiling_name="raw websockets server (ws_raw_server.py)" if ceiling else "",
            ceiling=ceiling.per_connection / 1024 if ceiling else None,
        )
        if m.cpu_percent is not None:
            results_file.add(
                f"CPU of a web process holding {m.sockets:,} idle WebSockets",
                m.cpu_percent,
                "% of a core",
                better="lower",
            )


def raise_open_files(needed: int) -> None:
    """The soft limit on open files up to the hard one (children inherit it); SetupError when
    even that is too low for `needed` descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise tokens.SetupError(
            f"{needed:,} open files needed, the hard limit is {hard:,} (ulimit -Hn; --idle N)"
        )


def main() -> int:
    if "--post" in sys.argv[1:]:
        return post_main()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", default="100,200,400", help="messages/s offered, comma-separated (100,200,400)"
    )
    parser.add_argument("--seconds", type=float, default=10, help="length of each run (10)")
    parser.add_argument(
        "--idle", type=int, default=IDLE_SOCKETS, help=f"idle sockets ({IDLE_SOCKETS})"
    )
    parser.add_argument(
        "--connections", type=int, default=8, help="the poster's keep-alive connections (8)"
    )
    parser.add_argument(
        "--deflate", action="store_true", help="offer permessage-deflate, as browsers do"
    )
    parser.add_argument(
        "--api-threads",
        type=int,
        default=0,
        help="SPOOL_WEB_THREADS of the posting web process (serve's default: 2 on PostgreSQL, "
        "else 1); more threads overlap waits on a networked database",
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the raw ceiling")
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the web processes at the highest rate into DIR"
    )
    parser.add_argument("--quick", action="store_true", help="a short run: 400/s for 3 s")
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    global API_THREADS, CLIENTS, WARM_UP_SECONDS, OPEN_SETTLE_SECONDS, IDLE_CPU_SECONDS
    API_THREADS = args.api_threads
    if args.quick:
        args.rates, args.seconds = "400", 3
    if args.smoke:
        args.rates, args.seconds, args.connections, args.idle = "20", 1, 2, 4 * GROUP
        CLIENTS, WARM_UP_SECONDS, OPEN_SETTLE_SECONDS, IDLE_CPU_SECONDS = 2 * GROUP, 0.1, 0.5, 0.5
        tokens.SERVE_SIZES = tokens.SMOKE_SERVE_SIZES
    results_file = bench_results.Results("chat", smoke=args.smoke, path=args.json)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    if args.idle < 1:  # (each socket's share is the RSS it adds, divided by their number)
        parser.error("--idle must be at least 1")
    profile = Path(args.profile).resolve() if args.profile else None

    began, load = time.monotonic(), os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    redis_server = None
    ceilings: list[Ceiling] = []
    raw: dict[int, Memory] = {}
    ceiling_redis = ""
    try:
        raise_open_files(max(CLIENTS, args.idle) + 1000)
        conftest = tokens.load_conftest(scratch)
        database = (
            "PostgreSQL (DATABASE_URL)" if os.environ.get("DATABASE_URL") else "SQLite (embedded)"
        )
        redis = "Redis at REDIS_URL" if os.environ.get("REDIS_URL") else "private Redis (embedded)"
        sizes = tokens.serve_sizes()
        API_THREADS = API_THREADS or int(sizes["SPOOL_WEB_THREADS"])
        print(
            f"Spool chat fan-out: {database}, {redis}, {CLIENTS:,} sockets in threads of {GROUP} "
            f"on 2 web processes x {sizes['SPOOL_WEB_THREADS']} thread(s), posts through a third "
            f"x {API_THREADS} thread(s), {args.idle:,} idle sockets on a fourth, "
            f"{'with' if args.deflate else 'without'} permessage-deflate, {args.seconds:g} s per "
            f"rate, {os.cpu_count()} CPUs; load average {load:.2f}",
            flush=True,
        )
        runs, memory = measure_spool(
            conftest,
            rates,
            args.seconds,
            args.connections,
            args.deflate,
            args.idle,
            scratch,
            profile,
        )
        if not args.no_ceiling:
            ceiling_redis, redis_server = sms.baseline_redis(scratch)
            ceilings, first = measure_ceiling(sorted(set(rates)), args.seconds, scratch)
            raw = {m.sockets: m for m in (first,) if m is not None}
            if memory[-1].sockets not in raw:
                idle_raw = measure_raw_idle(memory[-1].sockets, scratch)
                if idle_raw is not None:
                    raw[idle_raw.sockets] = idle_raw
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
    print_memory(memory, raw)
    if ceilings:
        print(
            f"Ceiling: ../shared/baselines/ws_raw_server.py + ws_load.py {CLIENTS} {GROUP} RATE "
            f"{args.seconds:g} (websockets + Redis pub/sub on 127.0.0.1:6379, one process)"
        )
    print()
    print_verdict(runs, memory)
    record_figures(results_file, runs, memory, ceilings, raw)
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
                    "memory": [{**asdict(m), "per_connection": m.per_connection} for m in memory],
                    "ceiling": [asdict(c) for c in ceilings],
                    "ceiling_memory": [
                        {**asdict(m), "per_connection": m.per_connection} for m in raw.values()
                    ],
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
