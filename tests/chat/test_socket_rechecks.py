"""The periodic token re-checks of idle chat sockets (apps/accounts/consumers.py): those due
together share one hop to a worker thread, and each socket still gets its own outcome."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from apps.accounts import consumers, services
from apps.accounts.models import CommunicationIdentity
from spool.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def close_thread_connections() -> Any:
    # The consumer's thread keeps its connection open; close it so the test DB can be dropped.
    yield
    await database_sync_to_async(connections.close_all)()


async def _open_socket(resource: Any) -> tuple[CommunicationIdentity, WebsocketCommunicator]:
    identity, issued = await database_sync_to_async(services.create_identity)(
        resource, scopes=["chat"]
    )
    assert issued is not None
    communicator = WebsocketCommunicator(application, f"/ws/?access_token={issued.token}")
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=5))["type"] == "hello"
    return identity, communicator


async def test_sockets_due_together_are_rechecked_in_one_hop_each_with_its_outcome(
    resource: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given three sockets that re-check their tokens every 0.2 s, the re-checks recorded
    monkeypatch.setattr(consumers, "RECHECK_SECONDS", 0.2)
    monkeypatch.setattr(consumers, "RECHECK_BATCH_SECONDS", 0.3)
    batches: list[int] = []
    recheck = consumers._recheck

    def recording(due: list[Any]) -> list[str | None]:
        batches.append(len(due))
        return recheck(due)

    monkeypatch.setattr(consumers, "_recheck", recording)
    sockets = [await _open_socket(resource) for _ in range(3)]

    # when one identity goes without a push (as if Redis had been down)
    (gone, refused), *kept = sockets
    await database_sync_to_async(CommunicationIdentity.objects.filter(pk=gone.pk).delete)()

    # then its socket is refused, and the others stay open and answer
    message = await refused.receive_json_from(timeout=5)
    assert message["code"] == "InvalidToken"
    assert (await refused.receive_output(timeout=5))["code"] == 4001
    for _, communicator in kept:
        await communicator.send_json_to({"type": "ping"})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "pong"
    # and re-checks were made together (three sockets, fewer hops)
    assert max(batches) > 1
    for _, communicator in kept:
        await communicator.disconnect()
