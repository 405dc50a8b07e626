"""The official azure-communication-identity SDK against a live `manage.py serve` over TLS."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from azure.communication.identity import CommunicationIdentityClient, CommunicationTokenScope
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)

from tests.conftest import LiveSpool

pytestmark = pytest.mark.e2e


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.fixture(scope="module")
def connection_string(live_spool: LiveSpool) -> str:
    return live_spool.create_resource()


@pytest.fixture
def client(live_spool: LiveSpool, connection_string: str) -> CommunicationIdentityClient:
    return CommunicationIdentityClient.from_connection_string(
        connection_string, connection_verify=live_spool.cert
    )


def test_identity_life_cycle_with_the_official_sdk(client: CommunicationIdentityClient) -> None:
    # given a new user
    user = client.create_user()
    assert user.properties["id"].startswith("8:acs:")

    # when a token is issued with two scopes and a custom expiry
    token = client.get_token(
        user,
        [CommunicationTokenScope.CHAT, CommunicationTokenScope.VOIP],
        token_expires_in=timedelta(minutes=90),
    )

    # then it names the user and the scopes and lives 90 minutes
    claims = _claims(token.token)
    assert claims["sub"] == user.properties["id"]
    assert set(claims["scp"].split()) == {"chat", "voip"}
    assert 89 * 60 <= claims["exp"] - claims["iat"] <= 90 * 60

    # and revoking and deleting succeed, after which the user is gone
    client.revoke_tokens(user)
    client.delete_user(user)
    with pytest.raises(ResourceNotFoundError):
        client.get_token(user, [CommunicationTokenScope.CHAT])


def test_create_user_and_token_defaults_to_24_hours(client: CommunicationIdentityClient) -> None:
    # when
    user, token = client.create_user_and_token([CommunicationTokenScope.VOIP])

    # then
    claims = _claims(token.token)
    assert claims["sub"] == user.properties["id"]
    assert claims["exp"] - claims["iat"] == 24 * 3600


def test_expiry_outside_one_to_24_hours_is_refused(client: CommunicationIdentityClient) -> None:
    user = client.create_user()
    with pytest.raises(HttpResponseError) as error:
        client.get_token(
            user, [CommunicationTokenScope.CHAT], token_expires_in=timedelta(minutes=59)
        )
    assert error.value.status_code == 400
    with pytest.raises(HttpResponseError):
        client.get_token(user, [CommunicationTokenScope.CHAT], token_expires_in=timedelta(hours=25))


def test_wrong_key_is_refused(live_spool: LiveSpool, connection_string: str) -> None:
    # given a connection string with another key
    wrong = (
        connection_string.split("accesskey=")[0]
        + "accesskey="
        + base64.b64encode(b"x" * 32).decode()
    )
    client = CommunicationIdentityClient.from_connection_string(
        wrong, connection_verify=live_spool.cert
    )

    # then
    with pytest.raises(ClientAuthenticationError):
        client.create_user()


def test_one_resource_cannot_touch_another_resources_identity(
    live_spool: LiveSpool, client
) -> None:
    # given a user of this resource and a client of another resource
    user = client.create_user()
    other = CommunicationIdentityClient.from_connection_string(
        live_spool.create_resource(), connection_verify=live_spool.cert
    )

    # then the other resource cannot issue tokens for it or delete it
    with pytest.raises(ResourceNotFoundError):
        other.get_token(user, [CommunicationTokenScope.CHAT])
    with pytest.raises(ResourceNotFoundError):
        other.delete_user(user)
    assert client.get_token(user, [CommunicationTokenScope.CHAT]).token
