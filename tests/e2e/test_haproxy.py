"""docker/haproxy/haproxy.cfg in front of two web hosts (`serve --role web` twice on one Redis
and database): TLS terminated, the SDKs and WebSockets through it, health checks that take a
dead host out (its sockets reconnect to the other), draining, resource host names passed
through, and the client's address taken only from the proxy."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
import websockets
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.sms import SmsClient

from tests import haproxy
from tests.conftest import ROOT, LiveSpool, free_port, start_spool, stop_spool, wait_for

pytestmark = pytest.mark.e2e

CONFIG = ROOT / "docker" / "haproxy" / "haproxy.cfg"
DOMAIN = "acs.test"


def require_haproxy() -> None:
    if shutil.which("haproxy") is None:
        if os.environ.get("SPOOL_REQUIRE_TOOLS"):
            pytest.fail("haproxy is not installed (apt-get install haproxy)")
        pytest.skip("haproxy is not installed")


@dataclass
class Balanced:
    live: LiveSpool  # web1 (all of serve's roles but media)
    web2: subprocess.Popen[bytes]
    haproxy: subprocess.Popen[bytes]
    url: str
    admin: Path

    def admin_command(self, command: str) -> str:
        return haproxy.admin(self.admin, command)

    def server_states(self) -> dict[str, str]:
        """web1/web2 -> UP, DOWN, DRAIN... from HAProxy's stats."""
        return haproxy.web_servers(self.admin, "status")

    def requests_served(self) -> dict[str, int]:
        return {name: int(n or 0) for name, n in haproxy.web_servers(self.admin, "stot").items()}


