"""TURN relay credentials (coturn's REST scheme) through the ACS issueRelayConfiguration API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest
from django.test import override_settings

from apps.accounts import services as accounts
from tests.conftest import AcsClient

pytestmark = pytest.mark.django_db
PATH = "/networkTraversal/:issueRelayConfiguration"
VERSION = "2022-03-01-preview"
TURN = override_settings(
    TURN_URLS=["turn:127.0.0.1:3478?transport=udp"],
    STUN_URLS=["stun:127.0.0.1:3478"],
    TURN_SECRET="s3cret",
    TURN_TTL_SECONDS=3600,
)


def relay(acs: AcsClient, body: dict[str, Any]) -> Any:
    return acs.call("POST", PATH, body, api_version=VERSION)


@TURN
def test_turn_credentials_are_the_ones_coturn_accepts_for_the_identity(acs: AcsClient) -> None:
    # given an identity
    identity, _ = accounts.create_identity(acs.resource)

    # when its relay configuration is asked for, for ten minutes
    response = relay(acs, {"id": identity.raw_id, "ttl": 600, "routeType": "nearest"})

    # then the TURN server's username is "<expiry>:<raw id>" with coturn's HMAC password
    assert response.status_code == 200
    turn, stun = response.json()["iceServers"]
    expiry, _, user = turn["username"].partition(":")
    assert user == identity.raw_id and abs(int(expiry) - (time.time() + 600)) < 5
    expected = base64.b64encode(
        hmac.new(b"s3cret", turn["username"].encode(), hashlib.sha1).digest()
    ).decode()
    assert turn["credential"] == expected and turn["routeType"] == "nearest"
    assert turn["urls"] == ["turn:127.0.0.1:3478?transport=udp"]
    assert stun["urls"] == ["stun:127.0.0.1:3478"]


@TURN
def test_the_lifetime_is_capped_by_the_deployment(acs: AcsClient) -> None:
    response = relay(acs, {"ttl": 172800})
    expiry = int(response.json()["iceServers"][0]["username"].split(":")[0])
    assert expiry <= time.time() + 3600 + 5


@pytest.mark.parametrize(
    "body, target",
    [
        ({"ttl": 0}, "ttl"),
        ({"ttl": "1h"}, "ttl"),
        ({"ttl": 172801}, "ttl"),
        ({"routeType": "fastest"}, "routeType"),
        ({"id": 7}, "id"),
    ],
)
def test_bad_requests_are_refused(acs: AcsClient, body: dict[str, Any], target: str) -> None:
    response = relay(acs, body)
    assert response.status_code == 400 and response.json()["error"]["target"] == target


def test_another_resources_identity_is_not_found(acs: AcsClient, other_acs: AcsClient) -> None:
    theirs, _ = accounts.create_identity(other_acs.resource)
    assert relay(acs, {"id": theirs.raw_id}).status_code == 404


def test_without_relays_configured_there_are_no_ice_servers(acs: AcsClient) -> None:
    response = relay(acs, {})
    assert response.status_code == 200 and response.json()["iceServers"] == []
