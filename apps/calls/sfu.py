"""One participant's leg in a Janus VideoRoom (the SFU behind group calls), driven over Janus's
WebSocket API.

A leg is one Janus session: a publisher handle that joins the room (and publishes when the
client sends an offer), and one subscriber handle per remote publisher ("feed"). Feeds are
named by the publisher's display, which is the participant's raw id. Janus offers every feed;
the client answers it. Janus puts its candidates in its SDPs (half trickle); the client may
trickle its own.

    async def on_event(event):  # {"kind": "offer", "feed": raw_id, "jsep": {...}}, ...
        ...
    leg = JanusLeg("ws://127.0.0.1:8188", room=call_id, display=raw_id, on_event=on_event)
    await leg.open()
    answer = await leg.publish(offer)          # or never, to only receive
    await leg.answer_feed(feed, answer)        # after an "offer" event
    await leg.close()

Janus answers requests by transaction and sends everything else (new publishers, departures,
renegotiations) as events of a handle; a request whose answer does not come within `timeout`
raises JanusError, since Janus may stay silent. docker/janus/ holds the configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

logger = logging.getLogger(__name__)

PLUGIN = "janus.plugin.videoroom"
TIMEOUT = 10.0  # seconds for any one answer from Janus
KEEPALIVE_SECONDS = 25.0  # Janus drops a silent session after session_timeout (60 s)
ROOM_PUBLISHERS = 100  # Janus' default is 3
# VideoRoom error codes (plugins/janus_videoroom.c).
NO_SUCH_ROOM = 426
ROOM_EXISTS = 427
NO_SUCH_FEED = 428
# What connection loss looks like to callers (there is no Janus code for it).
CONNECTION_LOST = 0

OnEvent = Callable[[dict[str, Any]], Awaitable[None]]


class JanusError(Exception):
    """Janus refused a request (`code`, `reason` as Janus gave them), did not answer in time,
    or the connection to it is gone (code 0)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"Janus error {code}: {reason}")
        self.code = code
        self.reason = reason


class _Connection:
    """One WebSocket to Janus: requests matched to answers by transaction; every message that
    answers no pending request is passed to `on_message`."""

    def __init__(self, url: str, on_message: Callable[[dict[str, Any] | None], None]) -> None:
        self.url = url
        self.on_message = on_message  # called with None once the connection is gone
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[asyncio.Future[dict[str, Any]], bool]] = {}
        self._transactions = itertools.count(1)

    async def open(self, timeout: float) -> None:
        try:
            self._socket = await connect(
                self.url, subprotocols=[Subprotocol("janus-protocol")], open_timeout=timeout
            )
        except (OSError, TimeoutError) as error:
            raise JanusError(
                CONNECTION_LOST, f"cannot reach Janus at {self.url}: {error}"
            ) from error
        self._reader = asyncio.create_task(self._read())

    async def request(
        self, message: dict[str, Any], *, timeout: float, ack_is_answer: bool = False
    ) -> dict[str, Any]:
        """Send `message`; return Janus' answer to it ("success", "event", or "ack" when
        `ack_is_answer`). Raises JanusError for an error answer, a timeout or a lost socket."""
        if self._socket is None or self._reader is None or self._reader.done():
            raise JanusError(CONNECTION_LOST, "not connected to Janus")
        transaction = f"t{next(self._transactions)}"
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[transaction] = (answer, ack_is_answer)
        try:
            await self._socket.send(
                json.dumps({**message, **_secret(), "transaction": transaction})
            )
            # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancellation that
            # comes as the answer does, and its caller then never stops.
            async with asyncio.timeout(timeout):
                reply = await answer
        except TimeoutError as error:
            raise JanusError(
                CONNECTION_LOST, f"no answer from Janus to {message.get('janus')} in {timeout} s"
            ) from error
        except ConnectionClosed as error:
            raise JanusError(CONNECTION_LOST, "the connection to Janus closed") from error
        finally:
            self._pending.pop(transaction, None)
        if reply["janus"] == "error":
            refusal = reply.get("error", {})
            raise JanusError(int(refusal.get("code", -1)), str(refusal.get("reason", reply)))
        return reply

    @property
    def lost(self) -> bool:
        return self._reader is not None and self._reader.done()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for text in self._socket:
                message = json.loads(text)
                waiter = self._pending.get(message.get("transaction", ""))
                if waiter is None:
                    self.on_message(message)
                    continue
                answer, ack_is_answer = waiter
                # A plugin request is acked first; its answer follows as "success" or "event".
                if message["janus"] == "ack" and not ack_is_answer:
                    continue
                if not answer.done():
                    answer.set_result(message)
                else:
                    # A later event under the same transaction (the SIP plugin's ringing or
                    # accepted, right after its answer), before the requester resumed.
                    self.on_message(message)
        except ConnectionClosed:
            pass
        finally:
            for answer, _ in self._pending.values():
                if not answer.done():
                    answer.set_exception(
                        JanusError(CONNECTION_LOST, "the connection to Janus closed")
                    )
            self.on_message(None)


