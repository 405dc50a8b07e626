"""Two WebRTC peers reach each other only through coturn, with the credentials Spool hands out.

coturn (Debian `coturn`) runs with docker/turnserver.conf (the deployment's file, plus loopback
overrides); both peers allow relay candidates only, so the data channel works only if coturn accepted
Spool's time-limited credentials and relayed the traffic.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from apps.calls import turn

TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
CONFIG = Path(__file__).resolve().parents[2] / "docker" / "turnserver.conf"
SECRET = "relay-test-secret"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_bound(port: int, process: subprocess.Popen, log: Path) -> None:
    """Until coturn's UDP socket is open (/proc/net/udp lists it) and its servers are made (its
    log says how many): a datagram sent before may be refused or dropped, and a loaded machine
    may take seconds to start them."""
    bound = f"0100007F:{port:04X}"
    deadline = time.monotonic() + 20

    def ready() -> bool:
        started = log.exists() and "Total General servers" in log.read_text(errors="replace")
        return started and bound in Path("/proc/net/udp").read_text()

    while not ready():
        assert process.poll() is None, log.read_text()[-2000:] if log.exists() else "no log"
        assert time.monotonic() < deadline, f"coturn did not start on 127.0.0.1:{port} in 20 s"
        time.sleep(0.05)


@pytest.fixture
def coturn(tmp_path) -> Iterator[int]:
    if not os.path.exists(TURNSERVER):
        message = "coturn not installed: apt-get install coturn"
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":  # CI installs it: a skip is a failure
            pytest.fail(message)
        pytest.skip(message)
    port = free_udp_port()
    process = subprocess.Popen(
        [
            TURNSERVER,
            "-c",
            str(CONFIG),
            f"--listening-port={port}",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--static-auth-secret={SECRET}",
            "--allow-loopback-peers",
            f"--log-file={tmp_path / 'turn.log'}",
            "--simple-log",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_bound(port, process, tmp_path / "turn.log")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _relay_only_exchange(
    port: int, username: str, password: str, *, timeout: float = 20
) -> tuple[str, set[str]]:
    from aiortc import (
        RTCConfiguration,
        RTCIceServer,
        RTCPeerConnection,
    )
    from aiortc.rtcconfiguration import RTCIceTransportPolicy

    def peer() -> RTCPeerConnection:
        server = RTCIceServer(
            urls=f"turn:127.0.0.1:{port}?transport=udp", username=username, credential=password
        )
        return RTCPeerConnection(
            RTCConfiguration(iceServers=[server], iceTransportPolicy=RTCIceTransportPolicy.RELAY)
        )

    caller, callee = peer(), peer()
    received: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    try:
        channel = caller.createDataChannel("hello")

        @callee.on("datachannel")
        def on_channel(incoming):  # type: ignore[no-untyped-def]
            @incoming.on("message")
            def on_message(message):  # type: ignore[no-untyped-def]
                if not received.done():
                    received.set_result(message)

        @channel.on("open")
        def on_open():  # type: ignore[no-untyped-def]
            channel.send("through the relay")

        await caller.setLocalDescription(await caller.createOffer())
        await callee.setRemoteDescription(caller.localDescription)
        await callee.setLocalDescription(await callee.createAnswer())
        await caller.setRemoteDescription(callee.localDescription)
        # Bad credentials leave aiortc gathering forever without an error (DESIGN.md): time out.
        message = await asyncio.wait_for(received, timeout=timeout)
        kinds = {
            candidate.type
            for sdp in (caller.localDescription.sdp, callee.localDescription.sdp)
            for candidate in _candidates(sdp)
        }
        return message, kinds
    finally:
        await caller.close()
        await callee.close()


def _candidates(sdp: str) -> Iterator[object]:
    from aiortc.sdp import candidate_from_sdp

    for line in sdp.splitlines():
        if line.startswith("a=candidate:"):
            yield candidate_from_sdp(line[len("a=") :])


@pytest.mark.timeout(60)
def test_two_peers_connect_through_coturn_with_spools_credentials(coturn: int) -> None:
    # given the relay configuration Spool hands out for this coturn
    with override_settings(
        TURN_URLS=[f"turn:127.0.0.1:{coturn}?transport=udp"], STUN_URLS=[], TURN_SECRET=SECRET
    ):
        [server] = turn.relay_configuration("8:acs:test_user", ttl=600).ice_servers

    # when two peers that may only use relay candidates exchange a message
    message, kinds = asyncio.run(
        _relay_only_exchange(coturn, server["username"], server["credential"])
    )

    # then it arrives, and only relay candidates were offered
    assert message == "through the relay"
    assert kinds == {"relay"}


@pytest.mark.timeout(60)
def test_a_wrong_secret_gets_no_relay(coturn: int) -> None:
    # given credentials made with another secret
    with override_settings(
        TURN_URLS=[f"turn:127.0.0.1:{coturn}?transport=udp"], STUN_URLS=[], TURN_SECRET="wrong"
    ):
        [server] = turn.relay_configuration("8:acs:test_user", ttl=600).ice_servers

    # then no connection is made
    with pytest.raises((TimeoutError, asyncio.TimeoutError)):
        asyncio.run(
            _relay_only_exchange(coturn, server["username"], server["credential"], timeout=5)
        )


def test_the_health_check_gets_coturns_answer(coturn: int) -> None:
    from apps.metrics import engines

    # (sent again after 0.5, 1 and 2 s: a loaded machine's coturn may miss the first)
    assert engines.turn_answers(f"127.0.0.1:{coturn}", timeout=5)