def web_host(live: LiveSpool) -> tuple[subprocess.Popen[bytes], int]:
    """A second web host: `serve --role web` on the first one's database, Redis and data."""
    http_port = free_port()
    env = {**live.env, "SPOOL_HTTP_PORT": str(http_port), "SPOOL_HTTPS_PORT": str(free_port())}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "serve", "--role", "web"],
        env=env,
        cwd=ROOT,
        stdout=open(live.data_dir / "web2.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: _answers(f"http://127.0.0.1:{http_port}/healthz"), 60)
    return process, http_port


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code in (200, 503)
    except requests.RequestException:
        return False


@pytest.fixture
def balanced(shared_redis: str, tmp_path: Path) -> Iterator[Balanced]:
    require_haproxy()
    lb_port = free_port()
    public = f"https://127.0.0.1:{lb_port}"
    live, cleanups = start_spool(
        {
            "REDIS_URL": shared_redis,
            "SPOOL_BEHIND_PROXY": "1",
            "SPOOL_TRUSTED_PROXIES": "127.0.0.1",
            "SPOOL_PUBLIC_URL": public,
            "SPOOL_RESOURCE_DOMAIN": DOMAIN,
            "SPOOL_WEB_PROCESSES": "1",
            "SPOOL_SMS_SEGMENTS_PER_SECOND": "100",  # a sender's pace: not what is tested
        },
        serve_args=["--role", "web,worker,beat"],
    )
    web2 = haproxy = None
    try:
        web2, web2_port = web_host(live)
        bundle = tmp_path / "lb.pem"  # serve's self-signed certificate (127.0.0.1, *.acs.test)
        bundle.write_bytes(
            (live.data_dir / "tls" / "spool.crt").read_bytes()
            + (live.data_dir / "tls" / "spool.key").read_bytes()
        )
        env = {
            **os.environ,
            "SPOOL_LB_BIND": f"127.0.0.1:{lb_port}",
            "SPOOL_LB_HTTP_BIND": f"127.0.0.1:{free_port()}",
            "SPOOL_LB_CERT": str(bundle),
            "SPOOL_LB_RUN_DIR": str(tmp_path),
            "SPOOL_PUBLIC_HOST": "127.0.0.1",
            "SPOOL_WEB1": f"127.0.0.1:{live.http_port}",
            "SPOOL_WEB2": f"127.0.0.1:{web2_port}",
        }
        haproxy = subprocess.Popen(
            ["haproxy", "-db", "-f", str(CONFIG)],
            env=env,
            stdout=open(tmp_path / "haproxy.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        balanced = Balanced(live, web2, haproxy, public, tmp_path / "admin.sock")
        wait_for(lambda: balanced.admin.exists(), 10)
        wait_for(lambda: set(balanced.server_states().values()) == {"UP"}, 20)
        yield balanced
    finally:
        for process in (haproxy, web2):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=30)
        stop_spool(live, cleanups)


@contextlib.contextmanager
def resolving_to_loopback(domain: str) -> Iterator[None]:
    """Names under `domain` resolve to 127.0.0.1 in this process (no DNS here)."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith("." + domain):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    try:
        yield
    finally:
        socket.getaddrinfo = real


def through_the_balancer(balanced: Balanced) -> tuple[str, str]:
    """A resource's slug and a connection string to it through the load balancer (its /r/
    endpoint: this machine resolves no <slug>.acs.test)."""
    connection = balanced.live.manage("create_resource", "lb").stdout.strip().splitlines()[-1]
    slug = connection.split("//", 1)[1].split(".", 1)[0]
    key = connection.split("accesskey=", 1)[1]
    balanced_connection = f"endpoint={balanced.url}/r/{slug}/;accesskey={key}"
    balanced.live.slugs[balanced_connection] = slug
    return slug, balanced_connection


@pytest.mark.timeout(240)
def test_sdks_and_sockets_through_haproxy_survive_a_web_host_dying(balanced: Balanced) -> None:
    slug, connection = through_the_balancer(balanced)
    port = balanced.url.rsplit(":", 1)[1]
    identities = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=balanced.live.cert
    )

    # tokens through TLS at the balancer, spread over both hosts (a connection each)
    before = balanced.requests_served()
    users = [identities.create_user_and_token(["chat"]) for _ in range(6)]
    after = balanced.requests_served()
    assert all(after[name] > before[name] for name in ("web1", "web2")), (before, after)

    # a resource's own host name goes through unchanged: the SDK on <slug>.acs.test (resolved
    # to the balancer in this process only; the certificate covers *.acs.test)
    by_name = connection.replace(f"127.0.0.1:{port}/r/{slug}/", f"{slug}.{DOMAIN}:{port}/")
    with resolving_to_loopback(DOMAIN):
        named = CommunicationIdentityClient.from_connection_string(
            by_name, connection_verify=balanced.live.cert
        )
        user, _ = named.create_user_and_token(["chat"])
    assert user.properties["id"].startswith("8:acs:")

    # sockets through the balancer, on both hosts (a new connection goes to the emptier)
    context = balanced.live.ssl_context()

    async def open_sockets() -> list[Any]:
        sockets = []
        for _, token in users[:4]:
            socket_ = await websockets.connect(
                f"wss://127.0.0.1:{balanced.url.rsplit(':', 1)[1]}/ws/?access_token={token.token}",
                ssl=context,
            )
            assert json.loads(await socket_.recv())["type"] == "hello"
            sockets.append(socket_)
        return sockets

    async def scenario() -> None:
        sockets = await open_sockets()
        # when the second web host dies
        balanced.web2.kill()
        balanced.web2.wait()
        # then HAProxy takes it out, its sockets close, and those on the first host go on
        await asyncio.to_thread(
            wait_for, lambda: balanced.server_states().get("web2") == "DOWN", 15
        )
        closed = open_ = 0
        for socket_ in sockets:
            try:
                async with asyncio.timeout(5):
                    await (await socket_.ping())
                open_ += 1
            except (websockets.ConnectionClosed, TimeoutError):
                closed += 1
        assert closed >= 1 and open_ >= 1, (closed, open_)
        # and reconnecting through the balancer works at once, on the first host
        again = await open_sockets()
        for socket_ in again:
            await socket_.close()

    asyncio.run(scenario())
    # and the SDK goes on through the balancer with no error
    for _ in range(6):
        identities.create_user_and_token(["chat"])


def logged_client(live: LiveSpool, client_request_id: str) -> str | None:
    script = (
        "from apps.core.models import RequestLog; "
        f"row = RequestLog.objects.filter(client_request_id={client_request_id!r}).first(); "
        "print(row.client_address if row else '-')"
    )
    found = live.manage("shell", "-c", script).stdout.split()[-1]
    return None if found == "-" else found


def unsigned_request(url: str, tag: str, *, source: str = "127.0.0.1", context: Any = None) -> int:
    """An unsigned ACS request claiming X-Forwarded-For 203.0.113.9, from `source`."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    kwargs = {"context": context} if parts.scheme == "https" else {}
    connection = connection_class(
        parts.hostname, parts.port, source_address=(source, 0), timeout=10, **kwargs
    )
    connection.request(
        "POST",
        f"{parts.path.rstrip('/')}/identities?api-version=2023-10-01",
        body=b"{}",
        headers={"X-Forwarded-For": "203.0.113.9", "x-ms-client-request-id": tag},
    )
    return connection.getresponse().status


@pytest.mark.timeout(180)
def test_the_client_address_comes_only_from_the_balancer(balanced: Balanced) -> None:
    slug, _ = through_the_balancer(balanced)
    context = balanced.live.ssl_context()
    direct = f"http://127.0.0.1:{balanced.live.http_port}/r/{slug}/"

    # through the balancer, a client's own X-Forwarded-For is replaced by its address
    assert unsigned_request(f"{balanced.url}/r/{slug}/", "via-lb", context=context) == 401
    # a trusted proxy's (127.0.0.1) header is taken (so plain HTTP, allowed from loopback
    # only, is refused for that client); anyone else's (127.0.0.2) is not
    assert unsigned_request(direct, "trusted") == 403
    assert unsigned_request(direct, "untrusted", source="127.0.0.2") == 401

    wait_for(lambda: logged_client(balanced.live, "untrusted") is not None, 15)
    assert logged_client(balanced.live, "via-lb") == "127.0.0.1"
    assert logged_client(balanced.live, "trusted") == "203.0.113.9"
    assert logged_client(balanced.live, "untrusted") == "127.0.0.2"


@pytest.mark.timeout(180)
def test_a_drained_host_takes_no_new_requests(balanced: Balanced) -> None:
    _, connection = through_the_balancer(balanced)
    identities = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=balanced.live.cert
    )
    assert "" == balanced.admin_command("set server spool_web/web1 state drain").strip()
    wait_for(lambda: balanced.server_states().get("web1") == "DRAIN", 5)

    before = balanced.requests_served()
    for _ in range(6):
        identities.create_user_and_token(["chat"])
    after = balanced.requests_served()

    assert after["web1"] == before["web1"] and after["web2"] >= before["web2"] + 6


