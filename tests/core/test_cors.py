"""Browsers on another origin may call the ACS API (as the ACS JavaScript SDKs do), not the
console or the management API, which use cookies."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_the_acs_api_answers_a_preflight_from_any_origin() -> None:
    # when a browser on an app's origin asks before a Bearer call
    response = Client().options(
        "/r/demo/chat/threads?api-version=2024-03-07",
        HTTP_ORIGIN="https://app.example",
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization,content-type,repeatability-request-id",
    )

    # then the call is allowed, with the headers the SDKs send
    assert response["access-control-allow-origin"] in ("*", "https://app.example")
    allowed = response["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "repeatability-request-id" in allowed


@pytest.mark.django_db
def test_the_management_api_does_not_allow_other_origins() -> None:
    response = Client().get("/api/v1/resources/", HTTP_ORIGIN="https://evil.example")
    assert "access-control-allow-origin" not in response
