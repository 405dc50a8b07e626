"""Phone calls Spool places through a trunk go through its SIP edge (Kamailio, with rtpengine
relaying their audio), as `serve` runs them: against a real Janus, Kamailio, rtpengine and sipp
as the trunk's far end. The call connects with audio both ways and the trunk never sees Spool's
secret; keys the phone presses as RFC 2833 are reported under the trunk's tag; and the edge
relays outwards only what carries the secret (no open relay for toll fraud).
tests/pstn/test_sip_tls.py takes the same path over TLS."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from apps.automation.bridge import AudioBridgeRoom
from apps.automation.sip import PhoneCall, Trunk
from apps.core.rtpengine import key_of
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
from tests.pstn.edge import Edge, invite, require_kamailio, run_edge
from tests.pstn.rtp_pcap import write_keys
from tests.pstn.test_sip_phone_leg import (  # noqa: F401 (far_end is a fixture)
    PHONE,
    FarEnds,
    PhoneEvents,
    far_end,
)


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    require_kamailio()
    with run_edge(relay=True) as edge:
        yield edge


def via(edge: Edge, port: int, transport: str = "udp") -> Trunk:
    """sipp on `port` as a trunk reached through `edge`."""
    return Trunk(
        "127.0.0.1",
        port,
        transport=transport,
        edge=edge.address,
        secret=settings.SIP_EDGE_SECRET,
    )


class Reports:
    """The DTMF reports an edge's rtpengine sends (its --dtmf-log-dest)."""

    def __init__(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, int(port)))
        self.sock.setblocking(False)
        self.items: list[dict[str, object]] = []

    def read(self) -> list[dict[str, object]]:
        while True:
            try:
                self.items.append(json.loads(self.sock.recv(65535)))
            except BlockingIOError:
                return self.items

    def close(self) -> None:
        self.sock.close()


@pytest.mark.timeout(40)
async def test_a_call_through_the_edge_connects_with_audio_both_ways_and_no_secret(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    edge: Edge,
) -> None:
    # given alice (440 Hz) in a call's room, and a trunk whose far end echoes
    port = far_end("uas_echo.xml")
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    alice = Peer(440)
    await room.open()
    phone: PhoneCall | None = None
    try:
        await joined(room, "8:acs:alice", alice)

        # when the phone is called through the edge
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)
        await phone.dial(
            "+15550001111", "+15559990000", await room.join_offering(PHONE), [via(edge, port)]
        )
        await events.wait(kind="answered", timeout=10)

        # then alice hears her tone back through the phone (rtpengine relays both ways)
        await hears(alice, 440, timeout=10)

        await phone.hang_up()
        ended = await events.wait(kind="ended", timeout=10)
        assert ended["code"] == 0
        assert events.kinds() == ["trying", "ringing", "answered", "ended"]

        # and the trunk got the call from the edge, its audio from rtpengine, and never a
        # header of Spool's (the secret least of all)
        log = far_end.log(port).read_text()
        invite_text = log[log.index("INVITE sip:") :]
        assert f"Record-Route: <sip:{edge.address}" in invite_text
        assert "X-Spool" not in log and settings.SIP_EDGE_SECRET not in log
        assert "telephone-event" in invite_text  # offered beside Janus's codec
        assert "BYE sip:" in log  # the hang-up came along the dialog's route
    finally:
        if phone is not None:
            await phone.close()
        await room.close()
        await alice.pc.close()


@pytest.mark.timeout(40)
async def test_rfc_2833_keys_from_a_phone_called_out_are_reported_under_the_trunks_tag(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    edge: Edge,
    tmp_path: Path,
) -> None:
    # given a phone that answers with telephone-event and presses 4, 2 (RFC 2833)
    write_keys(tmp_path / "keys.pcap", "42", lead_seconds=1.0, payload_type=96)
    port = far_end("uas_keys.xml", echo=False)
    reports = Reports(edge.dtmf_log)
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    await room.open()
    phone: PhoneCall | None = None
    try:
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)
        await phone.dial(
            "+15550001111", "+15559990000", await room.join_offering(PHONE), [via(edge, port)]
        )
        await events.wait(kind="answered", timeout=10)

        # then the edge's rtpengine reports both keys, under the call's SIP Call-ID and the
        # trunk's tag, which the phone leg learnt from the answer
        def keys() -> list[str]:
            return [
                key_of(report)
                for report in reports.read()
                if report.get("callid") == phone.sip_call_id  # type: ignore[union-attr]
                and report.get("source_tag") == phone.trunk_tag  # type: ignore[union-attr]
            ]

        await until(lambda: len(keys()) >= 2, 10, "two keys reported")
        assert phone.trunk_tag.endswith("SIPpTag011")
        assert keys() == ["4", "2"]
        assert "a=rtpmap:96 telephone-event/8000" in far_end.log(port).read_text()
    finally:
        reports.close()
        if phone is not None:
            await phone.hang_up()
            await phone.close()
        await room.close()


