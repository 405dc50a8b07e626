"""The identity WebSocket (/ws/): token auth, and closing on revocation, deletion, expiry."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from apps.accounts import services, tokens
from spool.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections():
    # The consumer's thread keeps its connection open; close it so the test DB can be dropped.
    yield
    await database_sync_to_async(connections.close_all)()


async def _connect(token: str) -> tuple[WebsocketCommunicator, dict]:
    communicator = WebsocketCommunicator(application, f"/ws/?access_token={token}")
    connected, _ = await communicator.connect()
    assert connected
    return communicator, await communicator.receive_json_from(timeout=5)


async def _identity_with_token(resource):
    return await database_sync_to_async(services.create_identity)(resource, scopes=["chat"])


async def test_a_valid_token_gets_a_hello(resource) -> None:
    identity, token = await _identity_with_token(resource)
    communicator, hello = await _connect(token.token)
    assert (
        hello["type"] == "hello"
        and hello["identity"] == identity.raw_id
        and hello["scopes"] == ["chat"]
    )
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from())["type"] == "pong"
    await communicator.disconnect()


async def test_a_bad_token_is_refused(resource) -> None:
    communicator, first = await _connect("nonsense")
    assert first["type"] == "error" and first["code"] == "InvalidToken"
    assert (await communicator.receive_output(timeout=5))["code"] == 4001


@pytest.mark.parametrize("action", [services.revoke_tokens, services.delete_identity])
async def test_revoking_or_deleting_closes_open_sockets(resource, action) -> None:
    # given an open socket
    identity, token = await _identity_with_token(resource)
    communicator, _ = await _connect(token.token)

    # when
    await database_sync_to_async(action)(identity)

    # then the socket is told why and closed
    message = await communicator.receive_json_from(timeout=5)
    assert message["type"] == "error" and message["code"] == "InvalidToken"
    assert (await communicator.receive_output(timeout=5))["code"] == 4001

    # and the same token cannot connect again
    again, first = await _connect(token.token)
    assert first["type"] == "error"


async def test_the_socket_closes_when_the_token_expires(resource) -> None:
    # given a token that expires in one second
    identity, _ = await _identity_with_token(resource)
    import time

    token = await database_sync_to_async(tokens.sign)(
        {"sub": identity.raw_id, "gen": 0, "scp": "chat", "exp": int(time.time()) + 2}
    )
    communicator, hello = await _connect(token)
    assert hello["type"] == "hello"

    # then
    message = await communicator.receive_json_from(timeout=5)
    assert message["code"] == "InvalidToken" and "expired" in message["message"]


async def test_a_renewed_token_keeps_the_socket_open_past_the_old_expiry(resource) -> None:
    # given a socket whose token expires in two seconds
    identity, _ = await _identity_with_token(resource)
    import time

    short = await database_sync_to_async(tokens.sign)(
        {"sub": identity.raw_id, "gen": 0, "scp": "chat", "exp": int(time.time()) + 2}
    )
    communicator, _ = await _connect(short)

    # when another identity's token, or nonsense, is offered, nothing changes
    _, stranger = await _identity_with_token(resource)
    for wrong in (stranger.token, "nonsense", 5):
        await communicator.send_json_to({"type": "token.renew", "token": wrong})
        refused = await communicator.receive_json_from(timeout=5)
        assert refused["code"] == "InvalidToken" and refused["command"] == "token.renew"

    # when a new token of the same identity is sent in
    renewed = await database_sync_to_async(services.issue_token)(identity, ["chat", "voip"])
    await communicator.send_json_to({"type": "token.renew", "token": renewed.token})
    answer = await communicator.receive_json_from(timeout=5)
    assert answer["type"] == "token.renewed" and answer["scopes"] == ["chat", "voip"]

    # then the socket is still open after the old token's expiry
    assert await communicator.receive_nothing(timeout=3)
    await communicator.send_json_to({"type": "ping"})
    assert (await communicator.receive_json_from())["type"] == "pong"
    await communicator.disconnect()


async def test_unknown_websocket_paths_are_refused() -> None:
    communicator = WebsocketCommunicator(application, "/ws/nothing-here")
    connected, _ = await communicator.connect()
    assert not connected


async def test_a_lost_revocation_push_is_caught_by_the_periodic_recheck(
    resource, monkeypatch
) -> None:
    # given an open socket that re-checks its token every 0.2 s
    from apps.accounts import consumers
    from apps.accounts.models import CommunicationIdentity

    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.2)
    identity, token = await _identity_with_token(resource)
    communicator, _ = await _connect(token.token)

    # when the identity disappears without a push (as if Redis had been down)
    await database_sync_to_async(CommunicationIdentity.objects.filter(pk=identity.pk).delete)()

    # then the socket is refused anyway
    message = await communicator.receive_json_from(timeout=5)
    assert message["code"] == "InvalidToken"
    assert (await communicator.receive_output(timeout=5))["code"] == 4001


async def test_an_identity_holds_at_most_its_share_of_sockets(resource, settings) -> None:
    # given an identity allowed 2 sockets at once
    settings.MAX_SOCKETS_PER_IDENTITY = 2
    _, token = await _identity_with_token(resource)
    first, hello = await _connect(token.token)
    second, _ = await _connect(token.token)
    assert hello["type"] == "hello"

    # when a third opens, then it is refused with a clear error and closed (4029)
    third, refused = await _connect(token.token)
    assert refused["type"] == "error" and refused["code"] == "TooManySockets"
    assert (await third.receive_output(timeout=5))["code"] == 4029

    # when one closes, then a new one is welcome again
    await first.disconnect()
    fourth, hello = await _connect(token.token)
    assert hello["type"] == "hello"
    await second.disconnect()
    await fourth.disconnect()
