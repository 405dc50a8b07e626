"""Each resource's own origin (apps/accounts/origins.py): its ACS API at the root of its port or
host name, /r/<slug>/ on the console's origin still, and no combination of host, path and
credentials that reaches another resource."""

from __future__ import annotations

import itertools
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.test import Client

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity, Resource
from apps.chat.models import ChatThread
from spool.asgi import application
from tests.conftest import origin_host, sign_headers

pytestmark = pytest.mark.django_db

IDENTITY_API = "api-version=2023-10-01"
CHAT_API = "api-version=2024-03-07"


def _signed_post(client: Client, host: str, target: str, key: str, signed_host: str) -> object:
    body = b"{}"
    headers = sign_headers("POST", target, body, key, signed_host)
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    return client.generic(
        "POST",
        target,
        body,
        content_type="application/json",
        HTTP_HOST=host,
        REQUEST_URI=target,
        **meta,
    )


def test_the_api_answers_at_the_root_of_the_resources_port(resource) -> None:
    # when: signed as an SDK signs an endpoint without a path (host = "127.0.0.1:<port>")
    host = origin_host(resource)
    response = _signed_post(
        Client(), host, f"/identities?{IDENTITY_API}", resource.primary_key, host
    )

    # then
    assert response.status_code == 201, response.content
    assert CommunicationIdentity.objects.filter(resource=resource).count() == 1


def test_the_path_endpoint_keeps_working(resource) -> None:
    target = f"/r/{resource.slug}/identities?{IDENTITY_API}"
    response = _signed_post(
        Client(),
        "127.0.0.1:8443",
        target,
        resource.primary_key,
        f"127.0.0.1:8443/r/{resource.slug}",
    )
    assert response.status_code == 201, response.content


def test_the_api_answers_at_the_root_of_the_resources_host_name(settings, resource) -> None:
    # given a wildcard name for resources
    settings.RESOURCE_DOMAIN = "acs.example.org"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".acs.example.org"]
    host = f"{resource.slug}.acs.example.org"

    # when
    response = _signed_post(
        Client(), host, f"/identities?{IDENTITY_API}", resource.primary_key, host
    )

    # then
    assert response.status_code == 201, response.content


def test_an_unknown_host_name_under_the_domain_is_refused_not_the_console(settings) -> None:
    settings.RESOURCE_DOMAIN = "acs.example.org"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, ".acs.example.org"]
    for path in ("/identities", "/", "/admin/", "/login/"):
        response = Client().get(path, HTTP_HOST="nobody.acs.example.org")
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "Unauthorized"


def test_a_deleted_resources_port_is_refused_not_the_console(resource) -> None:
    host = origin_host(resource)
    services.delete_resource(resource)
    response = _signed_post(Client(), host, f"/identities?{IDENTITY_API}", "a2V5", host)
    assert response.status_code == 401
    assert Client().get("/", HTTP_HOST=host).status_code == 401


def test_only_the_api_is_served_on_a_resources_origin(resource, owner) -> None:
    # given a signed-in console user
    client = Client()
    client.force_login(owner)
    host = origin_host(resource)

    # then the console, admin and management API are not there; shared paths are
    for path in ("/", "/admin/", "/api/v1/resources/", f"/r/{resource.slug}/identities"):
        response = client.get(path, HTTP_HOST=host)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "NotFound"
    assert client.get("/.well-known/jwks.json", HTTP_HOST=host).status_code == 200
    # and the console's own origin still serves the console
    assert client.get("/", HTTP_HOST="127.0.0.1:8443").status_code in (200, 302)