def outbound_sms(live: LiveSpool) -> dict[str, tuple[str, int]]:
    """Every outbound message: its status and how many times it was handed to the carrier."""
    script = (
        "import json; from apps.sms.models import SmsMessage; print(json.dumps({m.id: "
        "(m.status, m.submissions) for m in SmsMessage.objects.filter(direction='outbound')}))"
    )
    found = json.loads(live.manage("shell", "-c", script).stdout.strip().splitlines()[-1])
    return {key: (status, submissions) for key, (status, submissions) in found.items()}


@pytest.mark.timeout(240)
def test_sms_accepted_through_the_balancer_is_sent_once_when_a_web_host_dies(
    balanced: Balanced,
) -> None:
    # given a client sending SMS through the balancer, one request after another
    _, connection = through_the_balancer(balanced)
    sender = balanced.live.give_number(connection)
    sms = SmsClient.from_connection_string(
        connection, connection_verify=balanced.live.cert, retry_total=0
    )
    accepted: list[str] = []
    errors: list[str] = []
    refused = 0

    def send_for(seconds: float) -> None:
        nonlocal refused
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            recipient = f"+4477009{len(accepted) + refused:05d}"
            try:
                [result] = sms.send(from_=sender, to=[recipient], message="through the LB")
            except Exception as error:  # the request the dying host held: not accepted
                refused += 1
                errors.append(repr(error)[:300])
                continue
            assert result.successful
            accepted.append(result.message_id)
            time.sleep(0.05)  # under the resource's SMS quota (300 per 30 s)

    # when the second web host is killed while it is being sent to
    sending = threading.Thread(target=send_for, args=(8,))
    sending.start()
    time.sleep(3)
    balanced.web2.kill()
    sending.join()

    def all_handed_over() -> bool:
        sent = outbound_sms(balanced.live)  # one look at every message
        return all(sent.get(key, ("", 0))[0] in ("sent", "delivered") for key in accepted)

    wait_for(all_handed_over, 90)
    sent = outbound_sms(balanced.live)
    assert all(sent[key][1] == 1 for key in accepted)
