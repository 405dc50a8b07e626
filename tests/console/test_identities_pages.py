"""The Identities page's labels and search, the identity search the pickers ask, and the pickers
on the Try pages, through Django's test client."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity, Resource, Role
from tests.console.test_calls_pages import member, signed_in

pytestmark = pytest.mark.django_db


def page_url(resource: Resource) -> str:
    return f"/resources/{resource.slug}/identities/"


def search_url(resource: Resource) -> str:
    return f"/resources/{resource.slug}/identities/search/"


def labelled(resource: Resource, *labels: str) -> list[CommunicationIdentity]:
    return [services.create_identity(resource, label=label)[0] for label in labels]


# --- The Identities page ---------------------------------------------------------------------
def test_an_identity_is_created_with_a_label(owner: Any, resource: Resource) -> None:
    # when
    page = signed_in(owner).post(
        page_url(resource), {"action": "create", "label": " Front desk "}, follow=True
    )

    # then
    identity = CommunicationIdentity.objects.get()
    assert identity.label == "Front desk"
    assert f"Identity {identity.raw_id} (“Front desk”) created." in page.content.decode()


def test_a_label_is_set_and_cleared(owner: Any, resource: Resource) -> None:
    # given
    identity, _ = services.create_identity(resource)
    client = signed_in(owner)

    # when
    set_page = client.post(
        page_url(resource),
        {"action": "label", "identity": identity.raw_id, "label": "Alice"},
        follow=True,
    )

    # then the row shows it, in the field that changes it
    identity.refresh_from_db()
    assert identity.label == "Alice"
    html = set_page.content.decode()
    assert f"{identity.raw_id} is now labelled “Alice”." in html
    assert 'name="label" value="Alice"' in html

    # when
    cleared = client.post(
        page_url(resource),
        {"action": "label", "identity": identity.raw_id, "label": ""},
        follow=True,
    )

    # then
    identity.refresh_from_db()
    assert identity.label == ""
    assert f"The label of {identity.raw_id} was cleared." in cleared.content.decode()


def test_a_bad_label_is_explained_and_changes_nothing(owner: Any, resource: Resource) -> None:
    # given
    (identity,) = labelled(resource, "Alice")
    client = signed_in(owner)

    # when
    page = client.post(
        page_url(resource),
        {"action": "label", "identity": identity.raw_id, "label": "x" * 65},
        follow=True,
    )
    created = client.post(page_url(resource), {"action": "create", "label": "a\u202eb"})

    # then
    assert "A label is at most 64 characters." in page.content.decode()
    assert created.status_code == 302
    identity.refresh_from_db()
    assert identity.label == "Alice"
    assert CommunicationIdentity.objects.count() == 1


def test_a_reader_sees_labels_and_changes_none(resource: Resource, make_user: Any) -> None:
    # given
    (identity,) = labelled(resource, "Alice")
    client = member(resource, make_user, Role.READER)

    # when
    html = client.get(page_url(resource)).content.decode()
    refused = client.post(
        page_url(resource),
        {"action": "label", "identity": identity.raw_id, "label": "Mallory"},
        follow=True,
    )

    # then
    assert "Alice" in html
    assert 'name="label"' not in html
    assert "Your role cannot manage identities." in refused.content.decode()
    identity.refresh_from_db()
    assert identity.label == "Alice"


def test_another_resource_s_identity_keeps_its_label(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given
    (theirs,) = labelled(other_resource, "Theirs")

    # when this resource's owner names it through their own resource's page
    page = signed_in(owner).post(
        page_url(resource),
        {"action": "label", "identity": theirs.raw_id, "label": "Mine now"},
        follow=True,
    )

    # then
    assert "was not found" in page.content.decode()
    theirs.refresh_from_db()
    assert theirs.label == "Theirs"


def test_the_page_searches_by_label_or_id(owner: Any, resource: Resource) -> None:
    # given
    alice, bob = labelled(resource, "Alice", "Bob")
    client = signed_in(owner)

    # when
    by_label = client.get(page_url(resource), {"q": "ali"}).content.decode()
    by_id = client.get(page_url(resource), {"q": str(bob.id)[:8]}).content.decode()
    nothing = client.get(page_url(resource), {"q": "zed"}).content.decode()

    # then
    assert alice.raw_id in by_label and bob.raw_id not in by_label
    assert 'name="q" value="ali"' in by_label
    assert bob.raw_id in by_id
    assert "No identity matches “zed”." in nothing


def test_the_page_s_search_is_paged_and_kept_after_a_change(owner: Any, resource: Resource) -> None:
    # given more matches than a page shows
    identities = labelled(resource, *[f"agent {n:02d}" for n in range(30)])
    client = signed_in(owner)

    # when
    first = client.get(page_url(resource), {"q": "agent"}).content.decode()
    changed = client.post(
        page_url(resource),
        {"action": "label", "identity": identities[0].raw_id, "label": "agent x", "q": "agent"},
    )

    # then
    assert "?q=agent&amp;page=2" in first
    assert changed["Location"] == f"{page_url(resource)}?q=agent"


# --- The identity search ---------------------------------------------------------------------
@pytest.mark.parametrize("role", [Role.OWNER, Role.CONTRIBUTOR, Role.READER])
def test_every_member_role_may_search(resource: Resource, make_user: Any, role: str) -> None:
    # given
    (alice,) = labelled(resource, "Alice")

    # when
    response = member(resource, make_user, role).get(search_url(resource), {"q": "al"})

    # then
    assert response.status_code == 200
    assert response.json() == {"identities": [{"rawId": alice.raw_id, "label": "Alice"}]}


def test_strangers_find_no_search(resource: Resource, make_user: Any) -> None:
    assert signed_in(make_user("stranger")).get(search_url(resource)).status_code == 404
    anonymous = Client().get(search_url(resource), {"q": "a"})
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]


def test_the_search_is_bounded_and_stays_in_its_resource(
    owner: Any, resource: Resource, other_resource: Resource
) -> None:
    # given many matches here, and one in another resource
    labelled(resource, *[f"bot {n:02d}" for n in range(30)])
    (theirs,) = labelled(other_resource, "bot elsewhere")

    # when
    found = signed_in(owner).get(search_url(resource), {"q": "bot"}).json()["identities"]
    by_raw_id = signed_in(owner).get(search_url(resource), {"q": theirs.raw_id}).json()

    # then
    assert len(found) == services.IDENTITY_SEARCH_LIMIT
    assert [identity["label"] for identity in found][:2] == ["bot 00", "bot 01"]
    assert theirs.raw_id not in {identity["rawId"] for identity in found}
    assert by_raw_id == {"identities": []}


def test_the_search_only_reads(owner: Any, resource: Resource) -> None:
    assert signed_in(owner).post(search_url(resource), {"q": "a"}).status_code == 405


# --- The pickers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "path, names",
    [
        ("chat/try/", ["identity", "participant", "participant"]),
        ("calls/try/", ["identity", "callee"]),
        ("calls/group/", ["identity"]),
    ],
)
def test_the_try_pages_ask_for_identities_with_pickers(
    owner: Any, resource: Resource, path: str, names: list[str]
) -> None:
    # given an identity, which no page lists any more
    identity, _ = services.create_identity(resource)

    # when
    html = signed_in(owner).get(f"/resources/{resource.slug}/{path}").content.decode()

    # then
    picker = f'data-identity-picker="{search_url(resource)}"'
    for name in names:
        assert f'name="{name}" {picker}' in html
    assert html.count(picker) == len(names)
    assert identity.raw_id not in html
    assert "/static/console/picker.js" in html and "/static/console/picker.css" in html
