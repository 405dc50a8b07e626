"""Two Python call agents call each other through a live `manage.py serve`: audio both ways."""

from __future__ import annotations

import asyncio

import pytest

from apps.calls.agent import CallAgent
from tests.conftest import LiveSpool

pytestmark = pytest.mark.e2e


def voip_user(live: LiveSpool, connection: str) -> tuple[str, str]:
    from azure.communication.identity import CommunicationIdentityClient

    client = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=live.cert
    )
    user, token = client.create_user_and_token(["voip"])
    return user.properties["id"], token.token


@pytest.mark.timeout(90)
def test_two_agents_call_each_other_and_hear_each_other(live_spool: LiveSpool) -> None:
    # given two identities with voip tokens, each an agent on the plain-HTTP socket
    connection = live_spool.create_resource()
    alice_id, alice_token = voip_user(live_spool, connection)
    bob_id, bob_token = voip_user(live_spool, connection)
    socket_url = live_spool.http_url.replace("http://", "ws://") + "/ws/"

    async def scenario() -> tuple[CallAgent, CallAgent]:
        alice, bob = CallAgent(socket_url, alice_token), CallAgent(socket_url, bob_token)
        await alice.connect()
        await bob.connect()
        try:
            # when alice calls bob and bob answers
            await alice.call(bob_id)
            await bob.answer()
            await alice.wait_state("Connected")
            # then audio flows both ways within a few seconds
            for _ in range(100):
                if alice.frames_received > 25 and bob.frames_received > 25:
                    break
                await asyncio.sleep(0.1)
            # and when alice hangs up, both see the call end normally
            await alice.hang_up()
            await bob.wait_state("Disconnected")
            await alice.wait_state("Disconnected")
            return alice, bob
        finally:
            await alice.close()
            await bob.close()

    alice, bob = asyncio.run(scenario())
    assert alice.frames_received > 25 and bob.frames_received > 25
    assert bob.end_reason == {"code": 0, "subCode": 0}
