"""Identity labels (the console's names for identities) and identity search: the one rule on
labels, search by label or id within one resource, bounded, and no label in the ACS API."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity, Resource
from apps.core.errors import ApiError
from tests.conftest import AcsClient, quote_id

pytestmark = pytest.mark.django_db


def labelled(resource: Resource, *labels: str) -> list[CommunicationIdentity]:
    return [services.create_identity(resource, label=label)[0] for label in labels]


def search(resource: Resource, query: str, **options: Any) -> list[str]:
    return [identity.label for identity in services.search_identities(resource, query, **options)]


# --- Labels ---------------------------------------------------------------------------------
def test_a_label_is_stripped_and_stored_with_its_search_key(resource: Resource) -> None:
    # given
    identity, _ = services.create_identity(resource)

    # when
    services.set_identity_label(identity, "  Straße Desk  ")

    # then
    identity.refresh_from_db()
    assert identity.label == "Straße Desk"
    assert identity.label_key == "strasse desk"


def test_an_empty_label_clears_it(resource: Resource) -> None:
    # given
    (identity,) = labelled(resource, "Alice")

    # when
    services.set_identity_label(identity, "   ")

    # then
    identity.refresh_from_db()
    assert (identity.label, identity.label_key) == ("", "")


@pytest.mark.parametrize(
    "label",
    [
        "x" * 65,
        "two\nlines",
        "tab\there",
        "nul\x00",
        "bell\x07",
        "c1\x85inside",
        "right-to-left \u202eoverride",
        "isolate \u2066",
        "\ud800",
        42,
        None,
    ],
)
def test_a_bad_label_is_refused_and_changes_nothing(resource: Resource, label: Any) -> None:
    # given
    (identity,) = labelled(resource, "Alice")

    # when
    with pytest.raises(ApiError) as refused:
        services.set_identity_label(identity, label)

    # then
    assert refused.value.code == "InvalidLabel"
    assert refused.value.status == 400
    assert identity.label == "Alice"
    identity.refresh_from_db()
    assert (identity.label, identity.label_key) == ("Alice", "alice")


def test_sixty_four_characters_and_any_script_are_a_label(resource: Resource) -> None:
    (identity,) = labelled(resource, "é" * 64)
    services.set_identity_label(identity, "Ünïcödé 👩‍💻 名前")
    identity.refresh_from_db()
    assert identity.label == "Ünïcödé 👩‍💻 名前"


def test_creating_with_a_bad_label_creates_nothing(resource: Resource) -> None:
    # when
    with pytest.raises(ApiError):
        services.create_identity(resource, scopes=["chat"], label="a\nb")

    # then
    assert not CommunicationIdentity.objects.exists()


# --- Search ---------------------------------------------------------------------------------
def test_labels_match_by_prefix_whatever_the_case_then_by_a_word_inside(
    resource: Resource,
) -> None:
    # given
    labelled(resource, "Bob", "alice", "Alicia", "Mr Ali Baba", "ALIBI", "Carol")

    # when
    found = search(resource, "ALI")

    # then labels that start with it come first, alphabetically, then those holding it
    assert found == ["ALIBI", "alice", "Alicia", "Mr Ali Baba"]


def test_ids_match_by_guid_prefix_or_raw_id(resource: Resource) -> None:
    # given
    identity, other = labelled(resource, "Alice", "Bob")
    guid = str(identity.id)

    # then the GUID's first characters, with or without dashes, find it
    for query in (guid[:6], guid[:13], guid[:13].replace("-", ""), guid.upper()):
        assert identity in services.search_identities(resource, query), query
    # and so does its raw id, whole or cut short
    assert services.search_identities(resource, identity.raw_id) == [identity]
    assert identity in services.search_identities(resource, identity.raw_id[:-20])
    # and the resource's raw-id prefix alone offers every identity
    assert len(services.search_identities(resource, f"8:acs:{resource.id}_")) == 2
    assert other not in services.search_identities(resource, identity.raw_id)


def test_an_empty_query_offers_the_newest_identities(resource: Resource) -> None:
    labelled(resource, "first", "second", "third")
    assert search(resource, "  ") == ["third", "second", "first"]


def test_results_are_bounded(resource: Resource) -> None:
    # given more matching identities than a search returns
    labelled(resource, *[f"bot {n:02d}" for n in range(services.IDENTITY_SEARCH_LIMIT + 5)])

    # then
    assert len(search(resource, "bot")) == services.IDENTITY_SEARCH_LIMIT
    assert search(resource, "bot")[0] == "bot 00"
    assert len(search(resource, "", limit=3)) == 3
    assert len(search(resource, "o", limit=7)) == 7


def test_a_word_inside_a_label_is_looked_for_among_the_newest_only(
    resource: Resource, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an old identity and two newer ones, and a scan of the two newest
    labelled(resource, "Ann Smith", "Bob Smith", "Cy Smith")
    monkeypatch.setattr(services, "LABEL_CONTAINS_SCAN", 2)

    # then a word inside finds the newer two, and a prefix finds the old one still
    assert search(resource, "smith") == ["Bob Smith", "Cy Smith"]
    assert search(resource, "ann") == ["Ann Smith"]


def test_a_search_takes_a_few_queries_however_many_identities(
    resource: Resource, django_assert_max_num_queries: Any
) -> None:
    labelled(resource, *[f"agent {n}" for n in range(30)])
    with django_assert_max_num_queries(4):
        services.search_identities(resource, "abc")


@pytest.mark.parametrize("query", ["a\x00b", "line\nbreak", "x" * 101, "-", "%", "_"])
def test_queries_that_name_no_identity_find_nothing(resource: Resource, query: str) -> None:
    labelled(resource, "Alice", "Bob")
    assert services.search_identities(resource, query) == []


def test_wildcards_are_plain_characters(resource: Resource) -> None:
    labelled(resource, "50% off", "500 club")
    assert search(resource, "50%") == ["50% off"]


# --- Tenants --------------------------------------------------------------------------------
def test_another_resource_s_identities_never_appear(
    resource: Resource, other_resource: Resource
) -> None:
    # given an identity of each resource with the same label
    (mine,) = labelled(resource, "Alice")
    (theirs,) = labelled(other_resource, "Alice")

    # then searching this resource finds its own only, by label, id, raw id or nothing at all
    guid = str(theirs.id)
    for query in ("", "Alice", "ali", guid[:8], theirs.raw_id, f"8:acs:{other_resource.id}_"):
        assert theirs not in services.search_identities(resource, query), query
    assert services.search_identities(resource, "Alice") == [mine]


# --- The ACS API keeps its shape ------------------------------------------------------------
def test_the_acs_identity_api_shows_no_label(acs: AcsClient, resource: Resource) -> None:
    # given a labelled identity
    (identity,) = labelled(resource, "Secret name")

    # when the ACS API issues it a token, and makes another identity
    issued = acs.call(
        "POST", f"/identities/{quote_id(identity.raw_id)}/:issueAccessToken", {"scopes": ["chat"]}
    )
    created = acs.call("POST", "/identities", {"createTokenWithScopes": ["chat"]})

    # then the answers are ACS's, with no label anywhere
    assert set(issued.json()) == {"token", "expiresOn"}
    assert set(created.json()) == {"identity", "accessToken"}
    assert set(created.json()["identity"]) == {"id"}
    assert b"Secret name" not in issued.content + created.content


def test_the_management_api_shows_no_label(owner: Any, resource: Resource) -> None:
    # given
    (identity,) = labelled(resource, "Secret name")
    client = APIClient()
    client.force_authenticate(owner)
    base = f"/api/v1/resources/{resource.slug}/identities/"

    # when
    listed = client.get(base)
    one = client.get(f"{base}{identity.raw_id}/")

    # then
    assert listed.status_code == one.status_code == 200
    assert "label" not in one.json()
    assert b"Secret name" not in listed.content + one.content


def test_labels_are_kept_apart_from_ids(resource: Resource) -> None:
    # a label that looks like another identity's id names nothing but its own identity
    (identity,) = labelled(resource, str(uuid.uuid4()))
    assert services.search_identities(resource, identity.label) == [identity]
