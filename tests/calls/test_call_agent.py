"""The Python call agent against a scripted socket: frames that follow a reply at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiortc import RTCPeerConnection
from websockets.asyncio.server import ServerConnection, serve

from apps.calls.agent import CallAgent

OTHER = "8:acs:00000000-0000-0000-0000-000000000001_00000000-0000-0000-0000-000000000002"


async def feed_offer() -> dict[str, str]:
    """An SDP offer of one audio stream, as Janus makes for a feed."""
    janus_side = RTCPeerConnection()
    janus_side.addTransceiver("audio", direction="sendonly")
    await janus_side.setLocalDescription(await janus_side.createOffer())
    offer = {"type": "offer", "sdp": janus_side.localDescription.sdp}
    await janus_side.close()
    return offer


async def test_a_feed_offered_right_after_joined_is_answered() -> None:
    # given a server that sends a feed's offer in the same breath as `call.joined` (as Spool
    # does for the feeds already in a group call), before the agent's join() resumes
    offer = await feed_offer()
    signals: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def server(socket: ServerConnection) -> None:
        await socket.send(json.dumps({"type": "hello", "identity": "8:acs:me"}))
        async for text in socket:
            frame = json.loads(text)
            if frame["type"] == "call.join":
                joined = {
                    "type": "call.joined",
                    "callId": "call-1",
                    "topology": "sfu",
                    "role": "Consumer",  # receives only: the agent makes no offer of its own
                    "participants": [{"rawId": OTHER}],
                }
                feed = {
                    "type": "call",
                    "event": "signal",
                    "callId": "call-1",
                    "from": f"sfu:{OTHER}",
                    "data": offer,
                }
                await socket.send(json.dumps(joined))
                await socket.send(json.dumps(feed))
            elif frame["type"] == "call.signal":
                await signals.put(frame)

    async with serve(server, "127.0.0.1", 0) as listening:
        port = listening.sockets[0].getsockname()[1]
        agent = CallAgent(f"ws://127.0.0.1:{port}/ws/", "token")
        await agent.connect()
        try:
            # when it joins
            await agent.join(group_id="a-group")

            # then it answers the feed in that call
            answer = await asyncio.wait_for(signals.get(), 10)
        finally:
            await agent.close()
    assert agent.call_id == "call-1"
    assert answer["callId"] == "call-1"
    assert answer["to"] == f"sfu:{OTHER}"
    assert answer["data"]["type"] == "answer"
