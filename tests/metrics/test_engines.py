"""The SIP engines' health (apps/metrics/engines.py): Kamailio asked with a SIP OPTIONS,
rtpengine with an ng ping, each answer recorded for the scrape; an engine that is silent, refuses
or answers something else is down, and one not configured or not checked has no sample."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import cache
from django.test import override_settings

from apps.metrics import engines


class UdpPeer:
    """A UDP socket on 127.0.0.1 answering each datagram with `answer(request)` (None: silence)."""

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.answer = answer
        self.received: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, source = self.sock.recvfrom(4096)
            except OSError:
                continue
            self.received.append(data)
            reply = self.answer(data)
            if reply is not None:
                self.sock.sendto(reply, source)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def peers() -> Iterator[list[UdpPeer]]:
    made: list[UdpPeer] = []
    yield made
    for peer in made:
        peer.close()


def peer(peers: list[UdpPeer], answer: Callable[[bytes], bytes | None]) -> UdpPeer:
    made = UdpPeer(answer)
    peers.append(made)
    return made


def closed_port() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def sip_reply(status: str) -> Callable[[bytes], bytes]:
    return lambda request: f"SIP/2.0 {status}\r\nContent-Length: 0\r\n\r\n".encode()


def test_the_sip_edge_is_up_when_it_answers_options_with_200(peers: list[UdpPeer]) -> None:
    edge = peer(peers, sip_reply("200 OK"))
    assert engines.sip_edge_answers(edge.address, timeout=1)
    [request] = edge.received
    assert request.startswith(f"OPTIONS sip:{edge.address} SIP/2.0\r\n".encode())
    assert b"\r\nCSeq: 1 OPTIONS\r\n" in request and b"\r\nVia: SIP/2.0/UDP 127.0.0.1:" in request


@pytest.mark.parametrize("answer", [sip_reply("403 Forbidden"), lambda request: None])
def test_the_sip_edge_is_down_when_it_refuses_or_stays_silent(
    peers: list[UdpPeer], answer: Callable[[bytes], bytes | None]
) -> None:
    assert not engines.sip_edge_answers(peer(peers, answer).address, timeout=0.5)


def test_the_sip_edge_is_down_when_nothing_listens() -> None:
    assert not engines.sip_edge_answers(closed_port(), timeout=0.5)


def test_rtpengine_is_up_when_it_answers_the_ng_ping(peers: list[UdpPeer]) -> None:
    def pong(request: bytes) -> bytes:
        cookie = request.split(b" ", 1)[0]
        return cookie + b" d6:result4:ponge"

    relay = peer(peers, pong)
    assert engines.rtpengine_answers(relay.address, timeout=1)
    assert b"d7:command4:pinge" in relay.received[0]
    assert not engines.rtpengine_answers(peer(peers, lambda request: None).address, timeout=0.3)


def test_answers_are_recorded_for_the_scrape_and_only_configured_engines_have_one(
    peers: list[UdpPeer],
) -> None:
    cache.delete_many([engines.KEY.format(name=name) for name in ("sip_edge", "rtpengine")])
    edge = peer(peers, sip_reply("200 OK"))
    # given a deployment with a SIP edge that answers and an rtpengine that does not
    with override_settings(SIP_EDGE=edge.address, RTPENGINE_NG=closed_port()):
        # nothing checked yet: no sample
        assert engines.health() == {}
        # when the media process checks them
        assert engines.check() == {"sip_edge": True, "rtpengine": False}
        # then the scrape reads what it found
        assert engines.health() == {"sip_edge": True, "rtpengine": False}
    # and a deployment without them has none
    with override_settings(SIP_EDGE="", RTPENGINE_NG=""):
        assert engines.check() == {} and engines.health() == {}


def stun_success(request: bytes) -> bytes:
    return b"\x01\x01\x00\x00" + request[4:20]


def test_the_turn_server_is_up_when_it_answers_a_stun_binding_request(
    peers: list[UdpPeer],
) -> None:
    turn = peer(peers, stun_success)
    assert engines.turn_answers(turn.address, timeout=1)
    [request] = turn.received
    assert request[:4] == b"\x00\x01\x00\x00" and request[4:8] == b"\x21\x12\xa4\x42"
    # an answer to another transaction, or an error answer, is not one
    other = peer(peers, lambda request: b"\x01\x01\x00\x00" + request[4:8] + bytes(12))
    refusal = peer(peers, lambda request: b"\x01\x11\x00\x00" + request[4:20])
    assert not engines.turn_answers(other.address, timeout=0.3)
    assert not engines.turn_answers(refusal.address, timeout=0.3)


@pytest.mark.parametrize(
    ("urls", "address"),
    [
        (["turn:turn.example.org:3478?transport=udp"], "turn.example.org:3478"),
        (["turn:turn.example.org"], "turn.example.org:3478"),
        (["turn:10.0.0.5:3478?transport=tcp", "turn:10.0.0.5:3479"], "10.0.0.5:3479"),
        (["turn:[2001:db8::5]:3478"], "[2001:db8::5]:3478"),
        (["turns:turn.example.org:5349?transport=tcp"], ""),
        ([], ""),
    ],
)
def test_the_turn_server_checked_is_the_first_that_takes_udp(urls: list[str], address: str) -> None:
    with override_settings(TURN_URLS=urls):
        assert engines.turn_address() == address


def dropping_the_first(answer: Callable[[bytes], bytes]) -> Callable[[bytes], bytes | None]:
    """A peer whose first datagram is lost on the way, as UDP allows."""
    seen: list[bytes] = []

    def maybe(request: bytes) -> bytes | None:
        seen.append(request)
        return answer(request) if len(seen) > 1 else None

    return maybe


def test_a_lost_datagram_is_sent_again_and_the_engine_is_still_up(
    peers: list[UdpPeer],
) -> None:
    edge = peer(peers, dropping_the_first(sip_reply("200 OK")))
    turn = peer(peers, dropping_the_first(stun_success))
    assert engines.sip_edge_answers(edge.address, timeout=2)
    assert engines.turn_answers(turn.address, timeout=2)
    # the same request both times (one transaction), sent again after half a second
    assert len(edge.received) == 2 and edge.received[0] == edge.received[1]
    assert len(turn.received) == 2 and turn.received[0] == turn.received[1]
