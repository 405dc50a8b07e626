"""Several Janus servers (apps/calls/janus_placement.py): the settings, the placement rule
(capacity, health, stickiness, the two planes), health checks, and what happens to the calls of
a Janus that dies: they end with 503 / 510503, for group calls through the SFU (the web
process's legs) and bridged calls (the media process), while new calls go to another server."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from apps.calls import consumers, janus_placement, signaling
from apps.calls.janus_placement import MEDIA, SFU, NoJanusServer
from apps.calls.models import Call, CallKind, CallLegState, CallParticipant, CallTopology
from apps.events.models import Event
from spool.settings import env_janus_servers
from tests.calls.conftest import Socket
from tests.janus import free_port, require_janus, run_janus

A, B, C = "ws://10.0.0.1:8188", "ws://10.0.0.2:8188", "ws://10.0.0.3:8188"


def make_call(
    resource: Any, *, server: str = "", topology: str = CallTopology.SFU, ended: bool = False
) -> Call:
    now = timezone.now()
    return Call.objects.create(
        resource=resource,
        kind=CallKind.GROUP,
        topology=topology,
        group_id=uuid.uuid4(),
        caller_raw_id="8:acs:caller",
        state="disconnected" if ended else "connected",
        created_at=now,
        connected_at=now,
        ended_at=now if ended else None,
        janus_server=server,
    )


def live_on(resource: Any, server: str, count: int) -> None:
    for _ in range(count):
        make_call(resource, server=server)


# --- Settings --------------------------------------------------------------------------------
def test_the_servers_setting_takes_urls_with_an_optional_capacity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a list with a capacity on one server
    monkeypatch.setenv("X", f" {A}#calls=200 , {B} ,wss://c.example:443/janus")

    # then each is (url, calls), 0 for no limit
    assert env_janus_servers("X") == [(A, 200), (B, 0), ("wss://c.example:443/janus", 0)]
    monkeypatch.setenv("X", "")
    assert env_janus_servers("X") == []


@pytest.mark.parametrize(
    "value",
    [
        "http://10.0.0.1:8188",  # not a WebSocket
        "10.0.0.1:8188",
        f"{A}#calls=0",
        f"{A}#calls=many",
        f"{A}#capacity=10",
        f"{A},{A}#calls=3",  # twice
    ],
)
def test_bad_servers_settings_are_refused_with_the_reason(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SPOOL_JANUS_URLS", value)
    with pytest.raises(ImproperlyConfigured, match="SPOOL_JANUS_URLS"):
        env_janus_servers("SPOOL_JANUS_URLS")


def test_the_single_url_settings_are_a_list_of_one_for_each_plane(settings: Any) -> None:
    # given the single-URL settings (no list)
    settings.JANUS_SERVERS = []
    settings.JANUS_URL, settings.MEDIA_JANUS_URL = A, ""

    # then both planes have that one server, with no limit
    assert (
        janus_placement.servers(SFU)
        == janus_placement.servers(MEDIA)
        == [janus_placement.JanusServer(A, 0)]
    )
    assert janus_placement.media_shares_sfu()

    # and a media process of its own gets its own list of one
    settings.MEDIA_JANUS_URL = B
    assert [s.url for s in janus_placement.servers(MEDIA)] == [B]
    assert [s.url for s in janus_placement.all_servers()] == [A, B]
    assert not janus_placement.media_shares_sfu()

    # and a list serves both planes
    settings.JANUS_SERVERS = [(A, 5), (C, 0)]
    assert janus_placement.servers(SFU) == janus_placement.servers(MEDIA)
    assert janus_placement.media_shares_sfu()

    # and with nothing set, group calls are a mesh
    settings.JANUS_SERVERS, settings.JANUS_URL, settings.MEDIA_JANUS_URL = [], "", ""
    assert janus_placement.servers(SFU) == [] and signaling.group_topology() == "mesh"


# --- The rule --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_new_call_goes_to_the_server_with_the_most_spare_capacity(
    settings: Any, resource: Any
) -> None:
    # given A takes 10 calls and has 7, B takes 5 and has 1, C takes 4 and has 1
    settings.JANUS_SERVERS = [(A, 10), (B, 5), (C, 4)]
    live_on(resource, A, 7)
    live_on(resource, B, 1)
    live_on(resource, C, 1)
    make_call(resource, server=B, ended=True)  # ended calls do not count

    # then B (4 spare) wins over A and C (3 spare each)
    assert janus_placement.live_calls() == {A: 7, B: 1, C: 1}
    assert janus_placement.choose(SFU) == B

    # when B gets one more call, all three have 3 spare: C, with the fewest calls, wins
    live_on(resource, B, 1)
    assert janus_placement.choose(SFU) == C


@pytest.mark.django_db
def test_a_full_server_takes_no_call_and_all_full_is_refused(settings: Any, resource: Any) -> None:
    # given A is full (2 of 2) and B has no limit but many calls
    settings.JANUS_SERVERS = [(A, 2), (B, 0)]
    live_on(resource, A, 2)
    live_on(resource, B, 5)

    # then B takes the call: a server without a capacity always has room
    assert janus_placement.choose(MEDIA) == B

    # when only full servers are left
    settings.JANUS_SERVERS = [(A, 2)]
    with pytest.raises(NoJanusServer) as refused:
        janus_placement.choose(MEDIA)
    assert "full" in refused.value.reason and refused.value.code == 0


@pytest.mark.django_db
def test_without_capacities_the_server_with_the_fewest_calls_wins_ties_in_list_order(
    settings: Any, resource: Any
) -> None:
    settings.JANUS_SERVERS = [(A, 0), (B, 0)]
    assert janus_placement.choose(SFU) == A  # a tie: the first listed
    live_on(resource, A, 1)
    assert janus_placement.choose(SFU) == B
    live_on(resource, B, 2)
    assert janus_placement.choose(SFU) == A


@pytest.mark.django_db
def test_a_server_found_down_gets_no_new_calls_until_it_answers_again(
    settings: Any, resource: Any
) -> None:
    # given A has more room than B, but was found down
    settings.JANUS_SERVERS = [(A, 10), (B, 10)]
    live_on(resource, B, 5)
    assert janus_placement.health([A, B]) == {A: None, B: None}  # never checked: counts as up
    janus_placement.record(A, False, "connection refused")

    # then new calls go to B
    assert janus_placement.choose(SFU) == B
    assert janus_placement.health([A, B]) == {A: False, B: None}
    assert janus_placement.up_server(MEDIA) == B

    # when every server is down, a call is refused
    janus_placement.record(B, False, "timed out")
    with pytest.raises(NoJanusServer, match="2 of 2 down"):
        janus_placement.choose(SFU)

    # when A answers again, it takes calls again
    janus_placement.record(A, True)
    assert janus_placement.choose(SFU) == A
    states = {state.url: state for state in janus_placement.states()}
    assert (states[A].up, states[A].live, states[A].calls) == (True, 0, 10)
    assert (states[B].up, states[B].live) == (False, 5)


@pytest.mark.django_db
def test_a_call_stays_on_its_server_for_its_whole_life(settings: Any, resource: Any) -> None:
    # given a group call not yet placed
    settings.JANUS_SERVERS = [(A, 10), (B, 10)]
    call = make_call(resource)

    # when it first needs Janus, it is placed and the choice stored on it
    assert janus_placement.place(call.pk) == A
    assert Call.objects.get(pk=call.pk).janus_server == A
    assert janus_placement.server_of(call.pk) == A

    # then every later look (another process, another host) gets the same server, even when
    # another would now have more room, or it is found down (its calls end then)
    live_on(resource, A, 5)
    assert janus_placement.place(str(call.pk)) == A
    janus_placement.record(A, False, "gone")
    assert janus_placement.place(call.pk) == A

    # and a server placed by another process meanwhile wins over this one's choice
    other = make_call(resource)
    Call.objects.filter(pk=other.pk).update(janus_server=C)
    assert janus_placement.place(other.pk) == C


@pytest.mark.django_db
def test_an_ended_or_unknown_call_is_never_placed(settings: Any, resource: Any) -> None:
    settings.JANUS_SERVERS = [(A, 0)]
    ended = make_call(resource, ended=True)
    with pytest.raises(NoJanusServer, match="ended"):
        janus_placement.place(ended.pk)
    with pytest.raises(NoJanusServer, match="not there"):
        janus_placement.place(uuid.uuid4())
    assert Call.objects.get(pk=ended.pk).janus_server == ""


@pytest.mark.django_db
def test_each_plane_places_its_calls_on_its_own_servers(settings: Any, resource: Any) -> None:
    # given group calls on A and the media process on B (the single-URL settings)
    settings.JANUS_SERVERS, settings.JANUS_URL, settings.MEDIA_JANUS_URL = [], A, B
    group = make_call(resource, topology=CallTopology.SFU)
    bridged = make_call(resource, topology=CallTopology.BRIDGE)

    assert janus_placement.place(group.pk) == A
    assert janus_placement.place(bridged.pk) == B


# --- Health checks ---------------------------------------------------------------------------
@pytest.mark.timeout(60)
async def test_a_check_records_a_janus_that_answers_and_one_that_died() -> None:
    # given a Janus that answers, and a port nothing listens on
    require_janus()
    nobody = f"ws://127.0.0.1:{free_port()}"
    with run_janus() as janus:
        # then the first is up, the other down, with the reason
        assert await janus_placement.probe(janus.url) == ""
        assert "cannot reach Janus" in await janus_placement.probe(nobody)
        assert await janus_placement.check(janus.url) is True
        assert await janus_placement.confirm_lost(nobody) is True
        health = await sync_to_async(janus_placement.health)([janus.url, nobody])
        assert health == {janus.url: True, nobody: False}

        # when the Janus dies, a lost connection to it is confirmed: it is down
        os.kill(janus.pid, signal.SIGKILL)
        assert await janus_placement.confirm_lost(janus.url) is True
        assert await sync_to_async(janus_placement.is_down)(janus.url)


# --- A Janus that dies -----------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
async def test_the_calls_of_a_janus_that_went_away_end_with_503_510503(
    settings: Any, resource: Any, connect: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a group call on A (with two participants) and one on B
    settings.JANUS_SERVERS = [(A, 0), (B, 0)]

    async def no_leg(consumer: Any, call_id: str) -> None:
        pass  # (no Janus is reached in this test: the calls are placed by hand below)

    monkeypatch.setattr(consumers, "_open_sfu_leg", no_leg)
    alice, bob, carol = await connect(), await connect(), await connect()
    calls = []
    for sockets in ((alice, bob), (carol,)):
        group = str(uuid.uuid4())
        for socket in sockets:
            await socket.send({"type": "call.join", "groupId": group})
            calls.append((await socket.until(type="call.joined"))["callId"])
    on_a, on_b = calls[0], calls[2]
    await database_sync_to_async(Call.objects.filter(pk=on_a).update)(janus_server=A)
    await database_sync_to_async(Call.objects.filter(pk=on_b).update)(janus_server=B)
    await alice.until(type="call", event="participantsUpdated")

    # when A is found gone
    ended = await database_sync_to_async(signaling.end_janus_calls)(A)

    # then its call ends for everyone in it, with the code and subCode of a lost media server
    assert ended == 1
    for socket in (alice, bob):
        frame = await socket.until(type="call", event="stateChanged", state="Disconnected")
        assert frame["callEndReason"] == {"code": 503, "subCode": 510503}
    call = await database_sync_to_async(Call.objects.get)(pk=on_a)
    assert (call.end_code, call.end_subcode) == (503, 510503)
    assert call.end_reason == "The media server went away."
    legs = await database_sync_to_async(
        lambda: set(CallParticipant.objects.filter(call_id=on_a).values_list("state", flat=True))
    )()
    assert legs == {CallLegState.LEFT}
    # and CallEnded carries the reason
    event = await database_sync_to_async(
        lambda: Event.objects.get(event_type__endswith="CallEnded", subject=f"call/{on_a}")
    )()
    assert event.data["reason"] == {
        "code": 503,
        "subCode": 510503,
        "message": "The media server went away.",
    }
    # and the call on B goes on; ending A's calls again does nothing
    await carol.nothing()
    assert (await database_sync_to_async(Call.objects.get)(pk=on_b)).ended_at is None
    assert await database_sync_to_async(signaling.end_janus_calls)(A) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
async def test_group_calls_spread_over_two_janus_and_one_dying_ends_only_its_calls(
    settings: Any, connect: Any
) -> None:
    # given two Janus servers and three group calls through the SFU, each first joiner's leg
    # opening the call's room (no media needed for that)
    require_janus()
    with run_janus() as first, run_janus() as second:
        settings.JANUS_SERVERS = [(first.url, 10), (second.url, 10)]
        sockets: list[Socket] = []
        call_ids: list[str] = []
        for _ in range(3):
            socket = await connect()
            sockets.append(socket)
            call_ids.append(await join_through_janus(socket))

        # then they spread over both: the first and third on the first server, the second on the
        # other, each participant's leg in its call's room there
        placed = [await until_placed(call_id) for call_id in call_ids]
        assert placed == [first.url, second.url, first.url]
        legs = [await until_leg_open(s, c) for s, c in zip(sockets, call_ids, strict=True)]
        assert [leg.url for leg in legs] == placed

        # when the first Janus dies
        os.kill(first.pid, signal.SIGKILL)

        # then its calls end with the documented reason, the other goes on
        for socket in (sockets[0], sockets[2]):
            frame = await socket.until(
                timeout=15, type="call", event="stateChanged", state="Disconnected"
            )
            assert frame["callEndReason"] == {"code": 503, "subCode": 510503}
        await sockets[1].nothing()
        assert await database_sync_to_async(janus_placement.is_down)(first.url)

        # and a new call goes to the server that is left, where its leg opens
        newcomer = await connect()
        new_call = await join_through_janus(newcomer)
        assert await until_placed(new_call) == second.url
        assert (await until_leg_open(newcomer, new_call)).url == second.url
        for socket, call_id in ((sockets[1], call_ids[1]), (newcomer, new_call)):
            await socket.send({"type": "call.hangup", "callId": call_id})
            await socket.until(type="call.hungUp")


async def join_through_janus(socket: Socket) -> str:
    await socket.send({"type": "call.join", "groupId": str(uuid.uuid4())})
    joined = await socket.until(type="call.joined")
    assert joined["topology"] == "sfu"
    return str(joined["callId"])


async def until_leg_open(socket: Socket, call_id: str, timeout: float = 10) -> Any:
    """The socket's Janus leg in the call (this process's: the communicator runs in it), once it
    joined the room."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        for (_, leg_call), leg in consumers._sfu_legs.items():
            if leg_call == call_id and leg.display == socket.raw_id and leg.id is not None:
                return leg
        await asyncio.sleep(0.05)
    raise AssertionError(f"no open leg of {socket.raw_id} in call {call_id}")


