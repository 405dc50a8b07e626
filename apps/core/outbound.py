"""Requests Spool makes on a tenant's behalf (webhooks and their validation, callback URIs,
media file URLs): the only way any code reaches a URL a tenant gave.

Every such URL is hostile, so:
- only http(s), no credentials in the URL, nothing but printable ASCII;
- the host is resolved once, and every address it resolves to must be public: not loopback,
  private, shared, link-local, multicast, reserved or unspecified, IPv4 hidden in IPv6 forms
  included, unless SPOOL_OUTBOUND_ALLOWED_NETWORKS lists it (tests; an operator's own
  receivers). The connection goes to that address, not to a second lookup a rebinding DNS
  server could answer differently; TLS is checked against the host name;
- redirects are not followed (a 3xx is the answer);
- one deadline covers the whole exchange, from the DNS lookup to the last byte, so a receiver
  that drips bytes cannot hold a worker past it; at most `max_bytes` of the body are read;
- tenants see the status, a short printable excerpt, and errors that do not tell an open port
  from a closed one or a filtered one (the cause goes to the log for operators).

It runs in workers (never inside a web request), through `request()`, or `request_async()`
from asyncio code. WebSockets to a tenant's ws(s) URL (media streaming) open through
`connect_websocket()`, under the same rules: the address checked after DNS and pinned (TLS and
the Host header keep the name), no proxy, no redirects, a deadline on the opening handshake, a
cap on each message.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11
from django.conf import settings
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import InvalidStatus, WebSocketException

from apps.core.errors import ApiError

logger = logging.getLogger(__name__)

USER_AGENT = "Spool/1.0"
MAX_BODY_BYTES = 64 * 1024
EXCERPT_CHARS = 200
MAX_URL_LENGTH = 2048
HTTP_SCHEMES = ("http", "https")
WEBSOCKET_SCHEMES = ("ws", "wss")
MAX_WEBSOCKET_MESSAGE = 1024 * 1024

# What a tenant is told; the precise cause is logged.
NOT_ALLOWED = "the endpoint's address is not allowed (loopback, private or reserved)"
NOT_FOUND = "the endpoint's host name was not found"
# One message for a refused connection, a silent port, a reset or a non-HTTP answer alike.
NO_ANSWER = "the endpoint gave no HTTP answer within the deadline"
NO_WEBSOCKET = "the endpoint accepted no WebSocket within the deadline"

# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeUrl(ApiError):
    code = "InvalidUrl"


class _Refused(Exception):
    """Stops a request before it is sent; `str()` is what the tenant is told."""


@dataclass
class Answer:
    status_code: int | None = None  # None: no HTTP answer at all
    error: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case
    duration_ms: int = 0

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code <= 299

    @property
    def excerpt(self) -> str:
        """The start of the body, printable characters only: what a tenant may be shown."""
        text = self.body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")
        return "".join(c if c.isprintable() else " " for c in text)[:EXCERPT_CHARS]


def check_url(url: object, *, target: str = "url", schemes: tuple[str, ...] = HTTP_SCHEMES) -> str:
    """A URL that may be requested later (its address is checked when it is). Raises UnsafeUrl
    (400) naming `target` for anything but a plain http(s) URL with a host (ws(s) with
    `schemes=WEBSOCKET_SCHEMES`)."""
    kind = "an http(s)" if schemes == HTTP_SCHEMES else f"a {schemes[0]}(s)"
    if not isinstance(url, str) or not url.strip() or len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(
            f"{target} must be {kind} URL of at most {MAX_URL_LENGTH} characters.",
            target=target,
        )
    url = url.strip()
    if not url.isascii() or not url.isprintable() or " " in url:
        raise UnsafeUrl(
            f"{target} must be printable ASCII (percent-encode anything else).", target=target
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UnsafeUrl(f"{target} is not a valid URL.", target=target) from None
    if parts.scheme not in schemes or not parts.hostname:
        names = " or ".join(schemes)
        article = "an" if schemes[0][0] in "aeiouh" else "a"
        raise UnsafeUrl(f"{target} must be {article} {names} URL with a host.", target=target)
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl(f"{target} must not carry credentials (user@host).", target=target)
    if port == 0:
        raise UnsafeUrl(f"{target} has no valid port.", target=target)
    literal = _ip_literal(parts.hostname)
    if literal is not None and not address_allowed(literal):
        raise UnsafeUrl(f"{target}: {NOT_ALLOWED}.", target=target)
    return url


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def address_allowed(address: str) -> bool:
    """Whether Spool may connect to `address` on a tenant's behalf."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        ip = embedded
    if any(ip in network for network in settings.OUTBOUND_ALLOWED_NETWORKS):
        return True
    return ip.is_global and not ip.is_multicast