def test_browsers_on_any_origin_may_call_a_resources_origin(resource) -> None:
    response = Client().options(
        f"/identities?{IDENTITY_API}",
        HTTP_HOST=origin_host(resource),
        HTTP_ORIGIN="https://app.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,x-ms-date,x-ms-content-sha256",
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://app.example")


# --- Isolation: every host x path x credential combination ---------------------------------
def _places(resource: Resource, other: Resource) -> dict[str, tuple[str, str]]:
    """Where a request can be sent: (Host header, path prefix)."""
    return {
        "own origin": (origin_host(resource), ""),
        "other origin": (origin_host(other), ""),
        "own origin, own path": (origin_host(resource), f"/r/{resource.slug}"),
        "own origin, other path": (origin_host(resource), f"/r/{other.slug}"),
        "other origin, own path": (origin_host(other), f"/r/{resource.slug}"),
        "console, own path": ("127.0.0.1:8443", f"/r/{resource.slug}"),
        "console, other path": ("127.0.0.1:8443", f"/r/{other.slug}"),
    }


def _addressed(place: str) -> str | None:
    """Which resource a request at `place` acts on: 'own', 'other', or None (no API there)."""
    return {
        "own origin": "own",
        "other origin": "other",
        "own origin, own path": None,
        "own origin, other path": None,
        "other origin, own path": None,
        "console, own path": "own",
        "console, other path": "other",
    }[place]


def test_a_key_reaches_only_its_own_resource_through_any_host_and_path(
    resource, other_resource
) -> None:
    places = _places(resource, other_resource)
    for place, signed_host_kind in itertools.product(places, ("host", "host+path")):
        host, prefix = places[place]
        target = f"{prefix}/identities?{IDENTITY_API}"
        signed_host = host if signed_host_kind == "host" else f"{host}{prefix}"
        before = {
            r.slug: r.identities.count() for r in Resource.objects.all()
        }  # resource's key, every place, every signed host

        # when
        response = _signed_post(Client(), host, target, resource.primary_key, signed_host)

        # then: only where the request addresses the key's own resource
        after = {r.slug: r.identities.count() for r in Resource.objects.all()}
        if _addressed(place) == "own":
            assert response.status_code == 201, (place, signed_host_kind, response.content)
            assert after[resource.slug] == before[resource.slug] + 1
            created = response.json()["identity"]["id"]
            assert created.startswith(f"8:acs:{resource.id}_")
        else:
            assert response.status_code in (401, 404), (place, signed_host_kind)
            assert response.json()["error"]["code"] in ("Unauthorized", "NotFound")
            assert after == before, place


def test_a_token_reaches_only_its_own_resource_through_any_host_and_path(
    resource, other_resource
) -> None:
    # given a user of each resource with a chat thread
    mine, my_token = services.create_identity(resource, scopes=["chat"])
    theirs, their_token = services.create_identity(other_resource, scopes=["chat"])
    assert my_token and their_token
    places = _places(resource, other_resource)
    for place, (host, prefix) in places.items():
        threads_before = ChatThread.objects.count()

        # when my token creates a thread at every place
        client = Client()
        response = client.post(
            f"{prefix}/chat/threads?{CHAT_API}",
            json.dumps({"topic": "hello"}),
            content_type="application/json",
            HTTP_HOST=host,
            HTTP_AUTHORIZATION=f"Bearer {my_token.token}",
        )
        listed = client.get(
            f"{prefix}/chat/threads?{CHAT_API}",
            HTTP_HOST=host,
            HTTP_AUTHORIZATION=f"Bearer {my_token.token}",
        )

        # then it works only where my own resource is addressed
        if _addressed(place) == "own":
            assert response.status_code == 201, (place, response.content)
            assert listed.status_code == 200
        else:
            assert response.status_code in (401, 404), (place, response.status_code)
            assert listed.status_code in (401, 404), place
            assert ChatThread.objects.count() == threads_before, place


@pytest.mark.django_db(transaction=True)
async def test_a_socket_on_a_resources_origin_takes_only_that_resources_tokens(
    resource, other_resource
) -> None:
    # given a token of each resource
    create = database_sync_to_async(services.create_identity)
    _, mine = await create(resource, scopes=["chat"])
    _, theirs = await create(other_resource, scopes=["chat"])
    host = origin_host(resource).encode()

    async def first_frame(token: str) -> dict:
        communicator = WebsocketCommunicator(
            application, f"/ws/?access_token={token}", headers=[(b"host", host)]
        )
        connected, _ = await communicator.connect()
        assert connected
        frame = await communicator.receive_json_from(timeout=5)
        await communicator.disconnect()
        return frame

    try:
        # then: the resource's own token is welcome, another resource's is refused
        assert (await first_frame(mine.token))["type"] == "hello"
        refused = await first_frame(theirs.token)
        assert refused["type"] == "error" and "another resource" in refused["message"]
    finally:
        await database_sync_to_async(connections.close_all)()
