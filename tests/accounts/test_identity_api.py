"""The ACS Identity API under /r/<slug>/: identities, tokens, revocation, bad input."""

from __future__ import annotations

import base64
import json

import pytest

from apps.accounts import services, tokens
from apps.accounts.exceptions import TokenRefused
from apps.accounts.models import CommunicationIdentity
from tests.conftest import AcsClient, quote_id

pytestmark = pytest.mark.django_db


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    # Decoded exactly as the ACS Python SDK does: standard alphabet, padding added.
    return json.loads(base64.b64decode(payload + "=="))


def _create(acs: AcsClient, body: dict | None = None) -> dict:
    response = acs.call("POST", "/identities", body)
    assert response.status_code == 201, response.content
    return response.json()


def test_create_identity_without_token(acs: AcsClient) -> None:
    # when
    body = _create(acs)

    # then
    raw_id = body["identity"]["id"]
    assert raw_id.startswith(f"8:acs:{acs.resource.id}_")
    assert "accessToken" not in body
    assert CommunicationIdentity.objects.filter(resource=acs.resource).count() == 1


def test_create_identity_with_token(acs: AcsClient) -> None:
    # when
    body = _create(acs, {"createTokenWithScopes": ["chat", "voip"], "expiresInMinutes": 120})

    # then the token names the identity, its scopes and expiry
    claims = _claims(body["accessToken"]["token"])
    assert claims["sub"] == body["identity"]["id"]
    assert claims["scp"] == "chat voip"
    assert claims["exp"] - claims["iat"] == 120 * 60
    assert body["accessToken"]["expiresOn"].endswith("Z")


def test_issue_token_defaults_to_24_hours_and_records_last_token_time(acs: AcsClient) -> None:
    # given
    raw_id = _create(acs)["identity"]["id"]

    # when
    response = acs.call(
        "POST", f"/identities/{quote_id(raw_id)}/:issueAccessToken", {"scopes": ["voip.join"]}
    )

    # then
    assert response.status_code == 200
    claims = _claims(response.json()["token"])
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert CommunicationIdentity.objects.get().last_token_issued_at is not None


@pytest.mark.parametrize(
    "body, code",
    [
        ({"scopes": ["chat"], "expiresInMinutes": 59}, "InvalidExpiresInMinutes"),
        ({"scopes": ["chat"], "expiresInMinutes": 1441}, "InvalidExpiresInMinutes"),
        ({"scopes": ["chat"], "expiresInMinutes": "60"}, "InvalidExpiresInMinutes"),
        ({"scopes": ["chat"], "expiresInMinutes": True}, "InvalidExpiresInMinutes"),
        ({"scopes": ["chat"], "expiresInMinutes": 90.5}, "InvalidExpiresInMinutes"),
        ({"scopes": []}, "InvalidScopes"),
        ({"scopes": "chat"}, "InvalidScopes"),
        ({"scopes": ["email"]}, "InvalidScopes"),
        ({"scopes": ["chat", 5]}, "InvalidScopes"),
        ({}, "InvalidScopes"),
    ],
)
def test_bad_token_requests_are_refused_and_change_nothing(
    acs: AcsClient, body: dict, code: str
) -> None:
    # given
    raw_id = _create(acs)["identity"]["id"]

    # when
    response = acs.call("POST", f"/identities/{quote_id(raw_id)}/:issueAccessToken", body)

    # then
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert CommunicationIdentity.objects.get().last_token_issued_at is None


def test_bad_create_with_token_writes_no_identity(acs: AcsClient) -> None:
    # when
    response = acs.call(
        "POST", "/identities", {"createTokenWithScopes": ["chat"], "expiresInMinutes": 10}
    )

    # then
    assert response.status_code == 400
    assert not CommunicationIdentity.objects.exists()


@pytest.mark.parametrize(
    "raw_body, status, code",
    [
        (b"{not json", 400, "InvalidJson"),
        (b"[1, 2]", 400, "InvalidRequestBody"),
        (b'"chat"', 400, "InvalidRequestBody"),
        (b"null", 400, "InvalidRequestBody"),
        (b"[]", 400, "InvalidRequestBody"),
        (b"0", 400, "InvalidRequestBody"),
        (b"false", 400, "InvalidRequestBody"),
        (b'""', 400, "InvalidRequestBody"),
        (b"[" * 100_000 + b"]" * 100_000, 400, "InvalidJson"),
        (
            b'{"createTokenWithScopes": ' + b'"x", "pad": "' + b"a" * 2_000_000 + b'"}',
            413,
            "RequestEntityTooLarge",
        ),
    ],
)
def test_malformed_bodies_get_acs_errors(
    acs: AcsClient, raw_body: bytes, status: int, code: str
) -> None:
    # when
    response = acs.call("POST", "/identities", raw_body=raw_body)

    # then
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not CommunicationIdentity.objects.exists()


@pytest.mark.parametrize(
    "query, code",
    [("api-version=2099-01-01", "UnsupportedApiVersion"), ("", "MissingApiVersionParameter")],
)
def test_api_version_is_checked(acs: AcsClient, query: str, code: str) -> None:
    response = acs.call("POST", "/identities", {}, query=query)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not CommunicationIdentity.objects.exists()


@pytest.mark.parametrize("version", ["2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01"])
def test_every_stable_api_version_works(acs: AcsClient, version: str) -> None:
    assert acs.call("POST", "/identities", {}, api_version=version).status_code == 201