def _embedded_ipv4(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def request(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    deadline: float,
    max_bytes: int = MAX_BODY_BYTES,
) -> Answer:
    """One request, finished (or given up) within `deadline` seconds. Never raises: what
    happened is in the Answer."""
    return asyncio.run(
        request_async(
            method, url, body=body, headers=headers, deadline=deadline, max_bytes=max_bytes
        )
    )


async def request_async(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    deadline: float,
    max_bytes: int = MAX_BODY_BYTES,
) -> Answer:
    started = time.monotonic()
    answer = Answer()
    try:
        check_url(url)
        await asyncio.wait_for(
            _exchange(answer, method, url, body, headers or {}, max_bytes), timeout=deadline
        )
    except UnsafeUrl:
        answer.error = NOT_ALLOWED
    except _Refused as refusal:
        answer.error = str(refusal)
    except TimeoutError:
        # A status already read is the answer; a body that never ends is not waited for.
        if answer.status_code is None:
            answer.error = NO_ANSWER
        logger.info("outbound %s %s: deadline of %ss reached", method, url, deadline)
    except (OSError, ssl.SSLError, h11.ProtocolError, UnicodeError, ValueError) as error:
        logger.info("outbound %s %s failed: %r", method, url, error)
        if answer.status_code is None:
            answer.error = NO_ANSWER
    answer.duration_ms = int((time.monotonic() - started) * 1000)
    return answer


async def _exchange(
    answer: Answer,
    method: str,
    url: str,
    body: bytes,
    headers: dict[str, str],
    max_bytes: int,
) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "https"
    port = parts.port or (443 if secure else 80)
    address = await _public_address(host, port)
    context = ssl.create_default_context() if secure else None
    reader, writer = await asyncio.open_connection(
        address, port, ssl=context, server_hostname=host if secure else None
    )
    try:
        connection = h11.Connection(h11.CLIENT)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        sent = {
            "Host": parts.netloc,
            "User-Agent": USER_AGENT,
            "Connection": "close",
            "Content-Length": str(len(body)),
            **headers,
        }
        writer.write(
            connection.send(h11.Request(method=method, target=target, headers=list(sent.items())))
        )
        if body:
            writer.write(connection.send(h11.Data(data=body)))
        writer.write(connection.send(h11.EndOfMessage()))
        await writer.drain()
        await _read_answer(answer, connection, reader, max_bytes)
    finally:
        writer.close()


async def _public_address(host: str, port: int) -> str:
    """The address to connect to: every address of the name must be allowed."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise _Refused(NOT_FOUND) from None
    addresses = [str(info[4][0]) for info in infos]
    refused = [a for a in addresses if not address_allowed(a)]
    if refused or not addresses:
        logger.info("outbound to %s refused: it resolves to %s", host, ", ".join(refused))
        raise _Refused(NOT_ALLOWED)
    return addresses[0]


async def _read_answer(
    answer: Answer, connection: h11.Connection, reader: asyncio.StreamReader, max_bytes: int
) -> None:
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await reader.read(16384))
        elif isinstance(event, h11.Response):
            answer.status_code = event.status_code
            answer.headers = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in event.headers
            }
        elif isinstance(event, h11.Data):
            body += event.data[: max_bytes - len(body)]
            if len(body) >= max_bytes:
                break
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            break
    answer.body = bytes(body)


class WebSocketRefused(Exception):
    """A WebSocket that was not opened; `str()` is what the tenant may be told."""


async def connect_websocket(
    url: str,
    *,
    deadline: float,
    max_size: int = MAX_WEBSOCKET_MESSAGE,
    headers: dict[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    send_buffer: int | None = None,
) -> ClientConnection:
    """Open a WebSocket to a tenant's ws(s) URL within `deadline` seconds (DNS, TCP, TLS and
    the upgrade): its address must be allowed (as for request()), the TCP connection goes to
    that checked address while TLS and the Host header keep the name, no proxy is used, a
    redirect is an error, and a message over `max_size` bytes closes the connection (1009).
    `send_buffer` caps the kernel's send buffer, so a receiver that stops reading makes
    send() wait soon rather than after megabytes. Raises WebSocketRefused."""
    try:
        check_url(url, schemes=WEBSOCKET_SCHEMES)
    except UnsafeUrl:
        raise WebSocketRefused(NOT_ALLOWED) from None
    parts = urlsplit(url)
    host = parts.hostname or ""
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    sock: socket.socket | None = None
    try:
        async with asyncio.timeout(deadline):
            address = await _public_address(host, port)
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setblocking(False)
            if send_buffer is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
            await asyncio.get_running_loop().sock_connect(sock, (address, port))
            # A connected socket: websockets neither resolves the name again nor follows a
            # redirect with it (it raises instead), and uses no proxy.
            return await websocket_connect(
                url,
                sock=sock,
                ssl=(ssl_context or ssl.create_default_context()) if secure else None,
                server_hostname=host if secure else None,
                open_timeout=None,  # the deadline above covers the handshake
                close_timeout=2,
                max_size=max_size,
                compression=None,
                additional_headers=headers,
                user_agent_header=USER_AGENT,
            )
    except _Refused as refusal:
        _close_quietly(sock)
        raise WebSocketRefused(str(refusal)) from None
    except (TimeoutError, OSError, ssl.SSLError, WebSocketException, ValueError) as error:
        _close_quietly(sock)
        logger.info("websocket %s failed: %r", url, error)
        # A redirect is refused as websockets' ValueError, caused by the 3xx.
        answered = error if isinstance(error, InvalidStatus) else error.__cause__
        if isinstance(answered, InvalidStatus):
            status = answered.response.status_code
            raise WebSocketRefused(
                f"the endpoint answered HTTP {status}, not a WebSocket"
            ) from None
        raise WebSocketRefused(NO_WEBSOCKET) from None


def _close_quietly(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass
