"""What every console page shares: a title naming the page, the favicon, the staff pages'
guard, the admin's names, and API docs that load nothing from outside Spool.

How the pages fit narrow and wide screens is for a browser: tests/e2e/test_console_layout_browser.py.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.accounts import services
from apps.accounts.models import Resource

pytestmark = pytest.mark.django_db

# A resource's pages (URL name -> what the title says before "· <resource> · Spool"): the
# subject of the page's <h1>, then the tab of a section that has tabs.
RESOURCE_PAGES = {
    "console:resource-overview": "Overview",
    "console:resource-keys": "Keys",
    "console:resource-access": "Access control",
    "console:identities": "Identities & user access tokens",
    "console:numbers": "Phone numbers",
    "console:sip": "SIP trunks",
    "console:sms": "SMS · Send",
    "console:sms-messages": "SMS · Messages",
    "console:sms-handsets": "SMS · Virtual handsets",
    "console:sms-opt-outs": "SMS · Opt-outs",
    "console:chat": "Chat · Threads",
    "console:chat-try": "Chat · Try chat",
    "console:calls": "Calls · Call log",
    "console:rooms": "Calls · Rooms",
    "console:calls-try": "Calls · Try calling",
    "console:calls-group": "Calls · Group call",
    "console:calls-phones": "Calls · Virtual phones",
    "console:calls-automation": "Calls · Automation",
    "console:calls-recordings": "Calls · Recordings",
    "console:calls-ivr": "Calls · Try IVR",
    "console:events": "Events",
    "console:request-log": "Request log",
    "console:resource-delete": "Delete",
}


def title_of(content: bytes) -> str:
    found = re.search(rb"<title>(.*?)</title>", content, re.S)
    assert found, content[:400]
    return html.unescape(found.group(1).decode()).strip()


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_every_resource_page_names_itself_then_the_resource(owner, resource: Resource) -> None:
    # given the resource's owner
    client = signed_in(owner)

    for name, page in RESOURCE_PAGES.items():
        # when they open the page
        response = client.get(reverse(name, args=[resource.slug]))

        # then its title names it
        assert response.status_code == 200, name
        assert title_of(response.content) == f"{page} · Contoso · Spool", name


def test_a_number_search_s_title_follows_its_heading(
    owner, resource: Resource, make_numbers, django_capture_on_commit_callbacks
) -> None:
    # given a search for a number
    make_numbers(2)
    client = signed_in(owner)
    with django_capture_on_commit_callbacks(execute=True):
        searched = client.post(
            f"/resources/{resource.slug}/numbers/",
            {
                "action": "search",
                "country": "US",
                "type": "geographic",
                "assignment": "application",
                "calling": "inbound+outbound",
                "sms": "inbound+outbound",
                "quantity": "1",
            },
            follow=True,
        )

    # then its page is titled after it
    assert "/numbers/searches/" in searched.redirect_chain[-1][0]
    assert title_of(searched.content) == "Phone numbers · search · Contoso · Spool"


@pytest.mark.parametrize(
    ("path", "title"),
    [
        ("/login/", "Sign in · Spool"),
        ("/signup/", "Sign up · Spool"),
        ("/password_reset/", "Reset password · Spool"),
    ],
)
def test_pages_without_a_resource_name_themselves(client: Client, path: str, title: str) -> None:
    assert title_of(client.get(path).content) == title


def test_the_resource_list_and_the_console_s_refusals_name_themselves(owner, make_user) -> None:
    client = signed_in(owner)
    stranger = services.create_resource("Elsewhere", owner=make_user("stranger")).slug
    assert title_of(client.get("/resources/").content) == "Resources · Spool"
    assert title_of(client.get(f"/resources/{stranger}/").content) == "Not found · Spool"
    assert title_of(client.get("/staff/sip-trunks/").content) == "Not allowed · Spool"


# --- The favicon --------------------------------------------------------------------------
def test_pages_link_the_favicon_and_favicon_ico_leads_to_it(client: Client) -> None:
    # when a browser asks for /favicon.ico, as it does on any page
    response = client.get("/favicon.ico")

    # then it is sent to the console's SVG icon, which every page links
    assert response.status_code == 301
    icon = response["Location"]
    assert icon.endswith("/console/favicon.svg")
    assert f'<link rel="icon" href="{icon}" type="image/svg+xml">' in client.get("/login/").text
    served = client.get(icon)
    assert served.status_code == 200 and served["Content-Type"].startswith("image/svg+xml")


# --- Staff pages --------------------------------------------------------------------------
STAFF_PAGES = ["/staff/numbers/import/", "/staff/sip-trunks/", "/staff/sip-trunks/1/"]


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_staff_pages_tell_others_they_are_not_allowed(owner, path: str) -> None:
    # when a signed-in user who is not staff opens a staff page
    response = signed_in(owner).get(path)

    # then the console refuses it, rather than sending them to the admin's login
    assert response.status_code == 403
    assert b"Not allowed" in response.content and b"/admin/login/" not in response.content
    assert title_of(response.content) == "Not allowed · Spool"


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_staff_pages_send_visitors_to_the_console_s_sign_in(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302 and response["Location"].startswith("/login/?next=")


def test_staff_reach_staff_pages(make_user) -> None:
    staff = signed_in(make_user("operator", is_staff=True))
    import_page = staff.get("/staff/numbers/import/")
    trunks = staff.get("/staff/sip-trunks/")
    assert import_page.status_code == trunks.status_code == 200
    assert title_of(import_page.content) == "Number inventory · Spool"
    assert title_of(trunks.content) == "SIP trunks · Spool"


# --- Django admin -------------------------------------------------------------------------
def test_the_admin_is_spool_s_and_names_its_tables_in_good_english(make_user) -> None:
    # given an operator
    staff = signed_in(make_user("root", is_staff=True, is_superuser=True))

    # when they open the admin
    index = staff.get("/admin/").content.decode()

    # then it is Spool's, and its plurals are words
    assert "<title>Site administration | Spool administration</title>" in index
    assert ">Spool administration</a>" in index
    for plural in ("Event deliveries", "Number searches", "SMS messages", "Opt-outs"):
        assert f">{plural}</a>" in index, plural
    for wrong in ("deliverys", "searchs", "Sms messages", "Opt outs"):
        assert wrong not in index


# --- API docs -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "title"),
    [("/api/docs/", "API docs · Spool"), ("/api/redoc/", "API reference · Spool")],
)
def test_api_docs_load_only_from_spool(client: Client, path: str, title: str) -> None:
    # when the API docs are opened
    page = client.get(path).content.decode()

    # then every script, style and font they name is Spool's own
    assert title_of(page.encode()) == title
    assert not re.findall(r"(?:src|href)=[\"']?(?:https?:)?//", page), page
    assert "fonts.googleapis.com" not in page and "cdn.jsdelivr.net" not in page
    assert "/static/drf_spectacular_sidecar/" in page


def test_swagger_ui_sends_the_schema_to_no_online_validator(client: Client) -> None:
    page = client.get("/api/docs/").content.decode()
    assert '"validatorUrl": null' in page