def _secret() -> dict[str, str]:
    """Janus's api_secret (SPOOL_JANUS_API_SECRET) for every request, when one is set."""
    return {"apisecret": settings.JANUS_API_SECRET} if settings.JANUS_API_SECRET else {}


class _Session:
    """A Janus session on one connection, with plugin requests on its handles."""

    def __init__(self, url: str, timeout: float) -> None:
        self.timeout = timeout
        self.connection = _Connection(url, self._on_message)
        self.id: int | None = None
        self.events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def create(self) -> None:
        await self.connection.open(self.timeout)
        reply = await self.connection.request({"janus": "create"}, timeout=self.timeout)
        self.id = reply["data"]["id"]

    async def janus(self, verb: str, **fields: Any) -> dict[str, Any]:
        return await self.connection.request(
            {"janus": verb, "session_id": self.id, **fields},
            timeout=self.timeout,
            ack_is_answer=verb in ("keepalive", "trickle"),
        )

    async def attach(self) -> int:
        reply = await self.janus("attach", plugin=PLUGIN)
        return int(reply["data"]["id"])

    async def detach(self, handle: int) -> None:
        await self.janus("detach", handle_id=handle)

    async def message(
        self, handle: int, body: dict[str, Any], jsep: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A VideoRoom request on `handle`: (the plugin's answer, its jsep if any)."""
        fields: dict[str, Any] = {"handle_id": handle, "body": body}
        if jsep is not None:
            fields["jsep"] = {"type": jsep["type"], "sdp": jsep["sdp"]}
        reply = await self.janus("message", **fields)
        data = reply.get("plugindata", {}).get("data", {})
        if "error_code" in data:
            raise JanusError(int(data["error_code"]), str(data.get("error", data)))
        return data, reply.get("jsep")

    async def destroy(self) -> None:
        """Destroy the session (best effort: Janus drops it anyway when the socket closes)."""
        try:
            if self.id is not None:
                await self.janus("destroy")
        except JanusError as error:
            logger.debug("destroying Janus session %s: %s", self.id, error)
        finally:
            await self.connection.close()

    async def keep_alive(self, what: str) -> None:
        """Keep the session from timing out, until the connection is lost (run it as a task;
        cancel it when done). Failures are logged: whoever reads `events` hears of a loss."""
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                await self.janus("keepalive")
            except JanusError as error:
                logger.warning("Janus keepalive for %s failed: %s", what, error)
                if self.connection.lost:
                    return

    def _on_message(self, message: dict[str, Any] | None) -> None:
        # Late answers to requests that timed out carry a transaction: nobody wants them.
        if message is None or "transaction" not in message:
            self.events.put_nowait(message)


@dataclass
class _Feed:
    id: str  # Janus' id of the remote publisher
    handle: int  # our subscriber handle for it


class JanusLeg:
    """One participant in a Janus VideoRoom: a Janus session with a publisher handle and one
    subscriber handle per remote feed.

    `on_event` gets {"kind": "offer", "feed": display, "jsep": {...}} for each remote feed
    (again when Janus renegotiates it), {"kind": "feedRemoved", "feed": display} when it
    goes, and {"kind": "disconnected"} if the connection to Janus drops or Janus drops the
    session (then close() the leg). Events come one at a time, in order; the callback may
    call this leg's methods.
    """

    def __init__(
        self, url: str, room: str, display: str, on_event: OnEvent, *, timeout: float = TIMEOUT
    ) -> None:
        self.url = url
        self.room = room
        self.display = display
        self.on_event = on_event
        self.id: str | None = None  # Janus' id of this participant
        self._session = _Session(url, timeout)
        self._publisher: int | None = None
        self._private_id: Any = None
        self._published = False
        self._feeds: dict[str, _Feed] = {}  # by display
        self._keepalive_task: asyncio.Task[None] | None = None
        self._dispatch_task: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self) -> None:
        """Join the room (creating it if missing) without publishing, and offer every feed
        already published in it. Raises JanusError."""
        session = self._session
        try:
            await session.create()
            self._keepalive_task = asyncio.create_task(self._keepalive())
            self._publisher = await session.attach()
            await _create_room(session, self._publisher, self.room)
            joined, _ = await session.message(
                self._publisher,
                {
                    "request": "join",
                    "ptype": "publisher",
                    "room": self.room,
                    "display": self.display,
                },
            )
            self.id, self._private_id = str(joined["id"]), joined.get("private_id")
            for publisher in joined.get("publishers", []):
                await self._subscribe(publisher)
        except BaseException:
            await self.close()
            raise
        # Events that came meanwhile were queued: from here on they go to on_event, in order.
        self._dispatch_task = asyncio.create_task(self._dispatch())

    async def publish(self, offer: dict[str, Any]) -> dict[str, Any]:
        """Publish what the client's offer holds (or renegotiate it); returns Janus' answer."""
        assert self._publisher is not None, "open() first"
        # Janus 1.x publishes exactly the offer's streams; a second offer renegotiates.
        request = "configure" if self._published else "publish"
        _, jsep = await self._session.message(self._publisher, {"request": request}, offer)
        if jsep is None:
            raise JanusError(-1, "Janus did not answer the offer")
        self._published = True
        return {"type": jsep["type"], "sdp": jsep["sdp"]}

    async def answer_feed(self, feed: str, answer: dict[str, Any]) -> None:
        """Start receiving `feed` with the client's answer to its offer."""
        subscription = self._feeds.get(feed)
        if subscription is None:
            raise JanusError(NO_SUCH_FEED, f"no feed {feed!r} in room {self.room}")
        await self._session.message(subscription.handle, {"request": "start"}, answer)

    async def trickle(self, target: str, candidate: dict[str, Any] | None) -> None:
        """Pass one of the client's ICE candidates ({"candidate", "sdpMid", "sdpMLineIndex"})
        for "publish" or a feed; None means the client has no more. Candidates for a feed that
        has just gone are dropped."""
        if target == "publish":
            handle = self._publisher
        else:
            subscription = self._feeds.get(target)
            handle = subscription.handle if subscription else None
        if handle is None:
            return
        await self._session.janus(
            "trickle", handle_id=handle, candidate=candidate or {"completed": True}
        )

    async def close(self) -> None:
        """Leave the room and destroy the session (which detaches every handle). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        dispatch = self._dispatch_task
        if dispatch is not None and dispatch is not asyncio.current_task():
            # Let an on_event call in progress finish (cancelling it midway could leave the
            # caller's state half-changed); the dispatcher stops before the next event.
            self._session.events.put_nowait(None)
            await asyncio.wait([dispatch], timeout=self._session.timeout)
            dispatch.cancel()
        if self._publisher is not None and self.id is not None:
            with contextlib.suppress(JanusError):
                await self._session.message(self._publisher, {"request": "leave"})
        await self._session.destroy()
        self._feeds.clear()

    # --- internals ---------------------------------------------------------------------------
    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(KEEPALIVE_SECONDS)
            try:
                await self._session.janus("keepalive")
            except JanusError as error:
                logger.warning("Janus keepalive for room %s failed: %s", self.room, error)
                if self._session.connection.lost:
                    return  # _dispatch has told the caller

    async def _dispatch(self) -> None:
        while True:
            message = await self._session.events.get()
            if self._closed:
                return
            if message is None:
                await self._emit({"kind": "disconnected"})
                return
            try:
                await self._handle(message)
            except JanusError as error:
                logger.warning("Janus event %s in room %s: %s", message, self.room, error)

    async def _handle(self, message: dict[str, Any]) -> None:
        if message.get("janus") == "timeout":  # Janus dropped the session: the leg is dead
            await self._emit({"kind": "disconnected"})
            return
        if message.get("janus") != "event":
            return  # webrtcup, media, slowlink, hangup, detached: nothing to pass on
        data = message.get("plugindata", {}).get("data", {})
        if message.get("sender") == self._publisher:
            for publisher in data.get("publishers", []):
                await self._subscribe(publisher)
            for key in ("unpublished", "leaving"):
                if key in data and data[key] != "ok":  # "ok" answers our own request
                    await self._unsubscribe(str(data[key]))
            return
        jsep = message.get("jsep")
        for display, subscription in list(self._feeds.items()):
            if subscription.handle == message.get("sender") and jsep and jsep["type"] == "offer":
                await self._emit({"kind": "offer", "feed": display, "jsep": _jsep(jsep)})

    async def _subscribe(self, publisher: dict[str, Any]) -> None:
        feed_id = str(publisher["id"])
        display = str(publisher.get("display") or feed_id)
        if feed_id == self.id or any(f.id == feed_id for f in self._feeds.values()):
            return  # ourselves, or a feed we have (Janus repeats it when its streams change)
        if display in self._feeds:  # the same participant again, under a new Janus id
            await self._unsubscribe(self._feeds[display].id)
        handle = await self._session.attach()
        body: dict[str, Any] = {"request": "join", "ptype": "subscriber", "room": self.room}
        body["streams"] = [{"feed": feed_id}]  # every stream the feed has, now and later
        if self._private_id is not None:  # ties the subscription to our publisher
            body["private_id"] = self._private_id
        try:
            _, jsep = await self._session.message(handle, body)
        except JanusError as error:  # it went away meanwhile: its "unpublished" follows
            logger.info("subscribing to %s in room %s: %s", display, self.room, error)
            with contextlib.suppress(JanusError):
                await self._session.detach(handle)
            return
        self._feeds[display] = _Feed(feed_id, handle)
        if jsep is not None:
            await self._emit({"kind": "offer", "feed": display, "jsep": _jsep(jsep)})

    async def _unsubscribe(self, feed_id: str) -> None:
        for display, subscription in list(self._feeds.items()):
            if subscription.id == feed_id:
                del self._feeds[display]
                with contextlib.suppress(JanusError):
                    await self._session.detach(subscription.handle)
                await self._emit({"kind": "feedRemoved", "feed": display})

    async def _emit(self, event: dict[str, Any]) -> None:
        try:
            await self.on_event(event)
        except Exception:  # the caller's bug must not stop the events that follow
            logger.exception("on_event failed for %s", event.get("kind"))


def _jsep(jsep: dict[str, Any]) -> dict[str, Any]:
    return {"type": jsep["type"], "sdp": jsep["sdp"]}


async def _create_room(session: _Session, handle: int, room: str) -> None:
    body = {"request": "create", "room": room, "publishers": ROOM_PUBLISHERS, "permanent": False}
    try:
        await session.message(handle, body)
    except JanusError as error:
        if error.code != ROOM_EXISTS:  # another leg made it first: that is fine
            raise


async def destroy_room(url: str, room: str, *, timeout: float = TIMEOUT) -> None:
    """Destroy a VideoRoom (everyone in it is dropped). A room that is not there is fine."""
    session = _Session(url, timeout)
    try:
        await session.create()
        handle = await session.attach()
        await session.message(handle, {"request": "destroy", "room": room})
    except JanusError as error:
        if error.code != NO_SUCH_ROOM:
            raise
    finally:
        await session.destroy()


def destroy_room_in_background(url: str, room: str) -> None:
    """Destroy the room of an ended call on the Janus at `url` without holding up the caller (a
    sync service); failures are logged: an empty room left behind costs Janus little."""

    def run() -> None:
        try:
            asyncio.run(destroy_room(url, room))
        except Exception as error:
            logger.warning("Could not destroy Janus room %s: %s", room, error)

    threading.Thread(target=run, name="janus-destroy-room", daemon=True).start()
