"""`manage.py serve`: HTTP + HTTPS + WebSockets, a real worker and beat, clean shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psutil
import pytest
import websockets
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from cryptography import x509

from tests.conftest import ROOT, LiveSpool, start_spool, stop_spool, wait_for

pytestmark = pytest.mark.e2e


def _get_json(url: str, context: ssl.SSLContext | None = None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, context=context, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_http_and_https_serve_the_same_platform(live_spool: LiveSpool) -> None:
    status, jwks = _get_json(
        f"{live_spool.https_url}/.well-known/jwks.json", live_spool.ssl_context()
    )
    assert status == 200 and jwks["keys"][0]["alg"] == "ES256"
    status, plain = _get_json(f"{live_spool.http_url}/.well-known/jwks.json")
    assert plain == jwks
    with urllib.request.urlopen(f"{live_spool.http_url}/login/", timeout=10) as response:
        assert b"Sign in to Spool" in response.read()


def test_the_certificate_covers_loopback_names(live_spool: LiveSpool) -> None:
    cert = x509.load_pem_x509_certificate(open(live_spool.cert, "rb").read())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]


def test_a_real_worker_runs_jobs_through_the_broker(live_spool: LiveSpool) -> None:
    # The worker records a heartbeat as soon as it is ready; healthz reports it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, health = _get_json(f"{live_spool.http_url}/healthz")
        if health.get("workers"):
            break
        time.sleep(0.5)
    assert status == 200
    assert health["database"] == "ok" and health["redis"] == "ok"
    assert health["workers"], health


def test_revoking_closes_a_socket_held_by_the_web_tier(live_spool: LiveSpool) -> None:
    # given a user with a token and an open socket
    client = CommunicationIdentityClient.from_connection_string(
        live_spool.create_resource(), connection_verify=live_spool.cert
    )
    user, token = client.create_user_and_token([CommunicationTokenScope.CHAT])

    async def scenario() -> tuple[dict, dict, int | None]:
        url = f"wss://127.0.0.1:{live_spool.https_port}/ws/?access_token={token.token}"
        async with websockets.connect(url, ssl=live_spool.ssl_context()) as socket:
            hello = json.loads(await asyncio.wait_for(socket.recv(), 10))
            # when the tokens are revoked through the API (another request, maybe another process)
            await asyncio.get_running_loop().run_in_executor(None, client.revoke_tokens, user)
            refusal = json.loads(await asyncio.wait_for(socket.recv(), 10))
            await asyncio.wait_for(socket.wait_closed(), 10)
            return hello, refusal, socket.close_code

    hello, refusal, code = asyncio.run(scenario())

    # then the socket is told and closed
    assert hello["identity"] == user.properties["id"]
    assert refusal["code"] == "InvalidToken"
    assert code == 4001


def test_sigterm_stops_every_process() -> None:
    # given a running platform with its children
    live, cleanups = start_spool()
    try:
        parent = psutil.Process(live.process.pid)
        children = parent.children(recursive=True)
        names = " ".join(_cmdline(child) for child in children)
        assert "runweb" in names and "worker" in names and "beat" in names
        assert ("redis-server" in names) == ("REDIS_URL" not in live.env)

        # when
        live.process.send_signal(signal.SIGTERM)
        live.process.wait(timeout=30)

        # then nothing is left running
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
        assert live.process.returncode == 0
    finally:
        stop_spool(live, cleanups)


def _cmdline(process: psutil.Process) -> str:
    """A process's command line; "" for one that just exited (a child's short-lived helper at
    start-up can be a zombie for a moment)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def _web_processes(parent: psutil.Process) -> list[psutil.Process]:
    webs = []
    for child in parent.children():
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "runweb" in " ".join(child.cmdline()):
                webs.append(child)
        except psutil.Error:
            pass  # exited meanwhile
    return webs


def test_a_crashed_child_is_restarted(live_spool: LiveSpool) -> None:
    # given
    parent = psutil.Process(live_spool.process.pid)
    web = _web_processes(parent)[0]

    # when a web process dies
    web.kill()

    # then serve starts another and the platform answers again
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        webs = [c for c in _web_processes(parent) if c.pid != web.pid]
        if webs:
            try:
                status, _ = _get_json(f"{live_spool.http_url}/healthz")
                if status == 200:
                    return
            except OSError:
                pass
        time.sleep(0.3)
    pytest.fail("the web process was not restarted")


def _serve_expecting_refusal(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_serve_refuses_a_port_in_use(live_spool: LiveSpool, tmp_path) -> None:
    # given another data dir but the live server's HTTP port
    env = {
        **live_spool.env,
        "SPOOL_HTTP_PORT": str(live_spool.http_port),
        "SPOOL_DATA_DIR": str(tmp_path),
    }

    # when
    result = _serve_expecting_refusal(env)

    # then it says why and leaves nothing behind (no private Redis either)
    assert result.returncode != 0
    assert "Cannot listen" in result.stderr
    assert not (tmp_path / "redis" / "redis.sock").exists()


def test_an_operators_certificate_is_never_replaced(live_spool: LiveSpool, tmp_path) -> None:
    # given an operator's certificate and a key path with a typo
    cert = tmp_path / "operator.crt"
    cert.write_text("operator's own certificate")
    env = {
        **live_spool.env,
        "SPOOL_DATA_DIR": str(tmp_path / "data"),
        "SPOOL_TLS_CERT": str(cert),
        "SPOOL_TLS_KEY": str(tmp_path / "typo.key"),
    }

    # when
    result = _serve_expecting_refusal(env)

    # then serve refuses to start and leaves the certificate alone
    assert result.returncode != 0
    assert "typo.key" in result.stderr
    assert cert.read_text() == "operator's own certificate"


def test_json_logs_take_in_the_web_servers_own_lines() -> None:
    live, cleanups = start_spool({"SPOOL_LOG_FORMAT": "json"})

    def first_line_of(logger: str) -> dict | None:
        """The first JSON log line of `logger` in serve's log, once there is one."""

        def found() -> dict | None:
            for line in (live.data_dir / "serve.log").read_text().splitlines():
                if line.startswith("{") and f'"{logger}"' in line:
                    return json.loads(line)
            return None

        wait_for(lambda: found() is not None, 10)
        return found()

    try:
        # when a client sends the web server something that is not HTTP
        with socket.create_connection(("127.0.0.1", live.http_port), timeout=10) as client:
            client.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            assert client.recv(1024).startswith(b"HTTP/1.1 400")

        # then uvicorn's warning is one JSON object, like every other log line
        warning = first_line_of("uvicorn.error")
        assert warning is not None and warning["level"] == "WARNING"
        assert "Invalid HTTP request" in warning["message"]

        # and an API request is one JSON object too, with its fields at the top level (the
        # web processes build log records without the caller's file, thread or process)
        unsigned = urllib.request.Request(
            f"{live.http_url}/r/nobody/identities?api-version=2023-10-01", data=b"{}", method="POST"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(unsigned, timeout=10)
        logged = first_line_of("spool.requests")
        assert logged is not None and logged["level"] == "INFO"
        assert (logged["method"], logged["status"]) == ("POST", refused.value.code)
        assert logged["path"].endswith("/identities")
        assert logged["requestId"] == refused.value.headers["x-ms-request-id"]
    finally:
        stop_spool(live, cleanups)
