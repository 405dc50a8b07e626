"""The console's SIP trunks page of a resource, and the staff pages for trunk settings (also
in Django admin)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.accounts import services as accounts
from apps.accounts.models import Role
from apps.pstn import services
from apps.pstn.models import SipTrunk

pytestmark = pytest.mark.django_db


@pytest.fixture
def configured(resource: Any) -> Any:
    services.patch_configuration(
        resource,
        {
            "trunks": {"sbc.example.com": {"sipSignalingPort": 5061}},
            "routes": [
                {"name": "us", "numberPattern": r"^\+1\d{10}$", "trunks": ["sbc.example.com"]}
            ],
        },
    )
    return resource


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def staff(make_user: Any) -> Client:
    return signed_in(make_user("operator", is_staff=True, is_superuser=True))


def test_members_see_the_resource_s_trunks_and_routes(configured, make_user) -> None:
    # given a reader
    reader = make_user("reader")
    accounts.add_member(configured, "reader", Role.READER)

    # when
    page = signed_in(reader).get(f"/resources/{configured.slug}/sip/")

    # then
    assert page.status_code == 200
    html = page.content.decode()
    assert "sbc.example.com" in html and "5061" in html and "Awaiting an operator" in html
    assert "^\\+1\\d{10}$" in html and 'class="active">SIP trunks' in html


def test_strangers_get_not_found(configured, make_user) -> None:
    page = signed_in(make_user("stranger")).get(f"/resources/{configured.slug}/sip/")
    assert page.status_code == 404


def test_every_resource_page_links_the_sip_page(configured, owner) -> None:
    page = signed_in(owner).get(f"/resources/{configured.slug}/")
    assert f"/resources/{configured.slug}/sip/".encode() in page.content


def test_staff_list_and_edit_a_trunk(configured, staff) -> None:
    trunk = SipTrunk.objects.get()

    # when the operator lists the trunks and opens one
    listing = staff.get("/staff/sip-trunks/")
    assert listing.status_code == 200 and b"sbc.example.com" in listing.content
    assert staff.get(f"/staff/sip-trunks/{trunk.pk}/").status_code == 200

    # and saves settings
    saved = staff.post(
        f"/staff/sip-trunks/{trunk.pk}/",
        {
            "enabled": "on",
            "address": "192.0.2.10",
            "transport": "tls",
            "digest_username": "spool",
            "digest_password": "s3cret",
            "allowed_networks": "192.0.2.0/24",
            "codecs": "pcma, pcmu",
            "srtp": "on",
            "caller_id_format": "digits",
            "assert_identity": "on",
            "max_concurrent_calls": "20",
            "outbound_prefixes": "+1",
        },
        follow=True,
    )

    # then they are stored, and the password is never shown again
    assert b"Saved the settings" in saved.content and b"s3cret" not in saved.content
    trunk.refresh_from_db()
    assert (trunk.enabled, trunk.address, trunk.transport) == (True, "192.0.2.10", "tls")
    assert trunk.digest_password == "s3cret" and trunk.codecs == ["pcma", "pcmu"]
    assert (trunk.srtp, trunk.caller_id_format, trunk.assert_identity) == (True, "digits", True)
    assert trunk.allowed_networks == ["192.0.2.0/24"] and trunk.outbound_prefixes == ["+1"]
    assert services.trunk_for_source("192.0.2.99") == trunk


def test_bad_settings_show_the_problem_and_change_nothing(configured, staff) -> None:
    trunk = SipTrunk.objects.get()
    page = staff.post(
        f"/staff/sip-trunks/{trunk.pk}/",
        {"enabled": "on", "transport": "udp", "allowed_networks": "192.0.2.0/33"},
    )
    assert page.status_code == 200 and b"is not an IP network" in page.content
    trunk.refresh_from_db()
    assert not trunk.enabled and trunk.allowed_networks == []


def test_staff_pages_are_for_staff_only(configured, owner) -> None:
    trunk = SipTrunk.objects.get()
    for url in ("/staff/sip-trunks/", f"/staff/sip-trunks/{trunk.pk}/"):
        page = signed_in(owner).get(url)
        assert page.status_code == 403 and b"Not allowed" in page.content


def test_an_unknown_trunk_is_not_found(staff) -> None:
    assert staff.get("/staff/sip-trunks/999999/").status_code == 404


def test_admin_edits_the_operator_settings_through_the_services(configured, staff) -> None:
    trunk = SipTrunk.objects.get()
    url = f"/admin/pstn/siptrunk/{trunk.pk}/change/"
    assert staff.get(url).status_code == 200
    assert staff.get("/admin/pstn/siproute/").status_code == 200

    # when
    response = staff.post(
        url, {"enabled": "on", "transport": "tls", "allowed_networks": "10.0.0.0/8"}
    )

    # then
    assert response.status_code == 302, response.content[:2000]
    trunk.refresh_from_db()
    assert trunk.enabled and trunk.transport == "tls" and trunk.allowed_networks == ["10.0.0.0/8"]

    # and a bad value is refused on the form
    refused = staff.post(url, {"transport": "tls", "codecs": "opus"})
    assert refused.status_code == 200 and b"pcmu and pcma" in refused.content
