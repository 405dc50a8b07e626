"""The token route (apps/accounts/token_route.py): token requests answered before Django.

It must answer exactly as the view does when it answers, and leave everything else to Django
(which the rest of the suite tests through the view): each refusal below is checked to get
None from the route, and Django's answer to the same request is checked to be the refusal."""

from __future__ import annotations

import json
from concurrent.futures import Future
from typing import Any

import jwt
import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from apps.accounts import services, token_route
from apps.accounts.models import CommunicationIdentity, Resource
from apps.core import quotas
from apps.core.models import RequestLog
from apps.core.request_log import writer
from tests.conftest import AcsClient, django_answer, origin_host, quote_id, signed_scope

pytestmark = pytest.mark.django_db

BODY = json.dumps({"scopes": ["chat", "voip"]}).encode()


def token_request(
    resource: Resource,
    raw_id: str,
    *,
    body: bytes = BODY,
    query: str = "api-version=2023-10-01",
    **options: Any,
) -> tuple[dict[str, Any], bytes]:
    return signed_scope(
        resource,
        f"/identities/{raw_id}/:issueAccessToken",
        body,
        raw_path=f"/identities/{quote_id(raw_id)}/:issueAccessToken",
        query=query,
        **options,
    )


@pytest.fixture
def identity(resource: Resource) -> CommunicationIdentity:
    return services.create_identity(resource)[0]


def route_answer(scope: dict[str, Any], body: bytes) -> Any:
    """The route's answer (made once its batch read the identity, as the event loop makes
    it), or None."""
    answer = token_route.answer(scope, body)
    if isinstance(answer, Future):
        answer = answer.result(5)
    return answer() if callable(answer) else answer


def _headers(answer: Any) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in answer[1]}


@pytest.mark.parametrize("paths", [False, True], ids=["own origin", "/r/<slug>"])
def test_the_route_answers_as_the_view_does(
    resource: Resource, identity: CommunicationIdentity, paths: bool
) -> None:
    answer = route_answer(*token_request(resource, identity.raw_id, paths=paths))
    view = AcsClient(resource, resource.primary_key, paths=paths).call(
        "POST",
        f"/identities/{quote_id(identity.raw_id)}/:issueAccessToken",
        {"scopes": ["chat", "voip"]},
    )

    assert answer is not None
    assert answer[0] == view.status_code == 200
    assert set(_headers(answer)) == {name.lower() for name in view.headers}
    route_body, view_body = json.loads(answer[2]), view.json()
    assert set(route_body) == set(view_body) == {"token", "expiresOn"}
    route_claims = jwt.decode(route_body["token"], options={"verify_signature": False})
    view_claims = jwt.decode(view_body["token"], options={"verify_signature": False})
    for changing in ("iat", "exp", "pad"):
        route_claims.pop(changing, None)
        view_claims.pop(changing, None)
    assert route_claims == view_claims
    assert services.authenticate_token(route_body["token"]).identity == identity


def test_over_https_the_route_sends_hsts_as_django_does(
    resource: Resource, identity: CommunicationIdentity, settings: Any
) -> None:
    settings.SECURE_HSTS_SECONDS = 3600
    answer = route_answer(*token_request(resource, identity.raw_id, scheme="https"))
    acs = AcsClient(resource, resource.primary_key, secure=True)
    view = acs.call(
        "POST", f"/identities/{quote_id(identity.raw_id)}/:issueAccessToken", {"scopes": ["chat"]}
    )

    assert answer is not None
    assert _headers(answer)["strict-transport-security"] == view["Strict-Transport-Security"]


def test_a_token_from_the_route_is_logged_counted_and_noted(
    resource: Resource, identity: CommunicationIdentity
) -> None:
    scope, body = token_request(
        resource, identity.raw_id, headers={"x-ms-client-request-id": "mine-1"}
    )
    answer = route_answer(scope, body)
    writer.flush()

    assert answer is not None
    headers = _headers(answer)
    assert headers["x-ms-client-request-id"] == "mine-1"
    row = RequestLog.objects.get(request_id=headers["x-ms-request-id"])
    assert (row.route, row.status, row.caller, row.resource_slug, row.api_version) == (
        "identities/<str:raw_id>/:issueAccessToken",
        200,
        "key:primary",
        resource.slug,
        "2023-10-01",
    )
    assert row.client_address == "127.0.0.1"
    identity.refresh_from_db()
    assert identity.last_token_issued_at is not None


