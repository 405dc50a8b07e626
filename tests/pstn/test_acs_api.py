"""The ACS SIP routing API (`GET`/`PATCH /sip`) through Django's client, signed like the SDKs."""

from __future__ import annotations

from typing import Any

import pytest

from apps.pstn.models import SipRoute, SipTrunk
from tests.conftest import AcsClient

pytestmark = pytest.mark.django_db

API = "2023-03-01"
TRUNKS = {"trunks": {"sbc.example.com": {"sipSignalingPort": 5061}}}
ROUTES = {
    "routes": [
        {
            "name": "us",
            "description": "US",
            "numberPattern": r"^\+1\d{10}$",
            "trunks": ["sbc.example.com"],
        }
    ]
}


def state() -> tuple[list[Any], list[Any]]:
    return list(SipTrunk.objects.values()), list(SipRoute.objects.values())


@pytest.mark.parametrize("paths", [False, True], ids=["own origin", "/r/<slug>/"])
def test_set_and_get_trunks_and_routes(resource, paths: bool) -> None:
    acs = AcsClient(resource, resource.primary_key, paths=paths)

    # when
    trunks = acs.call("PATCH", "/sip", TRUNKS, api_version=API)
    routes = acs.call("PATCH", "/sip", ROUTES, api_version=API)
    got = acs.call("GET", "/sip", api_version=API)

    # then every answer is the whole configuration
    assert trunks.status_code == 200, trunks.content
    assert trunks.json() == {**TRUNKS, "routes": []}
    assert routes.status_code == 200 and routes.json() == {**TRUNKS, **ROUTES}
    assert got.status_code == 200 and got.json() == {**TRUNKS, **ROUTES}


def test_a_refusal_is_in_acs_s_shape_and_changes_nothing(acs: AcsClient) -> None:
    # given
    acs.call("PATCH", "/sip", {**TRUNKS, **ROUTES}, api_version=API)
    before = state()

    # when a trunk a route uses is deleted
    response = acs.call("PATCH", "/sip", {"trunks": {"sbc.example.com": None}}, api_version=API)

    # then
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "UnprocessableConfiguration"
    assert error["innererror"]["code"] == "MissingTrunk"
    assert "sbc.example.com" in error["message"]
    assert state() == before


@pytest.mark.parametrize(
    ("body", "status", "inner"),
    [
        ({"trunks": {"192.0.2.1": {"sipSignalingPort": 5061}}}, 422, "InvalidTrunkFqdn"),
        (
            {"trunks": {"sbc.example.com": {"sipSignalingPort": 0}}},
            422,
            "InvalidTrunkSipSignalingPort",
        ),
        ({"routes": [{"name": "", "numberPattern": "^\\+1"}]}, 422, "InvalidRouteName"),
        ({"routes": [{"name": "r", "numberPattern": "(["}]}, 422, "InvalidRouteNumberPattern"),
        (
            {"routes": [{"name": "r", "numberPattern": "1", "trunks": ["x.example.com"]}]},
            422,
            "MissingTrunk",
        ),
        (
            {"routes": [{"name": "r", "numberPattern": "1"}, {"name": "r", "numberPattern": "2"}]},
            400,
            "DuplicatedRoute",
        ),
    ],
)
def test_bad_configurations_are_refused(acs: AcsClient, body: Any, status: int, inner: str) -> None:
    response = acs.call("PATCH", "/sip", body, api_version=API)
    assert response.status_code == status, response.content
    assert response.json()["error"]["innererror"]["code"] == inner
    assert state() == ([], [])


@pytest.mark.parametrize("raw", [b"[]", b'"sip"', b"{"])
def test_a_body_that_is_not_an_object_is_400(acs: AcsClient, raw: bytes) -> None:
    response = acs.call("PATCH", "/sip", raw_body=raw, api_version=API)
    assert response.status_code == 400
    assert set(response.json()["error"]) >= {"code", "message"}


def test_the_api_version_is_checked(acs: AcsClient) -> None:
    assert acs.call("GET", "/sip", query="").json()["error"]["code"] == "MissingApiVersionParameter"
    response = acs.call("GET", "/sip", api_version="2021-05-01-preview")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "UnsupportedApiVersion"


def test_a_wrong_key_is_401(acs: AcsClient, other_resource) -> None:
    response = acs.call("GET", "/sip", api_version=API, sign_key=other_resource.primary_key)
    assert response.status_code == 401


def test_one_resource_never_sees_another_s(acs: AcsClient, other_acs: AcsClient) -> None:
    acs.call("PATCH", "/sip", {**TRUNKS, **ROUTES}, api_version=API)
    assert other_acs.call("GET", "/sip", api_version=API).json() == {"trunks": {}, "routes": []}
    refused = other_acs.call(
        "PATCH",
        "/sip",
        {"routes": [{"name": "r", "numberPattern": "1", "trunks": ["sbc.example.com"]}]},
        api_version=API,
    )
    assert refused.status_code == 422


def test_other_methods_are_405(acs: AcsClient) -> None:
    response = acs.call("POST", "/sip", TRUNKS, api_version=API)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "MethodNotAllowed"
