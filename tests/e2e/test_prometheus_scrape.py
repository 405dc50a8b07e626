"""GET /metrics on a live `manage.py serve` with two web processes: after N tokens and M SMS
through the official SDKs, the scrape's counters equal the work done, summed over both web
processes and the Celery workers; sockets open go down when a web process is killed."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import websockets
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.communication.sms import SmsClient
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import LiveSpool, start_spool, stop_spool

pytestmark = pytest.mark.e2e

TOKEN = "e2e-metrics-token-0123456789abcdef"
TOKENS = 20  # N: each through a new client (a new connection: the kernel picks a web process)
MESSAGES = 6  # M
TOKEN_ROUTE = "identities/<str:raw_id>/:issueAccessToken"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def live() -> Iterator[LiveSpool]:
    live, cleanups = start_spool({"SPOOL_METRICS_TOKEN": TOKEN, "SPOOL_WEB_PROCESSES": "2"})
    try:
        yield live
    finally:
        stop_spool(live, cleanups)


def scrape(live: LiveSpool, token: str = TOKEN) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{live.http_url}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def get(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def wait_for_scrape(live: LiveSpool, predicate: Any, timeout: float = 30) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        status, text = scrape(live)
        found = samples(text) if status == 200 else {}
        if found and predicate(found):
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"the scrape never matched; last ({status}):\n{text[-3000:]}")
        time.sleep(0.3)


def web_pids(live: LiveSpool) -> list[int]:
    assert live.process is not None
    return [
        child.pid
        for child in psutil.Process(live.process.pid).children()
        if "runweb" in " ".join(child.cmdline())
    ]


def per_process(live: LiveSpool, pid: int, tmp_path: Path, name: str, **labels: str) -> float:
    """What one process counted: its own files read alone."""
    folder = tmp_path / str(pid)
    folder.mkdir()
    for path in (live.data_dir / "prometheus").glob(f"*_{pid}.db"):
        shutil.copy(path, folder / path.name)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    return registry.get_sample_value(name, labels) or 0.0


def test_the_scrape_counts_the_work_done_across_processes(live: LiveSpool, tmp_path: Path) -> None:
    # given a resource with a number, and a scrape refused without the token
    connection = live.create_resource()
    number = live.give_number(connection)
    assert scrape(live, token="")[0] == 401
    assert scrape(live, token=f"{TOKEN}-wrong")[0] == 401

    # when an identity gets N tokens, each through a new client (a new connection)
    identities = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=live.cert
    )
    user = identities.create_user()
    for _ in range(TOKENS):
        client = CommunicationIdentityClient.from_connection_string(
            connection, connection_verify=live.cert
        )
        client.get_token(user, [CommunicationTokenScope.CHAT])
    # and M messages are sent to handsets outside the deployment, one request each
    sms = SmsClient.from_connection_string(connection, connection_verify=live.cert)
    for n in range(MESSAGES):
        [result] = sms.send(from_=number, to=[f"+44770090{n:04d}"], message=f"metrics {n}")
        assert result.successful

    # then a scrape, once the workers delivered them, counts exactly that work
    found = wait_for_scrape(
        live, lambda f: get(f, "spool_sms_delivered_total") == MESSAGES, timeout=60
    )
    tokens = {"kind": "acs", "route": TOKEN_ROUTE, "method": "POST", "status": "200"}
    assert get(found, "spool_http_requests_total", **tokens) == TOKENS
    assert (
        get(
            found,
            "spool_http_request_duration_seconds_count",
            kind="acs",
            route=TOKEN_ROUTE,
            method="POST",
        )
        == TOKENS
    )
    assert (
        get(
            found,
            "spool_http_requests_total",
            kind="acs",
            route="identities",
            method="POST",
            status="201",
        )
        == 1
    )
    sent = {"kind": "acs", "route": "sms", "method": "POST", "status": "202"}
    assert get(found, "spool_http_requests_total", **sent) == MESSAGES
    assert get(found, "spool_sms_accepted_total") == MESSAGES
    assert get(found, "spool_sms_submitted_total") == MESSAGES
    assert get(found, "spool_sms_failed_total", reason="refused") == 0
    # (the refused scrapes were counted as requests too, under the endpoint's own route)
    refused = {"kind": "web", "route": "metrics", "method": "GET", "status": "401"}
    assert get(found, "spool_http_requests_total", **refused) == 2

    # and both web processes served tokens: the scrape summed their counts
    pids = web_pids(live)
    assert len(pids) == 2
    counts = [
        per_process(live, pid, tmp_path, "spool_http_requests_total", **tokens) for pid in pids
    ]
    assert all(counts) and sum(counts) == TOKENS, counts

    # and the scrape-time readings are there
    assert get(found, "spool_database_up") == 1 and get(found, "spool_redis_up") == 1
    assert get(found, "spool_scrape_complete") == 1
    assert get(found, "spool_celery_queue_length", queue="celery") is not None
    assert get(found, "spool_delivery_lag_seconds", kind="sms") is not None
    found = wait_for_scrape(live, lambda f: (get(f, "spool_workers_live") or 0) >= 1)
    assert (get(found, "spool_worker_heartbeat_age_seconds") or 0) < 120

    # and, if promtool is here, its lint finds nothing wrong with the names
    if shutil.which("promtool"):
        lint = subprocess.run(
            ["promtool", "check", "metrics"],
            input=scrape(live)[1],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_sockets_open_are_counted_and_forgotten_with_a_killed_web_process(
    live: LiveSpool,
) -> None:
    # given a socket open on one of the web processes
    client = CommunicationIdentityClient.from_connection_string(
        live.create_resource(), connection_verify=live.cert
    )
    _user, token = client.create_user_and_token([CommunicationTokenScope.CHAT])
    tokens_before = wait_for_scrape(live, lambda f: True)
    url = f"wss://127.0.0.1:{live.https_port}/ws/?access_token={token.token}"

    async def hold_socket_while_web_dies() -> None:
        async with websockets.connect(url, ssl=live.ssl_context(), close_timeout=1) as socket:
            assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "hello"
            found = await asyncio.to_thread(
                wait_for_scrape, live, lambda f: get(f, "spool_websockets_open") == 1
            )
            assert get(found, "spool_websockets_open") == 1
            # when every web process is killed (no disconnect runs), and serve restarts them
            for pid in web_pids(live):
                psutil.Process(pid).send_signal(signal.SIGKILL)

    asyncio.run(hold_socket_while_web_dies())

    # then the dead processes' socket is no longer counted, and their counts stay
    found = wait_for_scrape(live, lambda f: get(f, "spool_websockets_open") == 0, timeout=60)
    assert get(found, "spool_websockets_open") == 0
    total = ("spool_http_requests_total",)
    before = sum(v for k, v in tokens_before.items() if k[0] in total)
    after = sum(v for k, v in found.items() if k[0] in total)
    assert after >= before


def test_the_sip_engines_serve_started_are_reported_and_a_dead_one_shows(live: LiveSpool) -> None:
    from tests.janus import require_janus

    require_janus()  # the media process, which checks the engines, drives Janus
    if shutil.which("kamailio") is None or shutil.which("rtpengine") is None:
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":
            pytest.fail("kamailio and rtpengine-daemon are not installed")
        pytest.skip("kamailio and rtpengine-daemon are not installed")

    # given the Kamailio and rtpengine `serve` started, both answering
    wait_for_scrape(
        live,
        lambda f: get(f, "spool_sip_edge_up") == 1 and get(f, "spool_rtpengine_up") == 1,
        timeout=60,
    )

    # when rtpengine stops answering (stopped, not killed: serve would restart it)
    assert live.process is not None
    [relay] = [
        child
        for child in psutil.Process(live.process.pid).children(recursive=True)
        if child.name() == "rtpengine"
    ]
    relay.suspend()
    try:
        # then the scrape says so, and the edge is still up
        wait_for_scrape(
            live,
            lambda f: get(f, "spool_rtpengine_up") == 0 and get(f, "spool_sip_edge_up") == 1,
            timeout=60,
        )
    finally:
        relay.resume()
    wait_for_scrape(live, lambda f: get(f, "spool_rtpengine_up") == 1, timeout=60)