# Each request the route leaves to Django, with what Django answers it.
REFUSALS: dict[str, tuple[dict[str, Any], int]] = {
    "a wrong key": ({"key": "c2VjcmV0" * 4}, 401),
    "another api-version": ({"query": "api-version=2020-01-01"}, 400),
    "an extra query parameter": ({"query": "api-version=2023-10-01&x=1"}, 200),
    "a browser's request": ({"headers": {"Origin": "https://app.example"}}, 200),
    "a body that is not JSON": ({"body": b"{nope"}, 400),
    "an unknown scope": ({"body": b'{"scopes": ["root"]}'}, 400),
    "a lifetime out of range": ({"body": b'{"scopes": ["chat"], "expiresInMinutes": 5}'}, 400),
    "a body that is not an object": ({"body": b"[1]"}, 400),
    "a NUL in the body": ({"body": b'{"scopes": ["chat\\u0000"]}'}, 400),
    "another media type": ({"headers": {"content-type": "application/jsonx"}}, 415),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_the_route_leaves_anything_but_an_ordinary_success_to_django(
    resource: Resource, identity: CommunicationIdentity, case: str
) -> None:
    change, django_status = REFUSALS[case]
    scope, body = token_request(resource, identity.raw_id, **change)

    assert route_answer(scope, body) is None

    view = django_answer(scope, body)
    assert view.status_code == django_status, view.content


def test_an_identity_of_another_resource_is_left_to_django_which_does_not_find_it(
    resource: Resource, other_resource: Resource, identity: CommunicationIdentity
) -> None:
    theirs = services.create_identity(other_resource)[0]
    # Resource A's key, A's origin, B's identity; and B's identity id under A's id.
    forged = theirs.raw_id.replace(str(other_resource.id), str(resource.id))
    for raw_id in (theirs.raw_id, forged):
        assert route_answer(*token_request(resource, raw_id)) is None
        view = AcsClient(resource, resource.primary_key).call(
            "POST", f"/identities/{quote_id(raw_id)}/:issueAccessToken", {"scopes": ["chat"]}
        )
        assert view.status_code == 404


def test_a_deleted_identity_gets_no_token_from_the_route(
    resource: Resource, identity: CommunicationIdentity
) -> None:
    services.delete_identity(identity)
    assert route_answer(*token_request(resource, identity.raw_id)) is None


def test_another_resources_key_is_left_to_django(
    resource: Resource, other_resource: Resource, identity: CommunicationIdentity
) -> None:
    scope, body = token_request(resource, identity.raw_id, key=other_resource.primary_key)
    assert route_answer(scope, body) is None


def test_a_rotated_key_stops_working_on_the_route_at_once(
    resource: Resource, identity: CommunicationIdentity
) -> None:
    old_key = resource.primary_key
    assert route_answer(*token_request(resource, identity.raw_id)) is not None
    services.regenerate_key(resource, "primary")
    assert route_answer(*token_request(resource, identity.raw_id, key=old_key)) is None


def test_plain_http_from_afar_and_unknown_hosts_are_left_to_django(
    resource: Resource, identity: CommunicationIdentity
) -> None:
    scope, body = token_request(resource, identity.raw_id, client="203.0.113.9")
    assert route_answer(scope, body) is None  # Django answers 403 HttpsRequired
    scope, body = token_request(resource, identity.raw_id, scheme="https", client="203.0.113.9")
    assert route_answer(scope, body) is not None

    scope, body = token_request(resource, identity.raw_id, headers={"host": "evil.example"})
    assert route_answer(scope, body) is None
    scope, body = token_request(resource, identity.raw_id)
    scope["headers"].append((b"host", origin_host(resource).encode()))  # Host twice
    assert route_answer(scope, body) is None
    # A resource's origin serves its API at the root: /r/<slug>/ there is another path.
    scope, body = token_request(resource, identity.raw_id, paths=True, host=origin_host(resource))
    assert route_answer(scope, body) is None


def test_a_database_error_leaves_the_request_to_django(
    resource: Resource, identity: CommunicationIdentity, monkeypatch: Any
) -> None:
    def broken(*args: Any) -> None:
        raise DatabaseError("the database is away")

    monkeypatch.setattr(token_route, "_identities_query", broken)
    assert route_answer(*token_request(resource, identity.raw_id)) is None


def test_the_route_refuses_past_the_quota_in_acs_shape_and_counts_once(
    resource: Resource, identity: CommunicationIdentity, settings: Any
) -> None:
    settings.QUOTAS = {**settings.QUOTAS, "tokens": (3, 30)}
    answers = [route_answer(*token_request(resource, identity.raw_id)) for _ in range(4)]

    assert [a[0] for a in answers if a] == [200, 200, 200, 429]
    refused = answers[3]
    assert refused is not None
    assert json.loads(refused[2])["error"]["code"] == "TooManyRequests"
    assert 1 <= int(_headers(refused)["retry-after"]) <= 30
    # The view shares the count: the next request through Django is refused too.
    view = AcsClient(resource, resource.primary_key).call(
        "POST", f"/identities/{quote_id(identity.raw_id)}/:issueAccessToken", {"scopes": ["chat"]}
    )
    assert view.status_code == 429
    quotas.leases.forget()


# --- A batch of reads ---------------------------------------------------------------------
def test_a_batch_reads_every_identity_in_one_query_and_answers_each_as_alone(
    resource: Resource, other_resource: Resource, identity: CommunicationIdentity
) -> None:
    # given, in one batch, requests for identities of two resources, through either's paths,
    # and one for an identity deleted since
    theirs = services.create_identity(other_resource)[0]
    gone = services.create_identity(resource)[0]
    requests = {
        "mine": (token_request(resource, identity.raw_id), 200),
        "theirs": (token_request(other_resource, theirs.raw_id), 200),
        "theirs through my path": (token_request(resource, theirs.raw_id), 404),
        "mine on their origin": (
            token_request(other_resource, identity.raw_id, paths=False),
            404,
        ),
        "deleted": (token_request(resource, gone.raw_id), 404),
        "mine again": (token_request(resource, identity.raw_id), 200),
    }
    services.delete_identity(gone)
    batch = {case: token_route.pending(*request) for case, (request, _) in requests.items()}

    # when the batch is read
    with CaptureQueriesContext(connection) as read:
        token_route._read(list(batch.values()))

    # then one query read them all, and each is answered as it would be alone
    assert len(read.captured_queries) == 1
    for case, item in batch.items():
        answer = item.answer()
        (scope, body), status = requests[case]
        if status == 200:
            assert answer is not None and answer[0] == 200, case
            claims = jwt.decode(json.loads(answer[2])["token"], options={"verify_signature": False})
            assert claims["sub"] == scope["path"].split("/")[-2], case
        else:
            assert answer is None, case
            assert django_answer(scope, body).status_code == status, case
