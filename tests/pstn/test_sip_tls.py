"""SIP trunks over TLS, through Spool's SIP edge (Kamailio's TLS module), against a carrier that
speaks only TLS to Spool (tests/pstn/tls_carrier.py: Kamailio in front of sipp) and a real
Janus: a call out connects with audio both ways; a carrier whose certificate Spool's CA file
does not vouch for gets no call; a call in over TLS reaches Spool's SIP line with audio both
ways; with SRTP (the carrier's own rtpengine decrypting), both ways again."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from apps.automation.bridge import AudioBridgeRoom
from apps.automation.sip import PhoneCall, Trunk
from apps.core.kamailio import SipTls
from tests.automation.test_bridge import (  # noqa: F401 (janus_url and tools are fixtures)
    PEER_RATE,
    Events,
    Peer,
    has_tone,
    hears,
    janus_url,
    joined,
    tools,
    until,
)
from tests.pstn.edge import Edge, require_kamailio, run_edge, sipp_call
from tests.pstn.test_sip_line import Line, accept_into
from tests.pstn.test_sip_phone_leg import (  # noqa: F401 (far_end is a fixture)
    PHONE,
    FarEnds,
    PhoneEvents,
    far_end,
)
from tests.pstn.tls_carrier import (
    certificate,
    free_tcp_port,
    require_tls_module,
    run_tls_carrier,
)

NUMBER = "+15550001111"


@pytest.fixture
def certificates(tmp_path: Path) -> dict[str, tuple[Path, Path]]:
    require_kamailio()
    require_tls_module()
    return {name: certificate(tmp_path, name) for name in ("edge", "carrier", "stranger")}


def edge_tls(certificates: dict[str, tuple[Path, Path]], trusted: str) -> SipTls:
    """The edge's TLS: its own certificate, trusting only `trusted`'s."""
    cert, key = certificates["edge"]
    return SipTls(free_tcp_port(), cert, key, ca_file=certificates[trusted][0])


async def call_out(
    url: str, edge: Edge, port: int, room: AudioBridgeRoom, *, srtp: bool = False
) -> tuple[PhoneCall, PhoneEvents]:
    events = PhoneEvents(room)
    phone = PhoneCall(url, events)
    trunk = Trunk(
        "127.0.0.1",
        port,
        transport="tls",
        edge=edge.address,
        secret=settings.SIP_EDGE_SECRET,
        srtp=srtp,
    )
    await phone.dial(NUMBER, "+15559990000", await room.join_offering(PHONE), [trunk])
    return phone, events


@pytest.mark.timeout(60)
async def test_a_call_out_to_a_tls_trunk_connects_with_audio_both_ways(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    certificates: dict[str, tuple[Path, Path]],
) -> None:
    # given an edge that trusts the carrier's certificate, and the carrier's far end echoing
    port = far_end("uas_echo.xml")
    cert, key = certificates["carrier"]
    with (
        run_edge(relay=True, tls=edge_tls(certificates, "carrier")) as edge,
        run_tls_carrier(f"127.0.0.1:{port}", edge.tls_address, cert, key) as carrier,
    ):
        room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
        alice = Peer(440)
        await room.open()
        phone: PhoneCall | None = None
        try:
            await joined(room, "8:acs:alice", alice)

            # when the phone is called through the carrier's TLS port
            phone, events = await call_out(janus_url, edge, carrier.tls_port, room)
            await events.wait(kind="answered", timeout=15)

            # then alice hears her tone back through the phone
            await hears(alice, 440, timeout=10)

            # and the INVITE crossed to the carrier over TLS; the hang-up follows it back
            await phone.hang_up()
            assert (await events.wait(kind="ended", timeout=10))["code"] == 0
            log = far_end.log(port).read_text()
            assert f"SIP/2.0/TLS 127.0.0.1:{edge.tls_address.rsplit(':', 1)[1]}" in log
            assert "BYE sip:" in log
        finally:
            if phone is not None:
                await phone.close()
            await room.close()
            await alice.pc.close()


@pytest.mark.timeout(60)
async def test_a_tls_trunk_whose_certificate_is_not_trusted_gets_no_call(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    certificates: dict[str, tuple[Path, Path]],
) -> None:
    # given an edge whose CA file vouches for another certificate than the carrier's
    port = far_end("uas_echo.xml")
    cert, key = certificates["carrier"]
    with (
        run_edge(relay=True, tls=edge_tls(certificates, "stranger")) as edge,
        run_tls_carrier(f"127.0.0.1:{port}", edge.tls_address, cert, key) as carrier,
    ):
        room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
        await room.open()
        phone: PhoneCall | None = None
        try:
            # when the phone is called through it
            phone, events = await call_out(janus_url, edge, carrier.tls_port, room)

            # then the call fails as an unreachable trunk (the next one would be tried), and
            # the far end never hears of it: the edge refused the handshake
            ended = await events.wait(kind="ended", timeout=20)
            assert (ended["code"], ended["subCode"]) == (503, 560503)
            assert events.of("answered") == []
            log = far_end.log(port)
            assert not log.exists() or "INVITE" not in log.read_text()
        finally:
            if phone is not None:
                await phone.close()
            await room.close()


@pytest.mark.timeout(60)
async def test_a_call_in_over_tls_reaches_the_line_with_audio_both_ways(
    janus_url: str,  # noqa: F811
    certificates: dict[str, tuple[Path, Path]],
    tmp_path: Path,
) -> None:
    # given Spool's SIP line at an edge that takes TLS, accepting calls into a room with
    # alice (440 Hz), and a carrier that reaches the edge only over TLS
    cert, key = certificates["carrier"]
    with (
        run_edge(relay=True, tls=edge_tls(certificates, "carrier")) as edge,
        run_tls_carrier("127.0.0.1:9", edge.tls_address, cert, key) as carrier,
    ):
        room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
        alice = Peer(440)
        await room.open()
        ended: list[dict[str, Any]] = []
        try:
            await joined(room, "8:acs:alice", alice)
            async with Line(janus_url, edge) as line:
                line.decide = accept_into(room, ended)

                # when a phone calls the number through the carrier (it echoes what it hears)
                caller = sipp_call(carrier.udp_address, NUMBER, tmp_path, seconds=6)
                try:
                    await until(lambda: bool(line.calls), 15, "the call at the line")
                    call = line.calls[0]
                    assert call.number == NUMBER and call.source == "127.0.0.1"

                    # then alice hears herself through the phone's echo
                    await hears(alice, 440, timeout=10)

                    # and the phone's hang-up comes back over TLS and ends the leg
                    await until(lambda: caller.poll() is not None, 20, "sipp's hang-up")
                    assert caller.returncode == 0
                    await until(lambda: bool(ended), 10, "the leg's end")
                finally:
                    if caller.poll() is None:
                        caller.kill()
                        caller.wait()
        finally:
            await room.close()
            await alice.pc.close()


@pytest.mark.timeout(60)
async def test_a_call_out_to_an_srtp_trunk_is_encrypted_and_heard_both_ways(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    certificates: dict[str, tuple[Path, Path]],
) -> None:
    # given a carrier that takes SRTP from Spool and passes plain RTP to its echoing far end
    port = far_end("uas_echo.xml")
    cert, key = certificates["carrier"]
    with (
        run_edge(relay=True, tls=edge_tls(certificates, "carrier")) as edge,
        run_tls_carrier(f"127.0.0.1:{port}", edge.tls_address, cert, key, srtp=True) as carrier,
    ):
        room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
        alice = Peer(440)
        await room.open()
        phone: PhoneCall | None = None
        try:
            await joined(room, "8:acs:alice", alice)

            # when the phone is called through an SRTP trunk
            phone, events = await call_out(janus_url, edge, carrier.tls_port, room, srtp=True)
            await events.wait(kind="answered", timeout=15)

            # then alice hears her tone back: the carrier decrypted Spool's audio, and Spool
            # decrypted the carrier's
            await hears(alice, 440, timeout=10)

            # and Spool offered RTP/SAVP with SDES keys, none of a weak suite
            log = far_end.log(port).read_text()
            media = re.search(r"X-Carrier-Media: (.*)", log)
            crypto = re.search(r"X-Carrier-Crypto: (.*)", log)
            assert media and "RTP/SAVP" in media.group(1)
            assert crypto and "inline:" in crypto.group(1)
            assert "NULL_HMAC" not in log and "F8_128" not in log
        finally:
            if phone is not None:
                await phone.hang_up()
                await phone.close()
            await room.close()
            await alice.pc.close()


@pytest.mark.timeout(60)
async def test_a_call_in_with_srtp_is_decrypted_at_the_edge_and_heard_both_ways(
    janus_url: str,  # noqa: F811
    certificates: dict[str, tuple[Path, Path]],
    tmp_path: Path,
) -> None:
    # given Spool's SIP line accepting calls into a room with alice (440 Hz), and a carrier
    # whose calls reach the edge over TLS with SRTP
    cert, key = certificates["carrier"]
    with (
        run_edge(relay=True, tls=edge_tls(certificates, "carrier")) as edge,
        run_tls_carrier("127.0.0.1:9", edge.tls_address, cert, key, srtp=True) as carrier,
    ):
        room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
        alice = Peer(440)
        await room.open()
        ended: list[dict[str, Any]] = []
        try:
            await joined(room, "8:acs:alice", alice)
            async with Line(janus_url, edge) as line:
                line.decide = accept_into(room, ended)

                # when a phone calls in (sipp echoes what it hears)
                caller = sipp_call(carrier.udp_address, NUMBER, tmp_path, seconds=6)
                try:
                    # then alice hears herself through the phone: both ways decrypted right
                    await until(lambda: bool(line.calls), 15, "the call at the line")
                    await hears(alice, 440, timeout=10)

                    # and the edge answered the carrier's SRTP with SRTP
                    await until(lambda: caller.poll() is not None, 20, "sipp's hang-up")
                    log = "".join(path.read_text() for path in tmp_path.glob("sipp-*.log"))
                    media = re.search(r"X-Carrier-Media: (.*)", log)
                    assert media and "RTP/SAVP" in media.group(1)
                finally:
                    if caller.poll() is None:
                        caller.kill()
                        caller.wait()
        finally:
            await room.close()
            await alice.pc.close()
