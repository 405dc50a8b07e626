"""apps.automation.virtual_phones against a real Kamailio and Janus: a virtual phone registers
at the SIP edge, calls one of the deployment's numbers through the loopback carrier (Spool's
line sees source "loopback" and the phone's number), and audio flows both ways between the
phone's WebRTC side (the console page; an aiortc peer here) and the call's room. Without the
deployment's loopback secret, the same call from Janus's address is an ordinary stranger's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from apps.automation.bridge import AudioBridgeRoom
from apps.automation.sip_line import IncomingPhoneCall
from apps.automation.virtual_phones import VirtualPhone, phones_domain
from tests.automation.test_bridge import (  # noqa: F401 (janus_url and tools are fixtures)
    PEER_RATE,
    Events,
    Peer,
    hears,
    janus_url,
    joined,
    tools,
    until,
)
from tests.pstn.edge import Edge, require_kamailio, run_edge
from tests.pstn.test_sip_line import Line

VIRTUAL = "+15557654321"
G711_RATE = 8000  # aiortc decodes PCMA at its own rate
OWNED = "+14255550100"


@pytest.fixture(scope="module")
def loopback_edge() -> Iterator[Edge]:
    require_kamailio()
    with run_edge(loopback=True) as edge:
        yield edge


@pytest.mark.timeout(60)
async def test_a_virtual_phone_calls_a_number_through_the_loopback_and_they_hear_each_other(
    janus_url: str,  # noqa: F811
    loopback_edge: Edge,
) -> None:
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    alice = Peer(440)  # in the call's room
    page = Peer(880)  # the virtual phone's console page
    events, at_line = Events(), Events()
    phone = VirtualPhone(
        janus_url, loopback_edge.address, phones_domain("contoso"), VIRTUAL, events
    )
    await room.open()
    try:
        await joined(room, "8:acs:alice", alice)
        async with Line(janus_url, loopback_edge) as line:

            async def accept(call: IncomingPhoneCall) -> None:
                assert call.offer is not None
                call.on_event = at_line
                await call.accept(await room.join(call.raw_id, call.offer, codec="pcma"))

            line.decide = accept
            await phone.open()

            # when the virtual phone dials one of the deployment's numbers
            await phone.call(OWNED, await page.offer())
            answered = await events.wait(kind="answered", timeout=10)
            await page.answer(answered["answer"])

            # then Spool's line takes it as the loopback carrier's, from the phone's number
            call = line.calls[0]
            assert (call.source, call.caller, call.number) == ("loopback", VIRTUAL, OWNED)

            # and each side hears the other's tone
            await hears(page, 440, timeout=10, rate=G711_RATE)  # the page got PCMA
            await hears(alice, 880, timeout=10)

            # and the keypad's keys reach Spool's side as DTMF (SIP INFO)
            for key in "5#":
                await phone.send_dtmf(key)
            await at_line.wait(kind="dtmf", tone="#", timeout=5)
            assert [e["tone"] for e in at_line.of("dtmf")] == ["5", "#"]

            # when the page hangs up, the phone's call ends once
            await phone.hang_up()
            await events.wait(kind="ended", timeout=10)
    finally:
        await phone.close()
        await room.close()
        await alice.pc.close()
        await page.pc.close()


@pytest.mark.timeout(60)
async def test_without_the_loopback_secret_a_call_from_janus_is_a_strangers(
    janus_url: str,  # noqa: F811
) -> None:
    require_kamailio()
    with run_edge() as edge:  # this edge is not the loopback carrier's
        events = Events()
        phone = VirtualPhone(janus_url, edge.address, phones_domain("contoso"), VIRTUAL, events)
        page = Peer(880)
        async with Line(janus_url, edge) as line:
            await phone.open()
            try:
                await phone.call(OWNED, await page.offer())
                await until(lambda: bool(line.calls), 10, "the call at the line")
                assert line.calls[0].source == "127.0.0.1"  # not "loopback": Spool refuses it
            finally:
                await phone.close()
                await page.pc.close()
