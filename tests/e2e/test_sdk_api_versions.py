"""Every api-version the current official Python SDKs offer reaches Spool's routes (the JS
SDKs' defaults are exercised by tests/js)."""

from __future__ import annotations

import pytest
from azure.communication.identity import CommunicationIdentityClient
from azure.communication.identity._api_versions import ApiVersion as IdentityVersion
from azure.communication.phonenumbers import PhoneNumbersClient
from azure.communication.phonenumbers._api_versions import ApiVersion as NumbersVersion
from azure.communication.rooms import RoomsClient
from azure.communication.rooms._api_versions import ApiVersion as RoomsVersion

from tests.conftest import LiveSpool

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def connection(live_spool: LiveSpool) -> str:
    return live_spool.create_resource()


@pytest.mark.parametrize("version", [v.value for v in IdentityVersion])
def test_identity_versions(live_spool: LiveSpool, connection: str, version: str) -> None:
    client = CommunicationIdentityClient.from_connection_string(
        connection, api_version=version, connection_verify=live_spool.cert
    )
    assert client.create_user().properties["id"].startswith("8:acs:")


@pytest.mark.parametrize("version", [v.value for v in NumbersVersion])
def test_phone_numbers_versions(live_spool: LiveSpool, connection: str, version: str) -> None:
    client = PhoneNumbersClient.from_connection_string(
        connection, api_version=version, connection_verify=live_spool.cert
    )
    assert list(client.list_purchased_phone_numbers()) == []


@pytest.mark.parametrize("version", [v.value for v in RoomsVersion])
def test_rooms_versions(live_spool: LiveSpool, connection: str, version: str) -> None:
    client = RoomsClient.from_connection_string(
        connection, api_version=version, connection_verify=live_spool.cert
    )
    assert client.create_room().id