async def until_placed(call_id: str, timeout: float = 10) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        server = await database_sync_to_async(janus_placement.server_of)(call_id)
        if server:
            return server
        await asyncio.sleep(0.05)
    raise AssertionError(f"call {call_id} was not placed")


# --- The media process -----------------------------------------------------------------------
class FakeRoom:
    def __init__(self, url: str, room: str, on_event: Any, **options: Any) -> None:
        self.url, self.room, self.on_event = url, room, on_event
        self.participants: list[str] = []

    async def open(self, **options: Any) -> None:
        pass

    async def close(self) -> None:
        pass


@pytest.mark.django_db(transaction=True)
async def test_the_media_process_places_bridged_calls_and_ends_those_of_a_lost_janus(
    settings: Any, resource: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.automation import media

    # given two servers for the media process, and two bridged calls
    settings.JANUS_SERVERS = [(A, 0), (B, 0)]
    monkeypatch.setattr(media, "AudioBridgeRoom", FakeRoom)
    make = database_sync_to_async(make_call)
    first = await make(resource, topology=CallTopology.BRIDGE)
    second = await make(resource, topology=CallTopology.BRIDGE)
    process = media.MediaProcess()

    # when their rooms open, each is placed: one on each server, its room there
    one = await process._media(str(first.pk))
    two = await process._media(str(second.pk))
    assert (one.server, one.room.url, two.server) == (A, A, B)
    assert await database_sync_to_async(janus_placement.server_of)(first.pk) == A

    # when the first call's room loses its Janus, and Janus is gone
    async def gone(url: str) -> bool:
        return url == A

    monkeypatch.setattr(janus_placement, "confirm_lost", gone)
    await one.room.on_event({"kind": "connectionLost", "reason": "closed"})

    # then that call ends with 503 / 510503, and the other goes on
    call = await database_sync_to_async(Call.objects.get)(pk=first.pk)
    assert (call.end_code, call.end_subcode) == (503, 510503)
    assert (await database_sync_to_async(Call.objects.get)(pk=second.pk)).ended_at is None
