"""Console pages through Django's test client: accounts, resources, keys, access, identities."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity, Membership, Resource, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def browser(owner) -> Client:
    client = Client()
    client.force_login(owner)
    return client


def test_sign_up_mails_a_link_that_creates_the_account_and_signs_in(
    django_capture_on_commit_callbacks,
) -> None:
    # given a visitor who signs up
    client = Client()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/signup/",
            {
                "username": "erin",
                "email": "erin@example.com",
                "password1": "a long passphrase 42",
                "password2": "a long passphrase 42",
            },
            follow=True,
        )

    # then they are told to check their email, and no account exists yet
    assert response.redirect_chain[-1][0] == "/signup/sent/"
    assert b"Check your email" in response.content and b"erin@example.com" in response.content
    assert not User.objects.filter(username="erin").exists()

    # when they follow the mailed link and confirm
    assert [message.to for message in mail.outbox] == [["erin@example.com"]]
    link = re.search(r"https?://[^/]+(/signup/confirm/\S+/)", mail.outbox[0].body).group(1)
    assert b"Confirm your Spool account" in client.get(link).content
    response = client.post(link, follow=True)

    # then they are signed in on their resource list
    assert response.redirect_chain[-1][0] == "/resources/"
    assert b"Welcome, erin" in response.content
    assert Client().login(username="erin", password="a long passphrase 42")


def test_sign_up_with_a_weak_password_is_refused_without_a_word_on_the_email(owner) -> None:
    response = Client().post(
        "/signup/", {"username": "x", "email": owner.email, "password1": "123", "password2": "123"}
    )
    assert response.status_code == 200
    assert b"too short" in response.content
    assert b"already" not in response.content
    assert len(mail.outbox) == 0


def test_sign_in_and_sign_out(owner) -> None:
    client = Client()
    response = client.post(
        "/login/", {"username": "owner", "password": "correct horse battery"}, follow=True
    )
    assert b"Contoso" not in response.content and response.redirect_chain[-1][0] == "/resources/"
    assert client.post("/logout/").status_code == 302
    assert client.get("/resources/").status_code == 302


def test_password_reset_by_email(owner) -> None:
    # when the user asks for a reset
    client = Client()
    client.post("/password_reset/", {"email": owner.email})

    # then a mail carries a link that sets a new password
    assert len(mail.outbox) == 1
    link = re.search(r"https?://[^/]+(/reset/\S+/)", mail.outbox[0].body).group(1)
    form = client.get(link, follow=True)
    response = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "brand new secret 77", "new_password2": "brand new secret 77"},
        follow=True,
    )
    assert b"Password changed" in response.content
    assert Client().login(username="owner", password="brand new secret 77")


def test_create_resource_from_the_console(browser) -> None:
    response = browser.post("/resources/", {"name": "Shop"}, follow=True)
    assert response.redirect_chain[-1][0] == "/resources/shop/"
    assert b"/r/shop/" in response.content
    duplicate = browser.post("/resources/", {"name": "shop"}, follow=True)
    assert b"already exists" in duplicate.content
    assert Resource.objects.count() == 1


def test_keys_page_shows_connection_strings_and_regenerates(browser, resource) -> None:
    # given
    page = browser.get(f"/resources/{resource.slug}/keys/")
    assert services.connection_string(resource, "primary").encode() in page.content
    old = resource.primary_key

    # when
    browser.post(f"/resources/{resource.slug}/keys/", {"key": "primary"})

    # then
    resource.refresh_from_db()
    assert resource.primary_key != old
    assert resource.primary_key.encode() in browser.get(f"/resources/{resource.slug}/keys/").content


def test_readers_see_no_keys_and_cannot_change_anything(resource, make_user) -> None:
    # given a reader
    reader = make_user("reader")
    services.add_member(resource, "reader", Role.READER)
    client = Client()
    client.force_login(reader)

    # then
    overview = client.get(f"/resources/{resource.slug}/")
    assert overview.status_code == 200 and b"/keys/" not in overview.content
    assert client.get(f"/resources/{resource.slug}/keys/").status_code == 403
    client.post(f"/resources/{resource.slug}/identities/", {"action": "create"})
    client.post(f"/resources/{resource.slug}/rename/", {"name": "Hacked"})
    client.post(
        f"/resources/{resource.slug}/access/", {"action": "add", "user": "reader", "role": "owner"}
    )
    assert not CommunicationIdentity.objects.exists()
    resource.refresh_from_db()
    assert resource.name == "Contoso"
    assert Membership.objects.get(user=reader).role == Role.READER


def test_strangers_get_not_found(resource, make_user) -> None:
    client = Client()
    client.force_login(make_user("stranger"))
    assert client.get(f"/resources/{resource.slug}/").status_code == 404
    assert client.get("/resources/").content.count(b"Contoso") == 0


def test_identities_page_issues_revokes_and_deletes(browser, resource) -> None:
    # when an identity is created with a token
    page = browser.post(
        f"/resources/{resource.slug}/identities/",
        {"action": "create", "scopes": ["chat", "voip"], "expires": "60"},
        follow=True,
    )

    # then the token is shown once, after a redirect, and the identity is listed
    identity = CommunicationIdentity.objects.get()
    assert page.redirect_chain[-1][0] == f"/resources/{resource.slug}/identities/"
    token = _issued_token(page.content)
    assert services.authenticate_token(token).identity == identity
    assert _issued_token(browser.get(f"/resources/{resource.slug}/identities/").content) is None

    # when a token is issued for the existing identity with other scopes and expiry
    page = browser.post(
        f"/resources/{resource.slug}/identities/",
        {
            "action": "create",
            "token_for": identity.raw_id,
            "scopes": ["voip.join"],
            "expires": "240",
        },
        follow=True,
    )

    # then it carries those, and no identity was added
    second = services.authenticate_token(_issued_token(page.content))
    assert second.scopes == {"voip.join"} and CommunicationIdentity.objects.count() == 1

    # when it is revoked, then deleted
    browser.post(
        f"/resources/{resource.slug}/identities/", {"action": "revoke", "identity": identity.raw_id}
    )
    identity.refresh_from_db()
    assert identity.token_generation == 1
    browser.post(
        f"/resources/{resource.slug}/identities/", {"action": "delete", "identity": identity.raw_id}
    )
    assert not CommunicationIdentity.objects.exists()


def test_identities_page_routes_an_identity_s_calls(browser, resource) -> None:
    identity, _ = services.create_identity(resource)
    url = f"/resources/{resource.slug}/identities/"

    page = browser.post(
        url,
        {"action": "incoming_calls", "identity": identity.raw_id, "incoming_calls": "application"},
        follow=True,
    )
    bad = browser.post(
        url,
        {"action": "incoming_calls", "identity": identity.raw_id, "incoming_calls": "elsewhere"},
        follow=True,
    )

    identity.refresh_from_db()
    assert identity.incoming_calls == "application"
    assert b"Raise IncomingCall for the resource&#x27;s application" in page.content
    assert b"must be client, application or ivr" in bad.content
    assert b'<option value="application" selected>' in bad.content


def test_identities_page_reports_bad_expiry_without_writing(browser, resource) -> None:
    response = browser.post(
        f"/resources/{resource.slug}/identities/",
        {"action": "create", "scopes": ["chat"], "expires": "5"},
        follow=True,
    )
    assert b"expiresInMinutes must be between 60 and 1440" in response.content
    assert not CommunicationIdentity.objects.exists()


def test_delete_resource_needs_its_name(browser, resource) -> None:
    browser.post(f"/resources/{resource.slug}/delete/", {"confirm_name": "nope"})
    assert Resource.objects.exists()
    browser.post(f"/resources/{resource.slug}/delete/", {"confirm_name": "Contoso"})
    assert not Resource.objects.exists()


def test_lists_page(browser, owner) -> None:
    for n in range(30):
        services.create_resource(f"app {n:02d}", owner=owner)
    first = browser.get("/resources/")
    second = browser.get("/resources/?page=2")
    assert b"Page 1 of 2" in first.content and b"app 29" in second.content


def test_staff_see_admin(make_user) -> None:
    staff = make_user("operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    assert b"/admin/" in client.get("/resources/").content
    assert client.get("/admin/accounts/resource/").status_code == 200
    assert client.get("/admin/accounts/communicationidentity/").status_code == 200
    assert client.get("/admin/core/workerheartbeat/").status_code == 200


def test_admin_creates_renames_and_deletes_resources_through_the_services(make_user) -> None:
    # given an operator
    staff = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)

    # when a resource is added in admin
    client.post("/admin/accounts/resource/add/", {"name": "Ops Made", **_empty_inline()})
    duplicate = client.post(
        "/admin/accounts/resource/add/", {"name": "ops made", **_empty_inline()}
    )
    bad = client.post("/admin/accounts/resource/add/", {"name": "!!!", **_empty_inline()})

    # then it has a slug and working keys, and bad names are form errors, not crashes
    resource = Resource.objects.get()
    assert resource.slug == "ops-made" and len(resource.access_keys()[0]) == 32
    assert duplicate.status_code == 200 and b"already exists" in duplicate.content
    assert bad.status_code == 200 and Resource.objects.count() == 1
    assert client.get("/resources/").status_code == 200


def test_admin_deleting_an_identity_refuses_its_tokens(make_user, resource) -> None:
    staff = make_user("root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    identity, token = services.create_identity(resource, scopes=["chat"])
    client.post(f"/admin/accounts/communicationidentity/{identity.pk}/delete/", {"post": "yes"})
    assert not CommunicationIdentity.objects.exists()
    with pytest.raises(services.TokenRefused):
        services.authenticate_token(token.token)


def _empty_inline() -> dict[str, str]:
    return {
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
    }


def _issued_token(content: bytes) -> str | None:
    found = re.search(
        rb'id="issued-token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*id="issued-token"', content
    )
    return (found.group(1) or found.group(2)).decode() if found else None


def test_admin_lists_the_number_inventory(make_user) -> None:
    staff = make_user("numbers-operator", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff)
    for page in ("phonenumber", "numbersearch", "numberoperation"):
        assert client.get(f"/admin/numbers/{page}/").status_code == 200
