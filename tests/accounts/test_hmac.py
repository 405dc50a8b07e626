"""HMAC-SHA256 request authentication, exactly as the ACS SDKs sign."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity
from tests.conftest import AcsClient, origin_host, sign_headers

pytestmark = pytest.mark.django_db


def _date(offset: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + offset, usegmt=True)


def _assert_refused(response, fragment: str) -> None:
    assert response.status_code == 401, response.content
    error = response.json()["error"]
    assert error["code"] == "Unauthorized"
    assert fragment in error["message"]
    assert not CommunicationIdentity.objects.exists()


def test_primary_and_secondary_keys_both_work(acs: AcsClient) -> None:
    assert acs.call("POST", "/identities", {}).status_code == 201
    assert (
        acs.call("POST", "/identities", {}, sign_key=acs.resource.secondary_key).status_code == 201
    )


def test_wrong_key_is_refused(acs: AcsClient, other_resource) -> None:
    _assert_refused(
        acs.call("POST", "/identities", {}, sign_key=other_resource.primary_key), "signature"
    )


def test_missing_signature_headers_are_refused(acs: AcsClient) -> None:
    response = acs.client.post(
        f"/r/{acs.resource.slug}/identities?api-version=2023-10-01", {}, "application/json"
    )
    _assert_refused(response, "Authorization header is missing")
    signed = sign_headers(
        "POST",
        f"/r/{acs.resource.slug}/identities?api-version=2023-10-01",
        b"{}",
        acs.key,
        f"testserver/r/{acs.resource.slug}",
    )
    response = acs.client.post(
        f"/r/{acs.resource.slug}/identities?api-version=2023-10-01",
        {},
        "application/json",
        HTTP_AUTHORIZATION=signed["Authorization"],
    )
    _assert_refused(response, "x-ms-date")


def test_body_that_does_not_match_its_hash_is_refused(acs: AcsClient) -> None:
    # given a signature over one body, sent with another body
    signed_for = sign_headers(
        "POST",
        "/identities?api-version=2023-10-01",
        b"{}",
        acs.key,
        origin_host(acs.resource),
    )
    response = acs.call(
        "POST", "/identities", {"createTokenWithScopes": ["chat"]}, headers=signed_for
    )
    _assert_refused(response, "x-ms-content-sha256")


@pytest.mark.parametrize("offset", [timedelta(minutes=16), timedelta(minutes=-16)])
def test_dates_more_than_15_minutes_off_are_refused(acs: AcsClient, offset: timedelta) -> None:
    target = "/identities?api-version=2023-10-01"
    signed = sign_headers(
        "POST", target, b"{}", acs.key, origin_host(acs.resource), date=_date(offset)
    )
    _assert_refused(acs.call("POST", "/identities", {}, headers=signed), "15 minutes")


def test_a_date_without_time_zone_is_refused(acs: AcsClient) -> None:
    target = "/identities?api-version=2023-10-01"
    date = _date(timedelta(0)).replace(" GMT", "")
    signed = sign_headers("POST", target, b"{}", acs.key, origin_host(acs.resource), date=date)
    _assert_refused(acs.call("POST", "/identities", {}, headers=signed), "GMT")


def test_dates_within_15_minutes_are_accepted(acs: AcsClient) -> None:
    target = "/identities?api-version=2023-10-01"
    signed = sign_headers(
        "POST",
        target,
        b"{}",
        acs.key,
        origin_host(acs.resource),
        date=_date(timedelta(minutes=-14)),
    )
    assert acs.call("POST", "/identities", {}, headers=signed).status_code == 201


def test_a_signature_for_another_path_or_host_is_refused(acs: AcsClient) -> None:
    other_path = sign_headers(
        "POST",
        "/identities?api-version=2022-06-01",
        b"{}",
        acs.key,
        origin_host(acs.resource),
    )
    _assert_refused(acs.call("POST", "/identities", {}, headers=other_path), "signature")
    other_host = sign_headers(
        "POST",
        "/identities?api-version=2023-10-01",
        b"{}",
        acs.key,
        "evil.example",
    )
    _assert_refused(acs.call("POST", "/identities", {}, headers=other_host), "signature")


def test_garbage_authorization_is_refused(acs: AcsClient) -> None:
    for value in (
        "Bearer abc",
        "HMAC-SHA256 Signature=%%%",
        "HMAC-SHA256 SignedHeaders=host&Signature=YQ==",
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256&Signature=\u00e9",
    ):
        _assert_refused(acs.call("POST", "/identities", {}, headers={"Authorization": value}), "")


def test_rooms_style_decoded_path_signature_is_accepted(acs: AcsClient) -> None:
    # given an identity, and a signature over the decoded path (RoomsClient signs it so)
    raw_id = acs.call("POST", "/identities", {}).json()["identity"]["id"]
    from urllib.parse import quote

    encoded = f"/identities/{quote(raw_id, safe='')}/:revokeAccessTokens?api-version=2023-10-01"
    decoded = f"/identities/{raw_id}/:revokeAccessTokens?api-version=2023-10-01"
    signed = sign_headers("POST", decoded, b"", acs.key, origin_host(acs.resource))

    # when
    response = acs.call(
        "POST", f"/identities/{quote(raw_id, safe='')}/:revokeAccessTokens", headers=signed
    )

    # then
    assert response.status_code == 204, (encoded, response.content)


def test_regenerating_a_key_refuses_the_old_one_at_once(acs: AcsClient) -> None:
    # given
    old_primary = acs.resource.primary_key

    # when
    services.regenerate_key(acs.resource, "primary")

    # then the old key fails, the new one and the untouched secondary key work
    _assert_refused(acs.call("POST", "/identities", {}, sign_key=old_primary), "signature")
    assert acs.call("POST", "/identities", {}, sign_key=acs.resource.primary_key).status_code == 201
    assert (
        acs.call("POST", "/identities", {}, sign_key=acs.resource.secondary_key).status_code == 201
    )


def test_unknown_resource_is_refused_like_a_wrong_key(acs: AcsClient) -> None:
    # Callers without a key cannot probe which resources exist.
    response = acs.client.post(
        "/r/no-such-resource/identities?api-version=2023-10-01", {}, "application/json"
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "Unauthorized"


def test_unknown_route_under_the_data_plane_is_404_in_acs_shape(acs: AcsClient) -> None:
    response = acs.client.get(f"/r/{acs.resource.slug}/no-such-api")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NotFound"


def test_a_query_signed_as_the_javascript_sdks_sign_it_is_accepted(acs: AcsClient) -> None:
    # given a query as sent on the wire, and the signature over it re-encoded as a form
    # (URLSearchParams: "+" for a space, quotes and brackets escaped), as @azure/communication-*
    # sign it
    wire = "api-version=2025-06-01&administrativeDivision=New%20York*%27()!~"
    signed_form = "api-version=2025-06-01&administrativeDivision=New+York*%27%28%29%21%7E"
    signed = sign_headers(
        "GET",
        f"/availablePhoneNumbers/countries/US/localities?{signed_form}",
        b"",
        acs.key,
        origin_host(acs.resource),
    )

    # when
    response = acs.call(
        "GET", "/availablePhoneNumbers/countries/US/localities", query=wire, headers=signed
    )

    # then
    assert response.status_code == 200, response.content
