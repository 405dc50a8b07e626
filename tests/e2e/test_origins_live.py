"""Resources' own origins on a live `manage.py serve`: a port per resource (the default), host
names under SPOOL_RESOURCE_DOMAIN, and /r/<slug>/ still, through the official Python SDK."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import websockets
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.core.exceptions import ClientAuthenticationError

from tests.conftest import LiveSpool, endpoint_of, start_spool, stop_spool

pytestmark = pytest.mark.e2e


def _identity_client(connection: str, live: LiveSpool) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(
        connection, connection_verify=live.cert
    )


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_new_resource_answers_at_its_own_port_and_a_deleted_one_stops(
    live_spool: LiveSpool,
) -> None:
    # given a resource created while serve runs (the connection string as printed)
    connection = live_spool.create_resource()
    endpoint = endpoint_of(connection)
    port = urlsplit(endpoint).port
    assert urlsplit(endpoint).path == "/" and port != live_spool.https_port

    # then the SDK works there, unchanged
    user = _identity_client(connection, live_spool).create_user()
    assert user.properties["id"].startswith("8:acs:")

    # when the resource is deleted
    slug = live_spool.slug_of(connection)
    live_spool.manage(
        "shell",
        "-c",
        "from apps.accounts import services; from apps.accounts.models import Resource; "
        f"services.delete_resource(Resource.objects.get(slug='{slug}'))",
    )

    # then its port closes within a few seconds
    deadline = time.monotonic() + 10
    while _listening(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _listening(port)


def test_the_path_endpoint_keeps_working_with_the_sdk(live_spool: LiveSpool) -> None:
    # given the endpoint clients were configured with before resources had origins
    connection = live_spool.create_resource()
    slug = live_spool.slug_of(connection)
    key = connection.split(";accesskey=")[1]
    old_style = f"endpoint={live_spool.https_url}/r/{slug}/;accesskey={key}"

    # when / then
    client = _identity_client(old_style, live_spool)
    user, token = client.create_user_and_token([CommunicationTokenScope.CHAT])
    assert token.token
    # and an identity made there is the same resource's as on the origin
    _identity_client(connection, live_spool).delete_user(user)


def test_a_key_of_one_resource_is_refused_at_anothers_origin(live_spool: LiveSpool) -> None:
    mine, theirs = live_spool.create_resource(), live_spool.create_resource()
    crossed = f"endpoint={endpoint_of(theirs)};accesskey={mine.split(';accesskey=')[1]}"
    with pytest.raises(ClientAuthenticationError):
        _identity_client(crossed, live_spool).create_user()


def test_the_socket_answers_on_the_resources_origin(live_spool: LiveSpool) -> None:
    # given a token of the resource, and one of another
    connection, other = live_spool.create_resource(), live_spool.create_resource()
    _, token = _identity_client(connection, live_spool).create_user_and_token(
        [CommunicationTokenScope.CHAT]
    )
    _, foreign = _identity_client(other, live_spool).create_user_and_token(
        [CommunicationTokenScope.CHAT]
    )
    url = endpoint_of(connection).replace("https://", "wss://") + "ws/?access_token="

    async def first_frame(access_token: str) -> dict:
        async with websockets.connect(url + access_token, ssl=live_spool.ssl_context()) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    # then the resource's own token gets a hello there, the other resource's is refused
    assert asyncio.run(first_frame(token.token))["type"] == "hello"
    assert asyncio.run(first_frame(foreign.token))["type"] == "error"


# --- Host names under SPOOL_RESOURCE_DOMAIN --------------------------------------------------
DOMAIN = "spool.test"


@pytest.fixture(scope="module")
def domain_spool() -> Iterator[LiveSpool]:
    live, cleanups = start_spool({"SPOOL_RESOURCE_DOMAIN": DOMAIN})
    try:
        yield live
    finally:
        stop_spool(live, cleanups)


@pytest.fixture
def resolve_domain_to_loopback(monkeypatch) -> None:
    """What a wildcard DNS record does in production, for this process only."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(host, str) and host.endswith(f".{DOMAIN}"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_resources_answer_at_their_own_host_names(
    domain_spool: LiveSpool, resolve_domain_to_loopback: None
) -> None:
    # given a resource on a deployment with a resource domain
    connection = domain_spool.create_resource()
    endpoint = endpoint_of(connection)
    slug = domain_spool.slug_of(connection)
    assert endpoint == f"https://{slug}.{DOMAIN}:{domain_spool.https_port}/"

    # then the SDK works with the connection string as printed, verifying the wildcard
    # certificate serve made for the domain
    client = _identity_client(connection, domain_spool)
    user, token = client.create_user_and_token([CommunicationTokenScope.VOIP])
    assert token.token

    # and another resource's host name refuses this resource's key
    other = domain_spool.create_resource()
    crossed = f"endpoint={endpoint_of(other)};accesskey={connection.split(';accesskey=')[1]}"
    with pytest.raises(ClientAuthenticationError):
        _identity_client(crossed, domain_spool).create_user()

    # and a name no resource has is refused, not answered by the console
    context = ssl.create_default_context(cafile=domain_spool.cert)
    with socket.create_connection(("127.0.0.1", domain_spool.https_port)) as raw:
        with context.wrap_socket(raw, server_hostname=f"nobody.{DOMAIN}") as tls:
            tls.sendall(f"GET / HTTP/1.1\r\nHost: nobody.{DOMAIN}\r\n\r\n".encode())
            assert tls.recv(4096).startswith(b"HTTP/1.1 401")
