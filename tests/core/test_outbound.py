"""Requests on a tenant's behalf (apps/core/outbound.py), attacked: every way to point one at
an internal address is refused before anything is sent, redirects are not followed, a
dripping receiver cannot hold the request past its deadline, and what comes back is bounded."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.core import outbound
from tests.conftest import free_port


class Recorder:
    """An internal service on 127.0.0.1 that must never be reached (unless allowed), and
    answers in the way a test sets: `mode` is "ok", "redirect", "big", "drip" or "control"."""

    def __init__(self) -> None:
        self.port = free_port()
        self.hits: list[str] = []
        self.mode = "ok"
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                recorder.hits.append(self.path)
                if recorder.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{recorder.port}/secret")
                    self.end_headers()
                elif recorder.mode == "big":
                    self.send_response(200)
                    self.send_header("Content-Length", str(1024 * 1024))
                    self.end_headers()
                    self.wfile.write(b"x" * 1024 * 1024)
                elif recorder.mode == "drip":
                    self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                    for _ in range(100):  # a header line every 0.3 s, for 30 s
                        self.wfile.write(b"X-Drip: 1\r\n")
                        self.wfile.flush()
                        time.sleep(0.3)
                elif recorder.mode == "control":
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"internal\x1b[31m\x00secret" + b"!" * 1000)
                else:
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"internal data")

            do_POST = do_GET  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def internal() -> Iterator[Recorder]:
    recorder = Recorder()
    yield recorder
    recorder.server.shutdown()
    recorder.server.server_close()


@pytest.fixture
def no_allowances(settings) -> None:
    """As in production: no network is allowed beyond the public internet."""
    settings.OUTBOUND_ALLOWED_NETWORKS = []


def _forms_of_loopback(port: int) -> list[str]:
    return [
        f"http://127.0.0.1:{port}/",
        f"http://127.1:{port}/",
        f"http://2130706433:{port}/",  # decimal
        f"http://0x7f000001:{port}/",  # hexadecimal
        f"http://0177.0.0.1:{port}/",  # octal
        f"http://[::ffff:127.0.0.1]:{port}/",  # IPv4-mapped IPv6
        f"http://[::ffff:7f00:1]:{port}/",
        f"http://[64:ff9b::7f00:1]:{port}/",  # NAT64
        f"http://[2002:7f00:1::]:{port}/",  # 6to4
        f"http://localhost:{port}/",  # a name that resolves to loopback
        f"http://rebind.attacker.example:{port}/",  # likewise (see resolve_to_loopback)
        f"http://[::1]:{port}/",
        f"http://0.0.0.0:{port}/",
    ]


OTHER_INTERNAL = [
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    "http://[fe80::1]/",
    "http://[fd00::1]/",
    "http://224.0.0.1/",
    "http://240.0.0.1/",
]


@pytest.fixture
def resolve_to_loopback(monkeypatch) -> None:
    """A DNS name an attacker controls, answering with a loopback address."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        return real("127.0.0.1" if host == "rebind.attacker.example" else host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_every_form_of_an_internal_address_is_refused(
    internal: Recorder, no_allowances: None, resolve_to_loopback: None
) -> None:
    for url in [*_forms_of_loopback(internal.port), *OTHER_INTERNAL]:
        answer = outbound.request("GET", url, deadline=2)
        assert answer.status_code is None, url
        assert answer.error == outbound.NOT_ALLOWED, (url, answer.error)
    assert internal.hits == []


@pytest.mark.parametrize(
    "url",
    [
        "http://x@127.0.0.1/",
        "http://user:pass@example.com/",
        "http://example.com@127.0.0.1/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_INFO",
        "http:///nohost",
        "http://exa mple.com/",
        "http://example.com/\u00e9",
        "http://example.com:0/",
        "http://example.com:99999/",
        "http://127.0.0.1/",
        "http://[::1]/",
        "",
        None,
        "x" * 3000,
    ],
)
def test_urls_that_are_not_plain_public_http_are_refused_when_given(url, no_allowances) -> None:
    with pytest.raises(outbound.UnsafeUrl) as refused:
        outbound.check_url(url, target="endpoint_url")
    assert refused.value.target == "endpoint_url" and refused.value.status == 400


def test_redirects_are_not_followed(internal: Recorder) -> None:
    # given a receiver (loopback allowed, as in tests) that redirects inward
    internal.mode = "redirect"

    # when
    answer = outbound.request("GET", f"http://127.0.0.1:{internal.port}/hook", deadline=5)

    # then the 302 is the answer, and the redirect's target was never requested
    assert answer.status_code == 302
    assert internal.hits == ["/hook"]


def test_a_dripping_receiver_cannot_hold_a_request_past_its_deadline(internal: Recorder) -> None:
    internal.mode = "drip"
    started = time.monotonic()
    answer = outbound.request("GET", f"http://127.0.0.1:{internal.port}/", deadline=1.5)
    took = time.monotonic() - started
    assert took < 2.5, took
    assert answer.status_code is None and answer.error == outbound.NO_ANSWER


def test_what_is_read_and_shown_is_bounded(internal: Recorder) -> None:
    internal.mode = "big"
    answer = outbound.request(
        "GET", f"http://127.0.0.1:{internal.port}/", deadline=5, max_bytes=1000
    )
    assert answer.status_code == 200 and len(answer.body) == 1000

    internal.mode = "control"
    answer = outbound.request("GET", f"http://127.0.0.1:{internal.port}/", deadline=5)
    assert len(answer.excerpt) <= outbound.EXCERPT_CHARS
    assert answer.excerpt.startswith("internal [31m secret") and "\x00" not in answer.excerpt


def test_a_closed_port_and_a_port_that_is_not_http_look_the_same(settings) -> None:
    # given a closed port and one that answers something other than HTTP
    closed = free_port()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_ssh() -> None:
        connection, _ = listener.accept()
        connection.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        connection.close()

    threading.Thread(target=answer_ssh, daemon=True).start()
    not_http = listener.getsockname()[1]

    # when / then
    first = outbound.request("GET", f"http://127.0.0.1:{closed}/", deadline=2)
    second = outbound.request("GET", f"http://127.0.0.1:{not_http}/", deadline=2)
    listener.close()
    assert first.error == second.error == outbound.NO_ANSWER
    assert first.status_code is second.status_code is None


def test_an_unknown_host_name_is_said_plainly(no_allowances) -> None:
    answer = outbound.request("GET", "http://no-such-host.invalid/", deadline=5)
    assert answer.error == outbound.NOT_FOUND


def test_an_allowed_receiver_gets_the_request_with_its_host_header(internal: Recorder) -> None:
    answer = outbound.request(
        "POST", f"http://127.0.0.1:{internal.port}/hook?x=1", body=b"{}", deadline=5
    )
    assert answer.ok and answer.body == b"internal data"
    assert internal.hits == ["/hook?x=1"]