@pytest.mark.timeout(30)
def test_the_edge_relays_outwards_only_what_carries_the_secret(
    far_end: FarEnds,  # noqa: F811
    edge: Edge,
) -> None:
    # given a far end that would answer anything
    port = far_end("uas_echo.xml")
    secret = settings.SIP_EDGE_SECRET

    # when INVITEs for it reach the edge without the secret or with a wrong one, or for the
    # edge with a route preloaded to it, as a toll fraudster would send them
    far = f"127.0.0.1:{port}"
    attempts = [
        (far, ""),
        (far, "X-Spool-Trunk: guess\r\nX-Spool-Transport: udp\r\n"),
        (far, f"X-Spool-Trunk: {secret}x\r\n"),
        (edge.address, f"Route: <sip:{far};lr>\r\n"),
    ]
    for host, headers in attempts:
        status = invite(edge.address, "+15550001111", host=host, headers=headers)

        # then each is taken for a call in (no SIP line here: 503), never sent on
        assert status == 503
    log = far_end.log(port)
    assert not log.exists() or "INVITE" not in log.read_text()


def test_serve_waits_for_rtpengine_to_answer_before_it_starts_kamailio(tmp_path: Path) -> None:
    # (Kamailio does not use an rtpengine that did not answer its first ping.)
    from apps.core import rtpengine

    require_kamailio()
    port = rtpengine.free_udp_port()
    assert not rtpengine.wait_answering(port, timeout=0.3)
    argv = rtpengine.command(tmp_path, "127.0.0.1", port, "127.0.0.1:9")
    relay = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert rtpengine.wait_answering(port, timeout=10)
    finally:
        relay.terminate()
        relay.wait(timeout=10)


@pytest.mark.timeout(40)
async def test_a_trunk_that_speaks_only_mu_law_is_offered_its_codec_and_transcoded(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    edge: Edge,
) -> None:
    # given alice (440 Hz) in a call's room, and a trunk set to PCMU whose far end answers
    # PCMU only and echoes (Janus's bridge speaks A-law)
    port = far_end("uas_echo_pcmu.xml")
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    alice = Peer(440)
    await room.open()
    phone: PhoneCall | None = None
    try:
        await joined(room, "8:acs:alice", alice)
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)
        trunk = Trunk(
            "127.0.0.1",
            port,
            edge=edge.address,
            secret=settings.SIP_EDGE_SECRET,
            codecs=("pcmu",),
        )
        await phone.dial("+15550001111", "+15559990000", await room.join_offering(PHONE), [trunk])
        await events.wait(kind="answered", timeout=10)

        # then the trunk was offered mu-law (and telephone-event) only, and alice hears her
        # tone back: the edge's rtpengine transcodes both ways
        invite_text = far_end.log(port).read_text()
        assert "m=audio 40" in invite_text and " RTP/AVP 0 96\r" in invite_text.replace("\n", "\r")
        await hears(alice, 440, timeout=10)
    finally:
        if phone is not None:
            await phone.hang_up()
            await phone.close()
        await room.close()
        await alice.pc.close()


@pytest.mark.timeout(40)
async def test_the_caller_id_is_shown_and_asserted_as_the_trunk_wants_it(
    janus_url: str,  # noqa: F811
    far_end: FarEnds,  # noqa: F811
    edge: Edge,
) -> None:
    # given a trunk that takes caller ids without "+" and asserted
    port = far_end("uas_echo.xml")
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    await room.open()
    phone: PhoneCall | None = None
    try:
        events = PhoneEvents(room)
        phone = PhoneCall(janus_url, events)
        trunk = Trunk(
            "127.0.0.1",
            port,
            edge=edge.address,
            secret=settings.SIP_EDGE_SECRET,
            caller_id_format="digits",
            assert_identity=True,
        )

        # when +14255550100 calls out through it
        await phone.dial("+15550001111", "+14255550100", await room.join_offering(PHONE), [trunk])
        await events.wait(kind="answered", timeout=10)

        # then From and P-Asserted-Identity carry 14255550100
        invite_text = far_end.log(port).read_text()
        invite_text = invite_text[invite_text.index("INVITE sip:") :]
        assert re.search(r"^From: .*<sip:14255550100@127\.0\.0\.1>", invite_text, re.M)
        assert "P-Asserted-Identity: <sip:14255550100@127.0.0.1>" in invite_text
    finally:
        if phone is not None:
            await phone.hang_up()
            await phone.close()
        await room.close()
