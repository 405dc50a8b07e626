"""Console calling Try pages through Django's test client: Try calling and Group call render
for members, and the endpoint that issues their `voip` tokens."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apps.accounts import services as accounts
from apps.accounts.models import CommunicationIdentity, Resource, Role
from apps.calls import rooms

pytestmark = pytest.mark.django_db

PAGES = ("try", "group")


def signed_in(user: Any, *, csrf: bool = False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def member(resource: Resource, make_user: Any, role: str) -> Client:
    user = make_user(f"{role}-member")
    accounts.add_member(resource, user.username, role)
    return signed_in(user)


def ask_token(client: Client, resource: Resource, body: Any, **extra: Any) -> Any:
    return client.post(
        f"/resources/{resource.slug}/calls/try/token/",
        json.dumps(body),
        content_type="application/json",
        **extra,
    )


# --- Pages -----------------------------------------------------------------------------------
@pytest.mark.parametrize("role", [Role.OWNER, Role.CONTRIBUTOR, Role.READER])
def test_every_role_sees_the_calling_try_pages(
    resource: Resource, make_user: Any, role: str
) -> None:
    # given
    client = member(resource, make_user, role)

    # when
    pages = {name: client.get(f"/resources/{resource.slug}/calls/{name}/") for name in PAGES}

    # then: both render with their tabs and the client; readers get no sign-in form
    can_call = role != Role.READER
    for name, page in pages.items():
        assert page.status_code == 200, name
        html = page.content.decode()
        assert 'class="active">Calls</a>' in html
        assert "calling/spool-calling.js" in html
        assert ('id="calls-not-allowed"' in html) is not can_call
    assert ('id="call-connect"' in pages["try"].content.decode()) is can_call
    assert ('id="join-form"' in pages["group"].content.decode()) is can_call
    assert b'class="active">Try calling</a>' in pages["try"].content
    assert b'class="active">Group call</a>' in pages["group"].content


def test_the_try_paths_are_not_taken_for_call_ids(owner: Any, resource: Resource) -> None:
    # the call detail path (calls/<id>/) comes after them
    client = signed_in(owner)
    for name in PAGES:
        page = client.get(f"/resources/{resource.slug}/calls/{name}/")
        assert page.status_code == 200 and page.templates[0].name == f"console/calls_{name}.html"


def test_strangers_do_not_find_the_calling_try_pages(resource: Resource, make_user: Any) -> None:
    client = signed_in(make_user("stranger"))
    for name in PAGES:
        assert client.get(f"/resources/{resource.slug}/calls/{name}/").status_code == 404


def test_the_pages_offer_the_resource_s_identities_and_open_rooms(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given an identity and a room of this resource, and an identity of another resource
    identity, _ = accounts.create_identity(resource)
    foreign, _ = accounts.create_identity(other_resource)
    room = rooms.create_room(resource, {"participants": {identity.raw_id: {"role": "Presenter"}}})

    # when
    client = signed_in(owner)
    try_page = client.get(f"/resources/{resource.slug}/calls/try/").content.decode()
    group_page = client.get(f"/resources/{resource.slug}/calls/group/").content.decode()

    # then
    for html in (try_page, group_page):  # identities are searched, not listed
        assert f'data-identity-picker="/resources/{resource.slug}/identities/search/"' in html
        assert foreign.raw_id not in html
    assert f'<option value="{room.id}">' in group_page


# --- Tokens ----------------------------------------------------------------------------------
def test_a_contributor_gets_a_voip_token_for_a_new_identity(
    resource: Resource, make_user: Any
) -> None:
    # given
    client = member(resource, make_user, Role.CONTRIBUTOR)

    # when
    response = ask_token(client, resource, {"create": True})

    # then a new identity of the resource, and a token for calls only
    assert response.status_code == 200
    body = response.json()
    principal = accounts.authenticate_token(body["token"])
    assert principal.raw_id == body["identity"] and principal.scopes == {"voip"}
    assert principal.identity.resource_id == resource.id
    assert body["expiresOn"].endswith("Z")


def test_the_owner_gets_a_voip_token_for_an_existing_identity(
    owner: Any, resource: Resource
) -> None:
    # given
    identity, _ = accounts.create_identity(resource)

    # when
    response = ask_token(signed_in(owner), resource, {"identity": identity.raw_id})

    # then
    assert response.status_code == 200
    principal = accounts.authenticate_token(response.json()["token"])
    assert principal.identity == identity and principal.scopes == {"voip"}
    assert CommunicationIdentity.objects.count() == 1


def test_readers_get_no_voip_token(resource: Resource, make_user: Any) -> None:
    # given a reader and an identity
    identity, _ = accounts.create_identity(resource)
    reader = member(resource, make_user, Role.READER)

    # when
    existing = ask_token(reader, resource, {"identity": identity.raw_id})
    new = ask_token(reader, resource, {"create": True})

    # then both are refused in the ACS error shape, and nothing was issued or created
    assert existing.status_code == new.status_code == 403
    error = existing.json()["error"]
    assert set(error) >= {"code", "message"} and "token" not in existing.json()
    assert CommunicationIdentity.objects.count() == 1
    identity.refresh_from_db()
    assert identity.last_token_issued_at is None


def test_other_resources_identities_and_strangers_are_not_found(
    owner: Any, resource: Resource, other_resource: Resource, make_user: Any
) -> None:
    # given an identity of another resource
    foreign, _ = accounts.create_identity(other_resource)

    # when the owner asks for it through this resource, and a stranger asks for a new identity
    cross = ask_token(signed_in(owner), resource, {"identity": foreign.raw_id})
    stranger = ask_token(signed_in(make_user("stranger")), resource, {"create": True})

    # then both are 404 in the ACS error shape, and nothing was issued or created
    assert cross.status_code == stranger.status_code == 404
    assert cross.json()["error"]["code"] == "IdentityNotFound"
    assert cross.json()["error"]["message"]
    foreign.refresh_from_db()
    assert foreign.last_token_issued_at is None
    assert not CommunicationIdentity.objects.filter(resource=resource).exists()


def test_the_voip_token_endpoint_refuses_bad_requests(owner: Any, resource: Resource) -> None:
    client = signed_in(owner)
    bad = ask_token(client, resource, ["create"])
    assert bad.status_code == 400 and bad.json()["error"]["code"]
    assert ask_token(client, resource, {"identity": 42}).status_code == 404
    assert client.get(f"/resources/{resource.slug}/calls/try/token/").status_code == 405
    signed_out = Client().post(f"/resources/{resource.slug}/calls/try/token/")
    assert signed_out.status_code == 401 and signed_out.json()["error"]["code"] == "Unauthorized"


def test_the_voip_token_endpoint_needs_the_csrf_token(owner: Any, resource: Resource) -> None:
    # given a browser that loaded Try calling (and so holds the CSRF cookie)
    client = signed_in(owner, csrf=True)
    page = client.get(f"/resources/{resource.slug}/calls/try/")
    csrf = page.context["csrf_token"]

    # when it posts without, then with, the token the page carries
    without = ask_token(client, resource, {"create": True})
    with_token = ask_token(client, resource, {"create": True}, HTTP_X_CSRFTOKEN=str(csrf))

    # then
    assert without.status_code == 403 and with_token.status_code == 200
    assert CommunicationIdentity.objects.count() == 1
