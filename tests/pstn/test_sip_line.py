"""apps.automation.sip_line against a real Kamailio (the SIP edge), Janus (SIP plugin and
AudioBridge) and sipp calling in as a trunk: the call reaches Spool with who called, which
number and from where; accepted, it is a leg of a room with audio both ways; declined, the
trunk gets the status; calls at once take helpers; a trunk's own X-Spool-Source is ignored."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.automation.bridge import AudioBridgeRoom
from apps.automation.sip_line import IncomingPhoneCall, SipLine, dtmf_of, number_of
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
from tests.automation.tones import require_tool
from tests.pstn.edge import Edge, invite, require_kamailio, run_edge, sipp_call

NUMBER = "+15550001111"


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    require_kamailio()
    with run_edge() as edge:
        yield edge


class Line:
    """A SipLine and the calls it was given; `decide(call)` says what to do with each."""

    def __init__(self, url: str, edge: Edge) -> None:
        self.calls: list[IncomingPhoneCall] = []
        self.decide: Any = None
        self.line = SipLine(url, edge.address, self._on_call)
        self.task: asyncio.Task[None] | None = None

    async def _on_call(self, call: IncomingPhoneCall) -> None:
        self.calls.append(call)
        if self.decide is not None:
            await self.decide(call)

    async def __aenter__(self) -> Line:
        self.task = asyncio.create_task(self.line.run())
        await asyncio.wait_for(self.line.registered.wait(), 10)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.task is not None
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task


def accept_into(room: AudioBridgeRoom, ended: list[dict[str, Any]]) -> Any:
    """A Line's `decide`: accept each call into `room`, its events into `ended`."""

    async def accept(call: IncomingPhoneCall) -> None:
        async def on_event(event: dict[str, Any]) -> None:
            ended.append(event)

        call.on_event = on_event
        assert call.offer is not None
        await call.accept(await room.join(call.raw_id, call.offer, codec="pcma"))

    return accept


def test_number_of_reads_the_user_of_a_sip_uri() -> None:
    assert number_of("sip:+15550001111@carrier.example") == "+15550001111"
    assert number_of("sip:15550001111@10.0.0.1:5060;user=phone") == "+15550001111"
    assert number_of("sip:anonymous@anonymous.invalid") == "anonymous"
    assert number_of("sip:alice@example.com") == "alice"


def test_dtmf_of_reads_sip_info_and_rfc_2833_keys() -> None:
    info = {"event": "info", "type": "application/dtmf-relay"}
    assert dtmf_of({**info, "content": "Signal=5\r\nDuration=160\r\n"}) == "5"
    assert dtmf_of({**info, "content": "Signal= #\r\n"}) == "#"
    assert dtmf_of({**info, "content": "Signal=x"}) == ""
    assert dtmf_of({"event": "info", "type": "text/plain", "content": "Signal=5"}) == ""
    assert dtmf_of({"event": "dtmf", "signal": "a"}) == "A"
    assert dtmf_of({"event": "dtmf", "signal": "11"}) == ""


@pytest.mark.timeout(60)
async def test_a_call_comes_in_is_accepted_into_a_room_and_audio_flows_both_ways(
    janus_url: str,  # noqa: F811
    edge: Edge,
    tmp_path: Path,
) -> None:
    require_tool("sipp")
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    alice = Peer(440)
    await room.open()
    ended: list[dict[str, Any]] = []
    sipp = None
    try:
        await joined(room, "8:acs:alice", alice)
        async with Line(janus_url, edge) as line:
            line.decide = accept_into(room, ended)
            # when a trunk (sipp, echoing what it hears) calls the number through the edge
            sipp = sipp_call(edge.address, NUMBER, tmp_path, seconds=5)
            await until(lambda: bool(line.calls), 10, "the incoming call")

            # then Spool learns who called, which number, and the trunk's real address (the
            # X-Spool-Source header the trunk sent itself is not believed)
            call = line.calls[0]
            assert (call.caller, call.number, call.source) == ("+15559990000", NUMBER, "127.0.0.1")
            assert call.raw_id == "4:+15559990000" and call.sip_call_id

            # and alice hears her own tone back through the phone: audio went both ways
            await hears(alice, 440, timeout=10)

            # when the phone hangs up, the call ends once, normally, as the trunk's doing
            await until(lambda: bool(ended), 15, "the phone's hang-up")
            assert ended == [
                {"kind": "ended", "code": 0, "subCode": 560000, "reason": "The phone hung up."}
            ]
            assert await asyncio.to_thread(sipp.wait, 10) == 0
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
            sipp.wait()
        await room.close()
        await alice.pc.close()


