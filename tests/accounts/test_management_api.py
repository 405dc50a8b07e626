"""The management API (/api/v1/): roles enforced, ACS error shape, nothing half-written."""

from __future__ import annotations

import base64

import pytest
from rest_framework.test import APIClient

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity, Membership, Resource, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user():
    def client_for(user) -> APIClient:
        client = APIClient()
        client.force_authenticate(user)
        return client

    return client_for


@pytest.fixture
def members(resource, make_user):
    users = {}
    for role in (Role.CONTRIBUTOR, Role.READER):
        user = make_user(role.value)
        services.add_member(resource, user.username, role)
        users[role.value] = user
    return users


def test_create_resource_makes_the_caller_owner(as_user, owner) -> None:
    # when
    response = as_user(owner).post("/api/v1/resources/", {"name": "My App"}, format="json")

    # then
    assert response.status_code == 201
    assert response.json()["slug"] == "my-app"
    assert response.json()["path_endpoint"].endswith("/r/my-app/")
    port = Resource.objects.get(slug="my-app").port
    assert response.json()["endpoint"] == f"https://127.0.0.1:{port}/"
    assert response.json()["role"] == "owner"


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": 5}, {"name": "x" * 101}, {"name": "!!!"}]
)
def test_bad_resource_names_are_refused(as_user, owner, body) -> None:
    response = as_user(owner).post("/api/v1/resources/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"code", "message"}
    assert not Resource.objects.exists()


def test_duplicate_resource_name_is_409(as_user, owner, resource) -> None:
    response = as_user(owner).post("/api/v1/resources/", {"name": "contoso"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "ResourceNameTaken"


def test_anonymous_callers_and_wrong_passwords_get_401_in_acs_shape(owner) -> None:
    anonymous = APIClient().get("/api/v1/resources/")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"owner:wrong").decode())
    wrong = client.get("/api/v1/resources/")
    client.credentials(
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(b"owner:correct horse battery").decode()
    )
    right = client.get("/api/v1/resources/")
    for response in (anonymous, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "Unauthorized"
        assert response["WWW-Authenticate"].startswith("Basic")
    assert right.status_code == 200


@pytest.mark.parametrize(
    "role, method, path, body, allowed",
    [
        ("reader", "get", "", None, True),
        ("reader", "get", "keys/", None, False),
        ("reader", "get", "identities/", None, True),
        ("reader", "post", "identities/", {}, False),
        ("reader", "patch", "", {"name": "Renamed"}, False),
        ("reader", "post", "members/", {"user": "owner", "role": "reader"}, False),
        ("contributor", "get", "keys/", None, True),
        ("contributor", "post", "identities/", {"scopes": ["chat"]}, True),
        ("contributor", "post", "keys/regenerate/", {"key": "primary"}, False),
        ("contributor", "delete", "", None, False),
        ("contributor", "post", "members/", {"user": "owner", "role": "reader"}, False),
    ],
)
def test_roles_are_enforced(as_user, resource, members, role, method, path, body, allowed) -> None:
    # given
    keys_before = (resource.primary_key, resource.secondary_key)

    # when
    response = getattr(as_user(members[role]), method)(
        f"/api/v1/resources/{resource.slug}/{path}", body, format="json"
    )

    # then
    if allowed:
        assert response.status_code < 300, response.content
    else:
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "Forbidden"
        resource.refresh_from_db()
        assert (resource.primary_key, resource.secondary_key) == keys_before
        assert resource.name == "Contoso"


def test_strangers_do_not_learn_a_resource_exists(as_user, resource, make_user) -> None:
    stranger = as_user(make_user("stranger"))
    for path in ("", "keys/", "identities/", "members/"):
        response = stranger.get(f"/api/v1/resources/{resource.slug}/{path}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "ResourceNotFound"
    assert stranger.get("/api/v1/resources/").json()["results"] == []


def test_owner_regenerates_keys_and_connection_strings_follow(as_user, owner, resource) -> None:
    # given
    before = as_user(owner).get(f"/api/v1/resources/{resource.slug}/keys/").json()

    # when
    after = (
        as_user(owner)
        .post(
            f"/api/v1/resources/{resource.slug}/keys/regenerate/",
            {"key": "secondary"},
            format="json",
        )
        .json()
    )

    # then
    assert after["primaryKey"] == before["primaryKey"]
    assert after["secondaryKey"] != before["secondaryKey"]
    assert after["secondaryConnectionString"].endswith(f"accesskey={after['secondaryKey']}")
    assert after["secondaryConnectionString"].startswith(f"endpoint={after['endpoint']};")


def test_rename_keeps_the_endpoint(as_user, owner, resource) -> None:
    before = as_user(owner).get(f"/api/v1/resources/{resource.slug}/").json()
    response = as_user(owner).patch(
        f"/api/v1/resources/{resource.slug}/", {"name": "Renamed"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Renamed"
    assert response.json()["endpoint"] == before["endpoint"]
    assert response.json()["path_endpoint"].endswith("/r/contoso/")


def test_the_last_owner_cannot_leave_or_be_demoted(as_user, owner, resource) -> None:
    membership = Membership.objects.get(resource=resource, user=owner)
    client = as_user(owner)
    demote = client.patch(
        f"/api/v1/resources/{resource.slug}/members/{membership.id}/",
        {"role": "reader"},
        format="json",
    )
    remove = client.delete(f"/api/v1/resources/{resource.slug}/members/{membership.id}/")
    assert (demote.status_code, remove.status_code) == (409, 409)
    assert Membership.objects.get(pk=membership.pk).role == Role.OWNER


def test_owner_manages_members(as_user, owner, resource, make_user) -> None:
    # given
    make_user("dana")
    client = as_user(owner)

    # when
    added = client.post(
        f"/api/v1/resources/{resource.slug}/members/",
        {"user": "dana@example.com", "role": "reader"},
        format="json",
    )
    member_id = added.json()["id"]
    promoted = client.patch(
        f"/api/v1/resources/{resource.slug}/members/{member_id}/", {"role": "owner"}, format="json"
    )
    unknown = client.post(
        f"/api/v1/resources/{resource.slug}/members/",
        {"user": "nobody", "role": "reader"},
        format="json",
    )
    bad_role = client.post(
        f"/api/v1/resources/{resource.slug}/members/",
        {"user": "dana", "role": "god"},
        format="json",
    )

    # then
    assert added.status_code == 201 and added.json()["username"] == "dana"
    assert promoted.json()["role"] == "owner"
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "UserNotFound"
    assert bad_role.status_code == 400
    assert Membership.objects.filter(resource=resource).count() == 2


def test_identities_and_tokens_through_the_management_api(as_user, owner, resource) -> None:
    client = as_user(owner)
    base = f"/api/v1/resources/{resource.slug}/identities/"

    # when
    created = client.post(base, {"scopes": ["chat"], "expiresInMinutes": 60}, format="json").json()
    raw_id = created["identity"]["id"]
    token = client.post(f"{base}{raw_id}/token/", {"scopes": ["voip"]}, format="json")
    bad = client.post(
        f"{base}{raw_id}/token/", {"scopes": ["voip"], "expiresInMinutes": "90"}, format="json"
    )
    revoked = client.post(f"{base}{raw_id}/revoke/")
    listed = client.get(base).json()

    # then
    assert created["accessToken"]["token"].count(".") == 2
    assert token.status_code == 200 and token.json()["token"]
    assert (
        bad.status_code == 400 and bad.json()["error"]["details"][0]["target"] == "expiresInMinutes"
    )
    assert revoked.status_code == 204
    assert listed["count"] == 1 and listed["results"][0]["id"] == raw_id
    assert listed["results"][0]["last_token_issued_at"] is not None
    assert client.delete(f"{base}{raw_id}/").status_code == 204
    assert not CommunicationIdentity.objects.exists()


def test_deleting_a_resource_stops_its_keys(as_user, owner, resource) -> None:
    from tests.conftest import AcsClient

    acs = AcsClient(resource, resource.primary_key)
    assert as_user(owner).delete(f"/api/v1/resources/{resource.slug}/").status_code == 204
    assert acs.call("POST", "/identities", {}).status_code == 401


def test_schema_and_offline_docs_are_served(as_user, owner) -> None:
    client = as_user(owner)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    docs = client.get("/api/docs/")
    assert schema.status_code == 200 and b"/api/v1/resources/" in schema.content
    assert docs.status_code == 200
    # Swagger UI comes from the sidecar package under /static/, never from a CDN.
    assert b"/static/drf_spectacular_sidecar/" in docs.content
    assert b"cdn.jsdelivr" not in docs.content and b"unpkg" not in docs.content


def test_the_schema_documents_every_operations_errors(as_user, owner) -> None:
    schema = as_user(owner).get("/api/schema/?format=json").json()
    operations = [op for path in schema["paths"].values() for op in path.values()]
    assert len(operations) > 20
    for operation in operations:
        assert {"400", "401", "403", "404", "413", "429"} <= set(operation["responses"])
    error = schema["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]


def test_an_identity_s_calls_can_go_to_the_application(as_user, owner, resource) -> None:
    client = as_user(owner)
    base = f"/api/v1/resources/{resource.slug}/identities/"
    raw_id = client.post(base, {}, format="json").json()["identity"]["id"]

    routed = client.patch(f"{base}{raw_id}/", {"incoming_calls": "application"}, format="json")
    bad = client.patch(f"{base}{raw_id}/", {"incoming_calls": "elsewhere"}, format="json")

    assert routed.status_code == 200 and routed.json()["incoming_calls"] == "application"
    assert bad.status_code == 400
    assert CommunicationIdentity.objects.get().incoming_calls == "application"
