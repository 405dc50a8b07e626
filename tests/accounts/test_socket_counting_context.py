"""The identity socket counts its sockets (apps.accounts.sockets) in a context the worker thread
keeps, not in each socket's own: Django's cache handle is a context variable, and a cache client
(with a Redis connection pool) built in a socket's context would live as long as the socket."""

from __future__ import annotations

import asyncio
import contextvars

from apps.accounts import consumers

marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker")


async def _socket(count: consumers.Count, channel: str) -> str | None:
    """One socket's count, in a task (so a context) of its own; what its context then holds."""
    await consumers._count_socket(count, "alice", channel)
    return marker.get(None)


async def test_what_one_socket_count_sets_up_the_next_socket_count_reuses() -> None:
    # given one socket's count that sets up state in a context variable (as Django's cache
    # handle does when first used)
    seen: list[str | None] = []

    def first(identity_id: object, channel: str) -> None:
        marker.set(channel)

    def second(identity_id: object, channel: str) -> None:
        seen.append(marker.get(None))

    kept = await asyncio.ensure_future(_socket(first, "socket-1"))

    # when another socket counts
    await asyncio.ensure_future(_socket(second, "socket-2"))

    # then it finds that state, and the first socket's own context did not keep it
    assert seen == ["socket-1"]
    assert kept is None