@pytest.mark.timeout(60)
async def test_a_call_given_up_as_silent_ends_once_with_408_and_a_bye(
    janus_url: str,  # noqa: F811
    edge: Edge,
    tmp_path: Path,
) -> None:
    require_tool("sipp")
    room = AudioBridgeRoom(janus_url, str(uuid.uuid4()), Events())
    await room.open()
    ended: list[dict[str, Any]] = []
    sipp = None
    try:
        async with Line(janus_url, edge) as line:
            line.decide = accept_into(room, ended)
            sipp = sipp_call(edge.address, NUMBER, tmp_path, seconds=20)
            await until(lambda: bool(line.calls) and line.calls[0].accepted, 10, "answered")

            # when the media process gives the phone up (its audio stopped for good)
            await line.calls[0].silent()

            # then the call ends at once, as a silent line, and only once
            assert ended == [
                {
                    "kind": "ended",
                    "code": 408,
                    "subCode": 510408,
                    "reason": "The phone line went silent.",
                }
            ]
            # and the phone got a BYE: sipp, which was to send its own 20 s on, fails on it
            assert await asyncio.to_thread(sipp.wait, 15) != 0
            [log] = tmp_path.glob("sipp-*.log")
            assert "BYE sip:" in log.read_text(errors="replace")
            assert ended == [
                {
                    "kind": "ended",
                    "code": 408,
                    "subCode": 510408,
                    "reason": "The phone line went silent.",
                }
            ]
    finally:
        if sipp is not None and sipp.poll() is None:
            sipp.kill()
            sipp.wait()
        await room.close()


@pytest.mark.timeout(60)
async def test_a_declined_call_gets_the_status_and_calls_at_once_take_helpers(
    janus_url: str,  # noqa: F811
    edge: Edge,
) -> None:
    async with Line(janus_url, edge) as line:

        async def decline(call: IncomingPhoneCall) -> None:
            await asyncio.sleep(0.5)  # held a while, so the calls overlap
            await call.decline(404 if call.number.endswith("4") else 486)

        line.decide = decline
        codes = await asyncio.gather(
            *(asyncio.to_thread(invite, edge.address, f"+1555000000{i}") for i in range(4, 9))
        )
        assert codes == [404, 486, 486, 486, 486]
        assert len({call.handle for call in line.calls}) == 5  # the master and four helpers


@pytest.mark.timeout(30)
async def test_without_the_line_registered_the_edge_answers_503(edge: Edge) -> None:
    assert await asyncio.to_thread(invite, edge.address, NUMBER) == 503


@pytest.mark.timeout(60)
async def test_a_line_whose_edge_does_not_answer_yet_keeps_registering(
    janus_url: str,  # noqa: F811
) -> None:
    # given an edge that hears REGISTERs but answers none (Kamailio still starting)
    heard: list[bytes] = []

    class MuteEdge(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            heard.append(data)

    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(MuteEdge, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    line = SipLine(janus_url, f"127.0.0.1:{port}", on_call=None, timeout=1)  # type: ignore
    task = asyncio.create_task(line.run())
    try:
        # when the first REGISTER goes unanswered for longer than the line waits
        def attempts() -> set[str]:
            return {
                header.split(":", 1)[1].strip()
                for data in heard
                for header in data.decode(errors="replace").split("\r\n")
                if header.lower().startswith(("call-id:", "i:"))
            }

        await until(lambda: len(attempts()) >= 2, 20, "a second REGISTER")

        # then the line tried again with a new registration, and is still running
        assert not task.done()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        transport.close()
