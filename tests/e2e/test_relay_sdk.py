"""azure-communication-networktraversal against a live `manage.py serve` with TURN configured."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.networktraversal import CommunicationRelayClient

from tests.conftest import LiveSpool, start_spool, stop_spool

pytestmark = pytest.mark.e2e
SECRET = "e2e-turn-secret"


@pytest.fixture(scope="module")
def turn_spool() -> Iterator[LiveSpool]:
    live, cleanups = start_spool(
        {"SPOOL_TURN_URLS": "turn:127.0.0.1:3478?transport=udp", "SPOOL_TURN_SECRET": SECRET}
    )
    try:
        yield live
    finally:
        stop_spool(live, cleanups)


def test_the_relay_sdk_gets_turn_credentials_for_a_user(turn_spool: LiveSpool) -> None:
    # given a user of a resource
    connection = turn_spool.create_resource()
    user = CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=turn_spool.cert
    ).create_user()
    relay = CommunicationRelayClient.from_connection_string(
        connection, connection_verify=turn_spool.cert
    )

    # when the SDK asks for a relay configuration
    configuration = relay.get_relay_configuration(user=user, ttl=3600)

    # then it gets the TURN server with credentials coturn will accept
    [server] = configuration.ice_servers
    assert server.urls == ["turn:127.0.0.1:3478?transport=udp"]
    assert server.username.endswith(":" + user.properties["id"])
    expected = hmac.new(SECRET.encode(), server.username.encode(), hashlib.sha1).digest()
    assert server.credential == base64.b64encode(expected).decode()
    assert configuration.expires_on is not None
