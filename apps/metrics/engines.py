"""The media engines' health, for the metrics: the media process asks Kamailio, rtpengine and
coturn whether they answer every SPOOL_JANUS_HEALTH_SECONDS and records what it found in the
cache, where every host's scrape reads it (spool_sip_edge_up, spool_rtpengine_up, spool_turn_up).

- Kamailio: a SIP OPTIONS over UDP to SPOOL_SIP_EDGE, answered 200 by docker/kamailio/.
- rtpengine: an ng `ping` to SPOOL_RTPENGINE_NG (host:port of its control socket; `serve` sets
  it for the rtpengine it starts).
- coturn: a STUN Binding request (RFC 5389, no credentials needed) over UDP to the first of
  SPOOL_TURN_URLS that takes UDP.

An engine not configured, or not checked lately (no media process), has no sample.
"""

from __future__ import annotations

import logging
import secrets
import socket
import struct
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache

from apps.core import rtpengine

logger = logging.getLogger(__name__)

SIP_EDGE, RTPENGINE, TURN = "sip_edge", "rtpengine", "turn"
STUN_COOKIE = 0x2112A442
KEY = "engine-health:{name}"
ANSWER_SECONDS = 2.0


def _address(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":") if ":" in value else (value, "", str(default_port))
    return host.strip("[]"), int(port)


def _ask_over_udp(
    host: str, port: int, request: Callable[[str, int], bytes], timeout: float
) -> bytes:
    """Send request(local host, local port) over UDP and return the first answer (b"" if none).

    Sent again after 0.5 s, 1 s, 2 s... as SIP and STUN clients do (RFC 3261 timer A, RFC 5389
    7.2.1): one lost datagram must not mark an engine down. ICMP's refusal ends it at once.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    wait = 0.5
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((host, port))
            datagram = request(*sock.getsockname()[:2])
            while (left := deadline - time.monotonic()) > 0:
                sock.send(datagram)
                sock.settimeout(min(wait, left))
                try:
                    return sock.recv(2048)
                except TimeoutError:
                    wait *= 2
        except OSError:  # ICMP's refusal, or no route
            pass
    return b""


def sip_edge_answers(edge: str, timeout: float = ANSWER_SECONDS) -> bool:
    """Whether the SIP edge (host:port) answers an OPTIONS with 200."""
    host, port = _address(edge, 5060)
    tag = secrets.token_hex(8)

    def options(local_host: str, local_port: int) -> bytes:
        return (
            f"OPTIONS sip:{edge} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {local_host}:{local_port};branch=z9hG4bK{tag};rport\r\n"
            "Max-Forwards: 5\r\n"
            f"From: <sip:health@{local_host}>;tag={tag}\r\n"
            f"To: <sip:{edge}>\r\n"
            f"Call-ID: {tag}@spool-health\r\n"
            "CSeq: 1 OPTIONS\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    return _ask_over_udp(host, port, options, timeout).startswith(b"SIP/2.0 200")


def rtpengine_answers(address: str, timeout: float = ANSWER_SECONDS) -> bool:
    host, port = _address(address, 2223)
    return rtpengine.wait_answering(port, timeout, host=host)


def turn_answers(address: str, timeout: float = ANSWER_SECONDS) -> bool:
    """Whether the TURN server (host:port) answers a STUN Binding request with a success."""
    host, port = _address(address, 3478)
    transaction = secrets.token_bytes(12)
    request = struct.pack("!HHI", 0x0001, 0, STUN_COOKIE) + transaction
    answer = _ask_over_udp(host, port, lambda *_: request, timeout)
    return answer[:2] == b"\x01\x01" and answer[8:20] == transaction


def turn_address() -> str:
    """host:port of the first SPOOL_TURN_URLS entry that takes UDP ("" if none)."""
    for url in settings.TURN_URLS:
        scheme, _, rest = url.partition(":")
        where, _, query = rest.partition("?")
        if scheme == "turn" and "transport=tcp" not in query:
            return where if ":" in where.lstrip("[").rpartition("]")[2] else f"{where}:3478"
    return ""


def configured() -> dict[str, str]:
    """The engines this deployment has, by name, with their addresses."""
    found = {SIP_EDGE: settings.SIP_EDGE, RTPENGINE: settings.RTPENGINE_NG, TURN: turn_address()}
    return {name: address for name, address in found.items() if address}


def check() -> dict[str, bool]:
    """Ask each configured engine and record the answers (the media process, each round)."""
    checks = {SIP_EDGE: sip_edge_answers, RTPENGINE: rtpengine_answers, TURN: turn_answers}
    found = {name: checks[name](address) for name, address in configured().items()}
    ttl = int(max(60.0, 6 * settings.JANUS_HEALTH_SECONDS))
    for name, up in found.items():
        before = cache.get(KEY.format(name=name))  # None: not checked lately
        if before is True and not up:
            logger.error("%s at %s stopped answering", name, configured()[name])
        elif before is False and up:
            logger.warning("%s at %s answers again", name, configured()[name])
        cache.set(KEY.format(name=name), up, ttl)
    return found


def health() -> dict[str, bool]:
    """The last recorded answers of the configured engines (those checked lately)."""
    keys = {name: KEY.format(name=name) for name in configured()}
    records = cache.get_many(list(keys.values()))
    return {name: bool(records[key]) for name, key in keys.items() if key in records}
