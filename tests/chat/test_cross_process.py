"""Across web processes: a change made through one process reaches a socket held by another,
through Redis (the live server's, private or real), as it does behind a load balancer."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
import requests
from azure.communication.identity import CommunicationIdentityClient
from websockets.sync.client import ClientConnection, connect

from tests.conftest import LiveSpool

pytestmark = pytest.mark.e2e

API = {"api-version": "2024-03-07"}


@pytest.fixture(scope="module")
def live_resource(live_spool: LiveSpool) -> tuple[str, CommunicationIdentityClient]:
    connection = live_spool.create_resource()
    slug = live_spool.slug_of(connection)
    return slug, CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=live_spool.cert
    )


def _chat(base: str, slug: str, token: str, method: str, path: str, body: Any) -> Any:
    response = requests.request(
        method,
        f"{base}/r/{slug}/chat{path}",
        params=API,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()


def _next_chat_frame(socket: ClientConnection) -> dict[str, Any]:
    frame = json.loads(socket.recv(timeout=10))
    assert frame["type"] == "chat", frame
    return dict(frame)


@pytest.mark.parametrize("socket_on", ["live server", "second process"])
def test_a_change_through_one_process_reaches_a_socket_on_the_other(
    live_spool: LiveSpool, second_web: str, live_resource: Any, socket_on: str
) -> None:
    # given bob's socket on one web process, and alice calling the other
    slug, identities = live_resource
    alice, alice_token = identities.create_user_and_token(["chat"])
    bob, bob_token = identities.create_user_and_token(["chat"])
    socket_base, rest_base = live_spool.http_url, second_web
    if socket_on == "second process":
        socket_base, rest_base = rest_base, socket_base
    ws_url = socket_base.replace("http://", "ws://") + f"/ws/?access_token={bob_token.token}"
    with connect(ws_url, open_timeout=10) as socket:
        hello = json.loads(socket.recv(timeout=10))
        assert hello["type"] == "hello" and hello["identity"] == bob.raw_id

        # when alice creates a thread with him and sends a message, through the other process
        participants = [{"communicationIdentifier": {"rawId": bob.raw_id}}]
        body = {"topic": f"Across ({socket_on})", "participants": participants}
        created_thread = _chat(rest_base, slug, alice_token.token, "POST", "/threads", body)
        thread_id = created_thread["chatThread"]["id"]
        path = f"/threads/{quote(thread_id, safe='')}/messages"
        sent = _chat(rest_base, slug, alice_token.token, "POST", path, {"content": "hi"})

        # then both reach his socket
        created = _next_chat_frame(socket)
        assert created["event"] == "chatThreadCreated" and created["threadId"] == thread_id
        received = _next_chat_frame(socket)
        assert received["event"] == "chatMessageReceived"
        assert received["data"]["id"] == sent["id"] and received["data"]["message"] == "hi"
        assert received["data"]["recipient"]["communicationUserId"] == bob.raw_id