def test_unknown_and_malformed_identities_are_404(acs: AcsClient) -> None:
    for raw_id in (
        f"8:acs:{acs.resource.id}_00000000-0000-0000-0000-000000000000",
        "8:acs:nonsense",
        "garbage",
    ):
        response = acs.call(
            "POST", f"/identities/{quote_id(raw_id)}/:issueAccessToken", {"scopes": ["chat"]}
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "IdentityNotFound"


def test_revoke_refuses_every_earlier_token_but_not_later_ones(acs: AcsClient) -> None:
    # given two tokens issued before revocation
    body = _create(acs, {"createTokenWithScopes": ["chat"]})
    raw_id = body["identity"]["id"]
    first = body["accessToken"]["token"]
    second = acs.call(
        "POST", f"/identities/{quote_id(raw_id)}/:issueAccessToken", {"scopes": ["voip"]}
    ).json()["token"]
    assert services.authenticate_token(first).raw_id == raw_id

    # when
    response = acs.call("POST", f"/identities/{quote_id(raw_id)}/:revokeAccessTokens")

    # then both are refused, and a token issued afterwards works
    assert response.status_code == 204
    for token in (first, second):
        with pytest.raises(TokenRefused):
            services.authenticate_token(token)
    third = acs.call(
        "POST", f"/identities/{quote_id(raw_id)}/:issueAccessToken", {"scopes": ["chat"]}
    ).json()["token"]
    assert services.authenticate_token(third).scopes == {"chat"}


def test_delete_identity_refuses_its_tokens_and_removes_it(acs: AcsClient) -> None:
    # given
    body = _create(acs, {"createTokenWithScopes": ["chat"]})
    raw_id = body["identity"]["id"]

    # when
    response = acs.call("DELETE", f"/identities/{quote_id(raw_id)}")

    # then
    assert response.status_code == 204
    assert not CommunicationIdentity.objects.exists()
    with pytest.raises(TokenRefused):
        services.authenticate_token(body["accessToken"]["token"])
    assert acs.call("DELETE", f"/identities/{quote_id(raw_id)}").status_code == 404


def test_teams_token_exchange_gets_a_clear_4xx(acs: AcsClient) -> None:
    response = acs.call(
        "POST", "/teamsUser/:exchangeAccessToken", {"token": "t", "appId": "a", "userId": "u"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "TeamsInteropNotSupported"


def test_one_resource_never_reaches_another_resources_identity(
    acs: AcsClient, other_acs: AcsClient
) -> None:
    # given an identity of the other resource
    raw_id = _create(other_acs)["identity"]["id"]

    # when this resource's key tries to use it
    issue = acs.call(
        "POST", f"/identities/{quote_id(raw_id)}/:issueAccessToken", {"scopes": ["chat"]}
    )
    revoke = acs.call("POST", f"/identities/{quote_id(raw_id)}/:revokeAccessTokens")
    delete = acs.call("DELETE", f"/identities/{quote_id(raw_id)}")

    # then it is not found, and nothing changed
    assert (issue.status_code, revoke.status_code, delete.status_code) == (404, 404, 404)
    identity = CommunicationIdentity.objects.get()
    assert identity.token_generation == 0 and identity.last_token_issued_at is None


def test_a_resources_key_does_not_open_another_resources_path(
    acs: AcsClient, other_acs: AcsClient
) -> None:
    # given this resource's key used on the other resource's endpoint
    intruder = AcsClient(other_acs.resource, acs.key)

    # then
    response = intruder.call("POST", "/identities", {})
    assert response.status_code == 401
    assert not CommunicationIdentity.objects.exists()


def test_token_payload_survives_the_sdks_standard_base64_decoding(acs: AcsClient) -> None:
    # The ACS SDK drops '-' and '_' when decoding; tokens must never contain them there.
    raw_id = _create(acs)["identity"]["id"]
    for _ in range(50):
        token = acs.call(
            "POST",
            f"/identities/{quote_id(raw_id)}/:issueAccessToken",
            {"scopes": ["chat", "voip"]},
        )
        payload = token.json()["token"].split(".")[1]
        assert "-" not in payload and "_" not in payload
        assert _claims(token.json()["token"])["sub"] == raw_id
    assert tokens.verify(token.json()["token"])["sub"] == raw_id


def test_all_five_scopes_together_as_in_the_acs_example(acs: AcsClient) -> None:
    raw_id = _create(acs)["identity"]["id"]
    scopes = ["chat", "voip", "chat.join", "chat.join.limited", "voip.join"]
    response = acs.call(
        "POST",
        f"/identities/{quote_id(raw_id)}/:issueAccessToken",
        {"scopes": scopes, "expiresInMinutes": 60},
    )
    assert response.status_code == 200
    assert _claims(response.json()["token"])["scp"].split() == scopes


def test_issuing_a_token_costs_two_queries(
    acs: AcsClient, django_assert_num_queries, monkeypatch
) -> None:
    # The hot path reads the resource (for its keys) and the identity's revocation generation;
    # the token time, the tokens count and the request log go to write-behind buffers
    # (test_token_times.py, tests/metrics, tests/core/test_request_log.py).
    raw_id = _create(acs)["identity"]["id"]
    recorded, counted = [], []
    monkeypatch.setattr(
        services.token_times, "add", lambda identity_id, when: recorded.append(identity_id)
    )
    monkeypatch.setattr(
        services.metric_counters, "count", lambda resource_id, metric: counted.append(metric)
    )
    with django_assert_num_queries(2):
        response = acs.call(
            "POST", f"/identities/{quote_id(raw_id)}/:issueAccessToken", {"scopes": ["chat"]}
        )
    assert response.status_code == 200
    assert [str(i) for i in recorded] == [raw_id.rsplit("_", 1)[1]]
    assert counted == ["tokens.issued"]
