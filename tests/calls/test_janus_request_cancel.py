"""A request to Janus that is cancelled as its answer arrives stops its task: the cancellation
is not lost (Python 3.11's asyncio.wait_for loses it, and a loop awaiting Janus, such as the SIP
line's, then never stops)."""

from __future__ import annotations

import asyncio

import pytest

from apps.calls.sfu import _Connection


class QuietSocket:
    """Takes what is sent; answers nothing by itself."""

    async def send(self, text: str) -> None:
        pass


def test_a_request_cancelled_as_its_answer_comes_is_cancelled() -> None:
    async def scenario() -> None:
        connection = _Connection("ws://127.0.0.1:9/unused", lambda message: None)
        connection._socket = QuietSocket()  # type: ignore[assignment]
        connection._reader = asyncio.create_task(asyncio.sleep(3600))
        try:
            task = asyncio.create_task(connection.request({"janus": "info"}, timeout=5))
            await asyncio.sleep(0.01)  # the request is sent and waits for its answer

            # when its answer arrives and the task is cancelled in the same moment
            [(answer, _)] = connection._pending.values()
            answer.set_result({"janus": "server_info"})
            task.cancel()

            # then the task ends cancelled, not with the answer
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            connection._reader.cancel()

    asyncio.run(scenario())


def test_a_request_still_times_out() -> None:
    from apps.calls.sfu import JanusError

    async def scenario() -> None:
        connection = _Connection("ws://127.0.0.1:9/unused", lambda message: None)
        connection._socket = QuietSocket()  # type: ignore[assignment]
        connection._reader = asyncio.create_task(asyncio.sleep(3600))
        try:
            with pytest.raises(JanusError, match="no answer from Janus to info in 0.05 s"):
                await connection.request({"janus": "info"}, timeout=0.05)
            assert connection._pending == {}
        finally:
            connection._reader.cancel()

    asyncio.run(scenario())
