"""Quotas, hit as an abusive client would: each answers 429 `TooManyRequests` with Retry-After
in the ACS shape, changes nothing, counts per resource / identity / account / address, and
resets once the window has slid."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts import services as accounts
from apps.calls import signaling
from apps.calls.exceptions import TooManyCalls
from apps.core import quotas
from apps.numbers.models import NumberStatus, PhoneNumber
from tests.conftest import AcsClient, origin_host, quote_id

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(quotas, "_now", c)
    return c


@pytest.fixture
def limits(settings):
    """`limits(tokens=(3, 30))` sets quotas for the test."""

    def set_(**values: tuple[int, int]) -> None:
        settings.QUOTAS = {**settings.QUOTAS, **{k.replace("_", "-"): v for k, v in values.items()}}

    return set_


def _refused(response, seconds_at_most: int) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "TooManyRequests"
    assert 1 <= int(response["Retry-After"]) <= seconds_at_most


def test_a_sliding_window_counts_the_last_window_and_says_when_to_retry(clock) -> None:
    # given 3 per 10 s, spent at once
    for _ in range(3):
        quotas.spend("t", "k", (3, 10), what="testing")

    # when / then the 4th is refused until the window rolls
    with pytest.raises(quotas.QuotaExceeded) as refused:
        quotas.spend("t", "k", (3, 10), what="testing")
    assert refused.value.retry_after == 10 and refused.value.headers() == {"Retry-After": "10"}

    # and in the next window the earlier requests still weigh, sliding out as time passes
    clock.now += 12  # 20% into the next window: 5 (4 counted + refused) * 0.8 = 4 > 3
    with pytest.raises(quotas.QuotaExceeded):
        quotas.spend("t", "k", (3, 10), what="testing")
    clock.now += 7  # 90% in: (5 * 0.1) + 2 = 2.5 <= 3
    quotas.spend("t", "k", (3, 10), what="testing")
    # another key was never limited
    quotas.spend("t", "other", (3, 10), what="testing")


def test_token_issuance_is_limited_per_resource(acs: AcsClient, other_acs, limits, clock) -> None:
    # given a resource allowed 3 tokens per 30 s
    limits(tokens=(3, 30))
    raw_id = acs.call("POST", "/identities", {}).json()["identity"]["id"]
    path = f"/identities/{quote_id(raw_id)}/:issueAccessToken"
    for _ in range(3):
        assert acs.call("POST", path, {"scopes": ["chat"]}).status_code == 200

    # when / then the 4th is refused with Retry-After, and issues nothing
    identity = accounts.access_identity(acs.resource, raw_id)
    issued_before = identity.last_token_issued_at
    _refused(acs.call("POST", path, {"scopes": ["chat"]}), 30)
    identity.refresh_from_db()
    assert identity.last_token_issued_at == issued_before

    # and another resource is not limited by it
    other_id = other_acs.call("POST", "/identities", {}).json()["identity"]["id"]
    other_path = f"/identities/{quote_id(other_id)}/:issueAccessToken"
    assert other_acs.call("POST", other_path, {"scopes": ["chat"]}).status_code == 200

    # when the window has slid past, then tokens are issued again
    clock.now += 61
    assert acs.call("POST", path, {"scopes": ["chat"]}).status_code == 200


def test_chat_requests_are_limited_per_identity(resource, limits, clock) -> None:
    # given two identities of one resource, allowed 2 chat requests per 30 s each
    limits(chat=(2, 30))
    _, mine = accounts.create_identity(resource, scopes=["chat"])
    _, theirs = accounts.create_identity(resource, scopes=["chat"])
    assert mine and theirs

    def create_thread(token: str):
        return Client().post(
            "/chat/threads?api-version=2024-03-07",
            json.dumps({"topic": "t"}),
            content_type="application/json",
            HTTP_HOST=origin_host(resource),
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )

    assert create_thread(mine.token).status_code == 201
    assert create_thread(mine.token).status_code == 201
    _refused(create_thread(mine.token), 30)
    assert create_thread(theirs.token).status_code == 201


def test_sms_requests_are_limited_per_resource(acs: AcsClient, limits) -> None:
    limits(sms=(1, 30))
    body = {"from": "+14255550100", "smsRecipients": [{"to": "+14255550199"}], "message": "x"}
    first = acs.call("POST", "/sms", body, api_version="2021-03-07")
    assert first.status_code != 429
    _refused(acs.call("POST", "/sms", body, api_version="2021-03-07"), 30)


def test_held_numbers_are_limited_per_resource(acs: AcsClient, make_numbers, settings) -> None:
    # given a resource that may hold 2 numbers, and 5 in stock
    settings.MAX_HELD_NUMBERS = 2
    make_numbers(5)
    search = {
        "phoneNumberType": "geographic",
        "assignmentType": "application",
        "capabilities": {"calling": "inbound+outbound", "sms": "inbound+outbound"},
    }
    path = "/availablePhoneNumbers/countries/US/:search"

    # when it searches for 3, then it is refused and nothing is held
    refused = acs.call("POST", path, {**search, "quantity": 3}, api_version="2025-06-01")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "TooManyHeldNumbers"
    assert "Retry-After" not in refused  # the SDK would sleep out a 16-minute hold
    assert not PhoneNumber.objects.filter(status=NumberStatus.HELD).exists()

    # when it holds 2, then a third is refused until they are released
    assert (
        acs.call("POST", path, {**search, "quantity": 2}, api_version="2025-06-01").status_code
        == 202
    )
    again = acs.call("POST", path, {**search, "quantity": 1}, api_version="2025-06-01")
    assert again.status_code == 409
    assert PhoneNumber.objects.filter(status=NumberStatus.HELD).count() == 2


def test_call_invites_and_calls_at_once_are_limited_per_identity(
    resource, limits, settings
) -> None:
    # given a caller allowed 3 invites per minute and 2 calls at once
    limits(call_invites=(3, 60))
    settings.MAX_CALLS_PER_IDENTITY = 2
    caller, token = accounts.create_identity(resource, scopes=["voip"])
    callees = [accounts.create_identity(resource)[0] for _ in range(4)]
    principal = accounts.authenticate_token(token.token)  # type: ignore[union-attr]

    # when it rings two, then a third call at once is refused
    for callee in callees[:2]:
        signaling.invite(principal, {"to": callee.raw_id}, "socket-1")
    with pytest.raises(TooManyCalls):
        signaling.invite(principal, {"to": callees[2].raw_id}, "socket-1")

    # when the calls end, then the invite quota (3 per minute, the refused one counted) holds
    for call in caller_calls(caller.raw_id):
        signaling.hang_up(principal, call)
    with pytest.raises(quotas.QuotaExceeded):
        signaling.invite(principal, {"to": callees[3].raw_id}, "socket-1")


def caller_calls(raw_id: str) -> list[str]:
    from apps.calls.models import Call

    return [
        str(pk) for pk in Call.objects.filter(caller_raw_id=raw_id).values_list("pk", flat=True)
    ]


# --- Sign-ins ----------------------------------------------------------------------------------
def _console_sign_in(username: str, password: str):
    return Client().post("/login/", {"username": username, "password": password})


def test_failed_console_sign_ins_pause_the_account_without_telling_it_exists(
    make_user, limits, clock
) -> None:
    # given an account, allowed 3 failed sign-ins per 15 minutes
    limits(sign_in_account=(3, 900))
    make_user("alice")
    for _ in range(3):
        assert _console_sign_in("alice", "wrong").status_code == 200  # the form again

    # when even the right password comes now, then it is refused, saying why
    page = _console_sign_in("alice", "correct horse battery")
    assert page.status_code == 200 and b"Too many failed sign-ins" in page.content

    # and a name without an account gets exactly the same treatment
    for _ in range(3):
        _console_sign_in("nobody", "wrong")
    assert b"Too many failed sign-ins" in _console_sign_in("nobody", "x").content

    # when the window has slid past, then the right password works again
    clock.now += 1801
    assert _console_sign_in("alice", "correct horse battery").status_code == 302


def test_failed_basic_auth_is_paused_with_429_per_address(make_user, limits) -> None:
    # given 3 failed sign-ins allowed per address, spread over several account names
    limits(sign_in_address=(3, 900))
    make_user("bob")

    def basic(user: str, password: str):
        api = APIClient()
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return api.get("/api/v1/resources/", HTTP_AUTHORIZATION=f"Basic {token}")

    for name in ("a", "b", "c"):
        assert basic(name, "guess").status_code == 401

    # when / then every attempt from that address is paused, the right password too
    refused = basic("bob", "correct horse battery")
    _refused(refused, 900)


def test_a_good_sign_in_clears_the_accounts_failures(make_user, limits) -> None:
    limits(sign_in_account=(3, 900))
    make_user("carol")
    for _ in range(2):
        _console_sign_in("carol", "wrong")
    assert _console_sign_in("carol", "correct horse battery").status_code == 302
    for _ in range(2):
        _console_sign_in("carol", "wrong")
    assert _console_sign_in("carol", "correct horse battery").status_code == 302


def test_sign_ups_are_limited_per_address(limits) -> None:
    # given an address allowed 2 sign-up attempts an hour
    limits(sign_ups=(2, 3600))
    form = {"email": "x@example.com", "password1": "a long pass phrase 1", "password2": "x"}

    # when it tries a third time (probing for taken names, say), then it is refused
    for name in ("probe1", "probe2"):
        Client().post("/signup/", {**form, "username": name})
    page = Client().post(
        "/signup/",
        {
            "username": "real",
            "email": "real@example.com",
            "password1": "a long pass phrase 1",
            "password2": "a long pass phrase 1",
        },
    )
    assert page.status_code == 200 and b"sign-ups from one address" in page.content
    from django.contrib.auth.models import User

    assert not User.objects.filter(username="real").exists()


# --- Leases: a busy key counted in batches, never past its limit ---------------------------
BIG = (1000, 30)  # leases of 10 (1/100 of the limit)


def _count_calls(monkeypatch) -> list[int]:
    """What each round trip to the cache added to the count."""
    added: list[int] = []
    count = quotas._counts

    def counting(*args, **kwargs):
        added.append(kwargs["add"])
        return count(*args, **kwargs)

    monkeypatch.setattr(quotas, "_counts", counting)
    return added


def test_a_busy_key_goes_to_the_cache_once_per_lease_not_per_request(clock, monkeypatch) -> None:
    added = _count_calls(monkeypatch)
    for _ in range(25):
        quotas.spend("t", "k", BIG, what="testing")

    assert added == [10, 10, 10]


def test_with_leases_a_key_is_refused_exactly_at_its_limit(clock, monkeypatch) -> None:
    # given a limit that is not a whole number of leases (of 10)
    added = _count_calls(monkeypatch)
    for _ in range(1005):
        quotas.spend("t", "k", (1005, 30), what="testing")

    # then the 1,006th is refused; the lease that did not fit was given back and the last
    # requests were counted one by one
    with pytest.raises(quotas.QuotaExceeded):
        quotas.spend("t", "k", (1005, 30), what="testing")
    assert added[:100] == [10] * 100 and added[101:] == [1] * 5


def test_processes_holding_leases_never_let_a_key_pass_its_limit(clock, monkeypatch) -> None:
    # given three web processes, each with its own leases, taking requests in turn
    processes = [quotas.Leases() for _ in range(3)]
    allowed = 0
    for turn in range(1500):
        monkeypatch.setattr(quotas, "leases", processes[turn % 3])
        try:
            quotas.spend("t", "k", BIG, what="testing")
            allowed += 1
        except quotas.QuotaExceeded:
            pass

    # then never more than the limit; early by at most what the other two held unspent
    assert 1000 - 2 * 10 <= allowed <= 1000


def test_with_leases_refused_requests_still_count(clock) -> None:
    for _ in range(1000):
        quotas.spend("t", "k", BIG, what="testing")
    for _ in range(200):  # a client that keeps hammering
        with pytest.raises(quotas.QuotaExceeded):
            quotas.spend("t", "k", BIG, what="testing")

    # 10% into the next window: (1,000 + 200 refused) * 0.9 > 1,000, so still refused
    clock.now += 30 - (clock.now % 30) + 3
    with pytest.raises(quotas.QuotaExceeded):
        quotas.spend("t", "k", BIG, what="testing")


# --- A batch's requests counted at once (the chat message route's) ---------------------------
def test_a_batch_counts_all_its_keys_in_one_round_trip_each_request_in_its_order(
    clock, monkeypatch
) -> None:
    # given one of a's three requests spent before
    quotas.spend("t", "a", (3, 10), what="testing")
    trips: list[list[tuple[str, str, int]]] = []
    count_many = quotas._counts_many

    def counting(windows, ttl):
        trips.append(list(windows))
        return count_many(windows, ttl)

    monkeypatch.setattr(quotas, "_counts_many", counting)

    # when a batch holds four more of a's and two of b's
    verdicts = quotas.spend_all("t", ["a", "b", "a", "a", "b", "a"], (3, 10), what="testing")

    # then one round trip counted them all, and a's third and fourth of the batch are refused
    assert len(trips) == 1 and sorted(add for *_, add in trips[0]) == [2, 4]
    assert [v is None for v in verdicts] == [True, True, True, False, True, False]
    refused = verdicts[3]
    assert isinstance(refused, quotas.QuotaExceeded) and 1 <= refused.retry_after <= 10
    assert "testing is limited to 3 per 10 s" in refused.message
    # and the counts are shared with spend(): b has one left, a none (its refusals counted)
    quotas.spend("t", "b", (3, 10), what="testing")
    for key in ("a", "b"):
        with pytest.raises(quotas.QuotaExceeded):
            quotas.spend("t", key, (3, 10), what="testing")


def test_a_batch_is_not_held_up_by_an_unreachable_cache_nor_counted_without_a_limit(
    clock, monkeypatch, caplog
) -> None:
    def unreachable(windows, ttl):
        raise ConnectionError("the cache is away")

    monkeypatch.setattr(quotas, "_counts_many", unreachable)
    assert quotas.spend_all("t", ["a", "a"], (1, 10), what="testing") == [None, None]
    assert "not checked: the cache is unreachable" in caplog.text
    assert quotas.spend_all("t", ["a", "a"], None, what="testing") == [None, None]
    assert quotas.spend_all("t", [], (1, 10), what="testing") == []
