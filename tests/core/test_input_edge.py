"""Input checked once, at the edge: every API refuses text no database stores (a lone UTF-16
surrogate, a NUL), over-deep JSON, numbers no column holds and bytes that are not UTF-8 with a
400 in the ACS shape (or 404 for an id in the path), and a refused request changes nothing.

The matrices are built from one list of routes (`apps/*/api/urls.py` and `acs_urls.py`): each
string field of each body gets each bad value; each body route gets each bad document; each id
in a path and each query parameter gets each bad escape."""

from __future__ import annotations

import itertools
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import quote

import pytest
from django.apps import apps as django_apps
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.automation.models import CallConnection, ConnectionState, Recording, RecordingState
from apps.calls import rooms
from apps.calls.models import Call, CallKind, CallLegState, CallParticipant, CallState, CallTopology
from apps.chat import services as chat
from apps.core import parsers
from apps.numbers import orders
from apps.numbers.models import AssignmentType, Capability, NumberStatus
from apps.sms.models import OptOut
from tests.conftest import AcsClient

pytestmark = pytest.mark.django_db

EDGE_MIDDLEWARE = "apps.core.api.input_edge_middleware"


@pytest.fixture(autouse=True)
def edge_middleware(settings: Any) -> None:
    """The edge middleware in place, where spool/settings.py does not list it yet."""
    if EDGE_MIDDLEWARE not in settings.MIDDLEWARE:
        middleware = list(settings.MIDDLEWARE)
        middleware.insert(
            middleware.index("corsheaders.middleware.CorsMiddleware") + 1, EDGE_MIDDLEWARE
        )
        settings.MIDDLEWARE = middleware


def test_the_edge_middleware_is_installed() -> None:
    from tests import settings as configured  # as configured, not as the fixture above sets it

    assert EDGE_MIDDLEWARE in configured.MIDDLEWARE


# --- The reader itself --------------------------------------------------------------------------
READER_REFUSES: list[tuple[str, str | bytes, str, str | None]] = [
    # (id, JSON text, code, target)
    ("not JSON", "{nope", "InvalidJson", None),
    ("NaN", '{"a": NaN}', "InvalidJson", None),
    ("Infinity", '{"a": -Infinity}', "InvalidJson", None),
    ("a UTF-8 byte-order mark", b'\xef\xbb\xbf{"a": 1}', "InvalidJson", None),
    ("invalid UTF-8", b'{"a": "\xff"}', "InvalidJson", None),
    ("a raw surrogate (CESU-8)", b'{"a": "\xed\xa0\x80"}', "InvalidJson", None),
    ("an overlong NUL", b'{"a": "\xc0\x80"}', "InvalidJson", None),
    ("33 levels deep", "[" * 33 + "]" * 33, "InvalidJson", None),
    ("33 levels deep in objects", '{"a":' * 33 + "1" + "}" * 33, "InvalidJson", None),
    ("100,000 levels deep", "[" * 100_000 + "]" * 100_000, "InvalidJson", None),
    ("a lone high surrogate", '{"a": "x\\ud800"}', "InvalidRequest", "a"),
    ("a lone low surrogate", '{"a": "\\udc00x"}', "InvalidRequest", "a"),
    ("surrogates in the wrong order", '{"a": "\\ude00\\ud83d"}', "InvalidRequest", "a"),
    ("a NUL", '{"a": "x\\u0000"}', "InvalidRequest", "a"),
    ("a surrogate in a key", '{"\\ud800": 1}', "InvalidRequest", None),
    ("a NUL in a nested key", '{"a": {"b\\u0000": 1}}', "InvalidRequest", "a"),
    ("a control character in a key", '{"a": [{"b\\u001b": 1}]}', "InvalidRequest", "a[0]"),
    ("a DEL in a key", '{"a\\u007f": 1}', "InvalidRequest", None),
    ("a C1 control in a key", '{"a\\u0085": 1}', "InvalidRequest", None),
    ("a surrogate in a list", '{"a": ["ok", "\\udfff"]}', "InvalidRequest", "a[1]"),
    ("a surrogate at the root", '"\\ud800"', "InvalidRequest", None),
    ("a 4,301-digit integer", '{"a": ' + "1" * 4301 + "}", "InvalidRequest", "a"),
    ("a 100,000-digit integer", '{"a": -' + "1" * 100_000 + "}", "InvalidRequest", "a"),
    ("2**63", '{"a": 9223372036854775808}', "InvalidRequest", "a"),
    ("-2**63 - 1", '{"a": -9223372036854775809}', "InvalidRequest", "a"),
    ("1e400", '{"a": [1e400]}', "InvalidRequest", "a[0]"),
    ("-1e400", '{"a": -1e400}', "InvalidRequest", "a"),
    ("a metadata value", '{"metadata": {"k": "\\ud800"}}', "InvalidRequest", "metadata"),
    ("a metadata key", '{"x": {"metadata": {"\\ud800": "v"}}}', "InvalidRequest", "x.metadata"),
    ("an identifier", '{"p": [{"id": {"rawId": "\\ud800"}}]}', "InvalidRequest", "p[0].id"),
    ("an identifier without rawId", '{"p": {"communicationUser": {"id": "\\u0000"}}}', "InvalidRequest", "p"),
    ("an identifier at the root", '{"rawId": "8:acs:\\ud800"}', "InvalidRequest", "rawId"),
]  # fmt: skip

READER_ACCEPTS: list[tuple[str, str, Any]] = [
    ("32 levels deep", "[" * 32 + "]" * 32, [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]),
    ("64-bit bounds", '[9223372036854775807, -9223372036854775808]', [2**63 - 1, -(2**63)]),
    ("a surrogate pair", '{"a": "\\ud83d\\ude00"}', {"a": "\U0001f600"}),
    ("newlines and tabs in values", '{"a": "x\\ny\\tz\\r"}', {"a": "x\ny\tz\r"}),
    ("other control characters in values", '{"a": "\\u0007\\u001b"}', {"a": "\x07\x1b"}),
    ("large finite floats", '{"a": 1e308, "b": 123456789012345678901234567890.5}', {"a": 1e308, "b": 1.2345678901234568e29}),
    ("noncharacters", '{"a": "\\uffff\\ufffe"}', {"a": "\uffff\ufffe"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "code", "target"),
    [case[1:] for case in READER_REFUSES],
    ids=[case[0] for case in READER_REFUSES],
)
def test_the_reader_refuses(text: str | bytes, code: str, target: str | None) -> None:
    with pytest.raises(parsers.InvalidInput) as refused:
        parsers.loads(text)
    assert (refused.value.code, refused.value.target) == (code, target)
    assert refused.value.status == 400
    refused.value.message.encode()  # the message itself is text (it shows the escape)
    assert refused.value.message.isprintable()


@pytest.mark.parametrize(
    ("text", "value"),
    [case[1:] for case in READER_ACCEPTS],
    ids=[case[0] for case in READER_ACCEPTS],
)
def test_the_reader_accepts(text: str, value: Any) -> None:
    assert parsers.loads(text) == value


@pytest.mark.parametrize(
    ("value", "single_line", "text"),
    [
        ("+14255550100", True, True),
        ("Zoë 😀", True, True),
        ("a\nb", False, True),
        ("a\tb\r\n", False, True),
        ("a\x07b", False, False),
        ("a\x1bb", False, False),
        ("a\x7fb", False, False),
        ("a\x85b", False, False),
        ("a\x00b", False, False),
        ("a\ud800b", False, False),
    ],
)
def test_text_predicates(value: str, single_line: bool, text: bool) -> None:
    assert parsers.is_single_line(value) is single_line
    assert parsers.is_text(value) is text


_TEXT = st.text(st.characters(blacklist_categories=()), max_size=8)
_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=20,
)


def _outcome(read: Any, text: str) -> Any:
    try:
        return ("value", read(text))
    except parsers.InvalidInput as refused:
        return ("refused", refused.code, refused.target)


def _always_walk(text: str) -> Any:
    numbers = parsers._Numbers()
    try:
        data = json.loads(
            text,
            parse_int=numbers.parse_int,
            parse_float=numbers.parse_float,
            parse_constant=parsers._refuse_constant,
        )
    except RecursionError:
        raise parsers.InvalidInput("deep", code="InvalidJson") from None
    except ValueError:
        raise parsers.InvalidInput("bad", code="InvalidJson") from None
    parsers._report(data, parsers.MAX_DEPTH)  # the slow walk, every time
    return data


@hypothesis_settings(max_examples=400, deadline=None)
@given(value=_VALUES, wrap=st.integers(min_value=0, max_value=36), ascii_only=st.booleans())
def test_the_readers_shortcuts_agree_with_the_full_walk(
    value: Any, wrap: int, ascii_only: bool
) -> None:
    # given any JSON document, its strings with any character (lone surrogates too), nested
    # up to 36 levels deeper, written with escapes or raw
    for _ in range(wrap):
        value = [value]
    try:
        text = json.dumps(value, ensure_ascii=ascii_only)
    except ValueError:  # inf: not JSON
        return

    # then the reader's fast paths answer as the walk over everything does
    assert _outcome(parsers.loads, text) == _outcome(_always_walk, text)


# --- The world every request runs against ------------------------------------------------------
LATER = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
EVEN_LATER = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
RESERVATION = str(uuid.uuid4())  # a reservation id not used yet (PATCH creates)
SNAPSHOT_SKIP = {"RequestLog", "WorkerHeartbeat", "Session"}


class World:
    """A resource, and each other object a route names (`{identity}`, `{thread}`...), made the
    first time a route names it: a case pays only for what its route uses."""

    def __init__(self, resource: Resource, owner: Any, make_numbers: Any, make_user: Any) -> None:
        self.resource = resource
        self.acs = AcsClient(resource, resource.primary_key)
        self.manager = APIClient()
        self.manager.force_authenticate(owner)
        self._make_numbers = make_numbers
        self._make_user = make_user
        self.names: dict[str, str] = {
            "slug": resource.slug,
            "country": "US",
            "reservation": RESERVATION,
            "handset": "+14255550199",
            "uuid": str(uuid.uuid4()),
        }

    def name(self, name: str) -> str:
        if name not in self.names:
            getattr(self, f"_make_{name}")()
        return self.names[name]

    def fill(self, value: Any, *, in_path: bool = False) -> Any:
        if isinstance(value, str):
            return re.sub(
                r"\{(\w+)\}",
                lambda m: quote(self.name(m[1]), safe="") if in_path else self.name(m[1]),
                value,
            )
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, dict):
            return {self.fill(k): self.fill(v) for k, v in value.items()}
        return value

    def prepare(self, route: Route) -> None:
        """Make everything the route names, before a snapshot is taken."""
        self.fill([route.path, route.body, route.query])
        if route.auth == "bearer":
            self.name("identity")

    @cached_property
    def bearer(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self._token}")
        return client

    def _make_identity(self) -> None:
        identity, token = accounts.create_identity(self.resource, scopes=["chat", "voip"])
        assert token is not None
        self._token = token.token
        self._principal = accounts.TokenPrincipal(
            identity=identity, scopes=frozenset(["chat", "voip"])
        )
        self.names["identity"] = identity.raw_id

    def _make_sender(self) -> None:
        numbers = self._make_numbers(4)
        sender = numbers[0]
        sender.status = NumberStatus.OWNED
        sender.owner = self.resource
        sender.owned_sms = sender.owned_calling = Capability.BOTH
        sender.owned_assignment_type = AssignmentType.APPLICATION
        sender.purchased_at = timezone.now()
        sender.save()
        self.names.update(sender=sender.number, number=sender.number)
        self.names["available_id"] = numbers[3].number.lstrip("+")

    _make_number = _make_available_id = _make_sender

    def _make_search(self) -> None:
        self.name("sender")
        search = orders.do_search(
            self.resource,
            orders.check_search_request(
                "US",
                {"phoneNumberType": "geographic", "assignmentType": "application",
                 "capabilities": {"calling": "outbound", "sms": "none"}},
            ),
        )  # fmt: skip
        self.names.update(search=str(search.search_id), operation=str(search.pk))

    _make_operation = _make_search

    def _make_room(self) -> None:
        participants = {self.name("identity"): {"role": "Presenter"}}
        self.names["room"] = str(
            rooms.create_room(self.resource, {"participants": participants}).pk
        )

    def _make_thread(self) -> None:
        self.name("identity")
        thread, _ = chat.create_thread(self._principal, {"topic": "t"})
        message = chat.send_message(self._principal, thread.id, {"content": "hello"})
        self.names.update(thread=thread.id, message=str(message.pk))

    _make_message = _make_thread

    def _make_member(self) -> None:
        member = accounts.add_member(self.resource, self._make_user("reader").username, "reader")
        self.names["member"] = str(member.pk)

    def _make_connection(self) -> None:
        """A call between an identity and the application, connected, with a stopped
        recording."""
        now = timezone.now()
        call = Call.objects.create(
            resource=self.resource, kind=CallKind.GROUP, topology=CallTopology.BRIDGE,
            caller_raw_id=self.name("identity"), state=CallState.CONNECTED, created_at=now,
        )  # fmt: skip
        CallParticipant.objects.create(
            call=call, raw_id=self.name("identity"), is_caller=True, state=CallLegState.CONNECTED,
            joined_at=now,
        )  # fmt: skip
        connection = CallConnection.objects.create(
            resource=self.resource, call=call, callback_uri="https://app.example/cb",
            source_raw_id=self.name("identity"), state=ConnectionState.CONNECTED, created_at=now,
        )  # fmt: skip
        recording = Recording.objects.create(
            id=uuid.uuid4().hex, resource=self.resource, call=call, connection=connection,
            state=RecordingState.ACTIVE, started_at=now,
        )  # fmt: skip
        self.names.update(connection=str(connection.pk), call=str(call.pk), recording=recording.pk)

    _make_call = _make_recording = _make_connection

    def _make_opt_out(self) -> None:
        opt_out = OptOut.objects.create(
            resource=self.resource, sender=self.name("sender"), recipient="+14255550199",
            source="api",
        )  # fmt: skip
        self.names["opt_out"] = str(opt_out.pk)


def state() -> dict[str, list[dict[str, Any]]]:
    """Every row of every table a request could change, to compare before and after."""
    return {
        model.__name__: list(model.objects.order_by("pk").values())
        for model in django_apps.get_models()
        if model.__name__ not in SNAPSHOT_SKIP
    }


@pytest.fixture
def world(resource: Resource, make_numbers: Any, owner: Any, make_user: Any) -> World:
    return World(resource, owner, make_numbers, make_user)


# --- Routes -------------------------------------------------------------------------------------
AUTOMATION, CALLS = "2026-03-12", "/calling/callConnections"
IDENTITY, SMS, OPT_OUT, NUMBERS, ROOMS, RELAY, CHAT = (
    "2023-10-01", "2021-03-07", "2025-01-15-preview", "2025-06-01", "2025-03-13",
    "2022-03-01-preview", "2024-03-07",
)  # fmt: skip
SIP = "2023-03-01"


@dataclass(frozen=True)
class Route:
    """One operation: `api` is `hmac` (an api-version), `bearer` (chat) or `manage`."""

    name: str
    method: str
    path: str
    auth: str
    version: str = ""
    body: Any = None
    fields: tuple[str, ...] = ()  # string values: "a.b[0]" or "a.b[0]=>target"
    keys: tuple[str, ...] = ()  # object keys of the caller's choosing: "a.{key}=>target"
    query: str = ""

    def send(self, world: World, *, path: str | None = None, body: Any = None,
             raw_body: bytes | None = None, query: str | None = None) -> Any:  # fmt: skip
        path = world.fill(path if path is not None else self.path, in_path=True)
        data = raw_body if raw_body is not None else (
            json.dumps(body).encode() if body is not None else
            json.dumps(world.fill(self.body)).encode() if self.body is not None else b""
        )  # fmt: skip
        query = world.fill(query if query is not None else self.query)
        if self.auth == "hmac":
            full = f"api-version={self.version}" + (f"&{query}" if query else "")
            return world.acs.call(self.method, path, raw_body=data, query=full)
        client = world.bearer if self.auth == "bearer" else world.manager
        if self.auth == "bearer":
            query = f"api-version={self.version}" + (f"&{query}" if query else "")
        url = path + (f"?{query}" if query else "")
        return client.generic(self.method, url, data, content_type="application/json")


def acs(name: str, method: str, path: str, version: str, body: Any = None, **kw: Any) -> Route:
    return Route(name, method, path, "hmac", version, body, **kw)


def chat_route(name: str, method: str, path: str, body: Any = None, **kw: Any) -> Route:
    return Route(name, method, f"/r/{{slug}}/chat{path}", "bearer", CHAT, body, **kw)


def manage(name: str, method: str, path: str, body: Any = None, **kw: Any) -> Route:
    return Route(name, method, f"/api/v1/{path}", "manage", "", body, **kw)


CAPABILITIES = {"calling": "outbound", "sms": "none"}
SEARCH = {"phoneNumberType": "geographic", "assignmentType": "application", "capabilities": CAPABILITIES, "areaCode": "425", "quantity": 1}  # fmt: skip
TEAMS = "/teamsUser/:exchangeAccessToken"
ROUTES: list[Route] = [
    # Identity
    acs("create identity", "POST", "/identities", IDENTITY, {"createTokenWithScopes": ["chat"], "expiresInMinutes": 60}, fields=("createTokenWithScopes[0]",)),
    acs("delete identity", "DELETE", "/identities/{identity}", IDENTITY),
    acs("issue token", "POST", "/identities/{identity}/:issueAccessToken", IDENTITY, {"scopes": ["chat", "voip"], "expiresInMinutes": 60}, fields=("scopes[0]", "scopes[1]")),
    acs("revoke tokens", "POST", "/identities/{identity}/:revokeAccessTokens", IDENTITY),
    acs("exchange Teams token", "POST", TEAMS, IDENTITY, {"token": "t", "appId": "a", "userId": "u"}, fields=("token", "appId", "userId")),
    # SMS
    acs("send SMS", "POST", "/sms", SMS, {"from": "{sender}", "smsRecipients": [{"to": "+14255550199", "repeatabilityRequestId": "r-1", "repeatabilityFirstSent": "Thu, 01 Jan 2026 00:00:00 GMT"}], "message": "hi", "smsSendOptions": {"enableDeliveryReport": True, "tag": "t"}},
        fields=("from", "smsRecipients[0].to", "smsRecipients[0].repeatabilityRequestId", "smsRecipients[0].repeatabilityFirstSent", "message", "smsSendOptions.tag")),
    *[acs(f"opt-outs {action}", "POST", f"/sms/optouts:{action}", OPT_OUT, {"from": "{sender}", "recipients": [{"to": "+14255550199"}, {"to": "+14255550198"}]}, fields=("from", "recipients[0].to", "recipients[1].to"))
      for action in ("add", "remove", "check")],
    # Phone numbers
    acs("countries", "GET", "/availablePhoneNumbers/countries", NUMBERS, query="skip=0&maxPageSize=10"),
    acs("localities", "GET", "/availablePhoneNumbers/countries/{country}/localities", NUMBERS, query="administrativeDivision=WA&phoneNumberType=geographic"),
    acs("area codes", "GET", "/availablePhoneNumbers/countries/{country}/areaCodes", NUMBERS, query="phoneNumberType=geographic&assignmentType=application&locality=Redmond&administrativeDivision=WA"),
    acs("offerings", "GET", "/availablePhoneNumbers/countries/{country}/offerings", NUMBERS, query="phoneNumberType=geographic&assignmentType=application"),
    acs("search", "POST", "/availablePhoneNumbers/countries/{country}/:search", NUMBERS, SEARCH, fields=("phoneNumberType", "assignmentType", "capabilities.calling", "capabilities.sms", "areaCode")),
    acs("browse", "POST", "/availablePhoneNumbers/countries/{country}/:browse", NUMBERS, {"phoneNumberType": "geographic", "assignmentType": "application", "capabilities": CAPABILITIES, "phoneNumberPrefixes": ["425"]},
        fields=("phoneNumberType", "assignmentType", "capabilities.calling", "capabilities.sms", "phoneNumberPrefixes[0]")),
    acs("search result", "GET", "/availablePhoneNumbers/searchResults/{search}", NUMBERS),
    acs("purchase", "POST", "/availablePhoneNumbers/:purchase", NUMBERS, {"searchId": "{search}", "agreeToNotResell": True}, fields=("searchId",)),
    acs("reservations", "GET", "/availablePhoneNumbers/reservations", NUMBERS, query="maxPageSize=10"),
    acs("reservation", "GET", "/availablePhoneNumbers/reservations/{reservation}", NUMBERS),
    acs("reserve", "PATCH", "/availablePhoneNumbers/reservations/{reservation}", NUMBERS, {"phoneNumbers": {"{available_id}": {"id": "{available_id}", "phoneNumberType": "geographic", "assignmentType": "application", "capabilities": CAPABILITIES}}},
        fields=("phoneNumbers.{available_id}.id", "phoneNumbers.{available_id}.phoneNumberType", "phoneNumbers.{available_id}.assignmentType", "phoneNumbers.{available_id}.capabilities.calling"),
        keys=("phoneNumbers.{available_id}=>phoneNumbers",)),
    acs("delete reservation", "DELETE", "/availablePhoneNumbers/reservations/{reservation}", NUMBERS),
    acs("purchase reservation", "POST", "/availablePhoneNumbers/reservations/{reservation}/:purchase", NUMBERS),
    acs("operation", "GET", "/phoneNumbers/operations/{operation}", NUMBERS),
    acs("owned numbers", "GET", "/phoneNumbers", NUMBERS, query="skip=0&top=10"),
    acs("operator information", "POST", "/operatorInformation/:search", NUMBERS, {"phoneNumbers": ["{sender}", "+442071838750"], "options": {"includeAdditionalOperatorDetails": True}}, fields=("phoneNumbers[0]", "phoneNumbers[1]")),
    acs("capabilities", "PATCH", "/phoneNumbers/{number}/capabilities", NUMBERS, {"calling": "inbound+outbound", "sms": "inbound+outbound"}, fields=("calling", "sms")),
    acs("owned number", "GET", "/phoneNumbers/{number}", NUMBERS),
    acs("release", "DELETE", "/phoneNumbers/{number}", NUMBERS),
    # Rooms and relays
    acs("create room", "POST", "/rooms", ROOMS, {"validFrom": LATER, "validUntil": EVEN_LATER, "pstnDialOutEnabled": False, "participants": {"{identity}": {"role": "Presenter"}}},
        fields=("validFrom", "validUntil", "participants.{identity}.role"), keys=("participants.{identity}=>participants",)),
    acs("rooms", "GET", "/rooms", ROOMS, query="maxPageSize=10"),
    acs("room", "GET", "/rooms/{room}", ROOMS),
    acs("update room", "PATCH", "/rooms/{room}", ROOMS, {"validFrom": LATER, "validUntil": EVEN_LATER}, fields=("validFrom", "validUntil")),
    acs("delete room", "DELETE", "/rooms/{room}", ROOMS),
    acs("room participants", "GET", "/rooms/{room}/participants", ROOMS),
    acs("update room participants", "PATCH", "/rooms/{room}/participants", ROOMS, {"participants": {"{identity}": {"role": "Attendee"}}},
        fields=("participants.{identity}.role",), keys=("participants.{identity}=>participants",)),
    # SIP routing
    acs("SIP configuration", "GET", "/sip", SIP),
    acs("update SIP configuration", "PATCH", "/sip", SIP, {"trunks": {"sbc.example.com": {"sipSignalingPort": 5061}}, "routes": [{"name": "r", "description": "d", "numberPattern": "^\\+1[0-9]+$", "trunks": ["sbc.example.com"]}]},
        fields=("routes[0].name", "routes[0].description", "routes[0].numberPattern", "routes[0].trunks[0]")),
    acs("relay configuration", "POST", "/networkTraversal/:issueRelayConfiguration", RELAY, {"id": "{identity}", "routeType": "any", "ttl": 3600}, fields=("id", "routeType")),
    # Call Automation
    acs("create call", "POST", CALLS, AUTOMATION, {"targets": [{"rawId": "{identity}"}], "callbackUri": "https://app.example/cb", "operationContext": "o", "sourceDisplayName": "d"},
        fields=("targets[0].rawId=>targets[0]", "callbackUri", "operationContext", "sourceDisplayName")),
    acs("answer call", "POST", f"{CALLS}:answer", AUTOMATION, {"incomingCallContext": "c", "callbackUri": "https://app.example/cb"}, fields=("incomingCallContext", "callbackUri")),
    acs("redirect call", "POST", f"{CALLS}:redirect", AUTOMATION, {"incomingCallContext": "c", "target": {"rawId": "{identity}"}}, fields=("incomingCallContext", "target.rawId=>target")),
    acs("reject call", "POST", f"{CALLS}:reject", AUTOMATION, {"incomingCallContext": "c", "callRejectReason": "busy"}, fields=("incomingCallContext", "callRejectReason")),
    acs("connect call", "POST", f"{CALLS}:connect", AUTOMATION, {"callLocator": {"kind": "serverCallLocator", "serverCallId": "{call}"}, "callbackUri": "https://app.example/cb"}, fields=("callLocator.serverCallId", "callbackUri")),
    acs("call connection", "GET", f"{CALLS}/{{connection}}", AUTOMATION),
    acs("hang up", "DELETE", f"{CALLS}/{{connection}}", AUTOMATION),
    acs("terminate", "POST", f"{CALLS}/{{connection}}:terminate", AUTOMATION),
    acs("transfer", "POST", f"{CALLS}/{{connection}}:transferToParticipant", AUTOMATION, {"targetParticipant": {"rawId": "{identity}"}, "operationContext": "o"}, fields=("targetParticipant.rawId=>targetParticipant", "operationContext")),
    acs("play", "POST", f"{CALLS}/{{connection}}:play", AUTOMATION, {"playSources": [{"kind": "text", "text": {"text": "hi", "voiceName": "en-US-JennyNeural"}}], "operationContext": "o"},
        fields=("playSources[0].kind", "playSources[0].text.text", "playSources[0].text.voiceName", "operationContext")),
    acs("recognize", "POST", f"{CALLS}/{{connection}}:recognize", AUTOMATION, {"recognizeInputType": "dtmf", "recognizeOptions": {"targetParticipant": {"rawId": "{identity}"}, "dtmfOptions": {"stopTones": ["pound"]}}},
        fields=("recognizeInputType", "recognizeOptions.targetParticipant.rawId=>recognizeOptions.targetParticipant", "recognizeOptions.dtmfOptions.stopTones[0]")),
    acs("recognize speech", "POST", f"{CALLS}/{{connection}}:recognize", AUTOMATION, {"recognizeInputType": "speechOrDtmf", "recognizeOptions": {"targetParticipant": {"rawId": "{identity}"}, "speechLanguage": "en-US", "speechOptions": {"endSilenceTimeoutInMs": 1000}, "dtmfOptions": {"stopTones": ["pound"]}}},
        fields=("recognizeInputType", "recognizeOptions.targetParticipant.rawId=>recognizeOptions.targetParticipant", "recognizeOptions.speechLanguage", "recognizeOptions.dtmfOptions.stopTones[0]")),
    acs("cancel media", "POST", f"{CALLS}/{{connection}}:cancelAllMediaOperations", AUTOMATION),
    acs("send tones", "POST", f"{CALLS}/{{connection}}:sendDtmfTones", AUTOMATION, {"tones": ["one"], "targetParticipant": {"rawId": "{identity}"}}, fields=("tones[0]", "targetParticipant.rawId=>targetParticipant")),
    *[acs(f"{action}", "POST", f"{CALLS}/{{connection}}:{action}", AUTOMATION, {"targetParticipant": {"rawId": "{identity}"}}, fields=("targetParticipant.rawId=>targetParticipant",))
      for action in ("startContinuousDtmfRecognition", "stopContinuousDtmfRecognition", "hold", "unhold")],
    *[acs(f"{action}", "POST", f"{CALLS}/{{connection}}:{action}", AUTOMATION)
      for action in ("startMediaStreaming", "stopMediaStreaming", "startTranscription", "stopTranscription", "updateTranscription")],
    acs("call participants", "GET", f"{CALLS}/{{connection}}/participants", AUTOMATION),
    acs("call participant", "GET", f"{CALLS}/{{connection}}/participants/{{identity}}", AUTOMATION),
    acs("add call participant", "POST", f"{CALLS}/{{connection}}/participants:add", AUTOMATION, {"participantToAdd": {"rawId": "{identity}"}, "operationContext": "o"}, fields=("participantToAdd.rawId=>participantToAdd", "operationContext")),
    acs("remove call participant", "POST", f"{CALLS}/{{connection}}/participants:remove", AUTOMATION, {"participantToRemove": {"rawId": "{identity}"}}, fields=("participantToRemove.rawId=>participantToRemove",)),
    acs("mute call participant", "POST", f"{CALLS}/{{connection}}/participants:mute", AUTOMATION, {"targetParticipants": [{"rawId": "{identity}"}]}, fields=("targetParticipants[0].rawId=>targetParticipants[0]",)),
    acs("cancel add participant", "POST", f"{CALLS}/{{connection}}/participants:cancelAddParticipant", AUTOMATION, {"invitationId": "1"}, fields=("invitationId",)),
    acs("move participants", "POST", f"{CALLS}/{{connection}}/participants:moveHere", AUTOMATION),
    acs("start recording", "POST", "/calling/recordings", AUTOMATION, {"callLocator": {"kind": "serverCallLocator", "serverCallId": "{call}"}, "recordingFormatType": "wav"}, fields=("callLocator.serverCallId", "recordingFormatType")),
    acs("recording", "GET", "/calling/recordings/{recording}", AUTOMATION),
    acs("pause recording", "POST", "/calling/recordings/{recording}:pause", AUTOMATION),
    acs("resume recording", "POST", "/calling/recordings/{recording}:resume", AUTOMATION),
    acs("recording content", "GET", "/recordings/{recording}/content", AUTOMATION),
    acs("recording metadata", "GET", "/recordings/{recording}/metadata", AUTOMATION),
    # Chat (its own matrices are in tests/chat; here: the reader, ids in paths, queries)
    chat_route("create thread", "POST", "/threads", {"topic": "t", "metadata": {"k": "v"}, "participants": [{"communicationIdentifier": {"rawId": "{identity}", "communicationUser": {"id": "{identity}"}}, "displayName": "d", "metadata": {"k": "v"}}]},
        fields=("topic", "metadata.k=>metadata", "participants[0].communicationIdentifier.rawId=>participants[0].communicationIdentifier", "participants[0].communicationIdentifier.communicationUser.id=>participants[0].communicationIdentifier", "participants[0].displayName", "participants[0].metadata.k=>participants[0].metadata"),
        keys=("metadata.k=>metadata", "participants[0].metadata.k=>participants[0].metadata")),
    chat_route("threads", "GET", "/threads", query="maxPageSize=10&startTime=2020-01-01T00:00:00Z"),
    chat_route("thread", "GET", "/threads/{thread}"),
    chat_route("retitle", "PATCH", "/threads/{thread}", {"topic": "new"}, fields=("topic",)),
    chat_route("delete thread", "DELETE", "/threads/{thread}"),
    chat_route("messages", "GET", "/threads/{thread}/messages", query="maxPageSize=10&startTime=2020-01-01T00:00:00Z"),
    chat_route("send message", "POST", "/threads/{thread}/messages", {"content": "c", "senderDisplayName": "s", "type": "text", "metadata": {"k": "v"}},
        fields=("content", "senderDisplayName", "type", "metadata.k=>metadata"), keys=("metadata.k=>metadata",)),
    chat_route("message", "GET", "/threads/{thread}/messages/{message}"),
    chat_route("edit message", "PATCH", "/threads/{thread}/messages/{message}", {"content": "c2"}, fields=("content",)),
    chat_route("delete message", "DELETE", "/threads/{thread}/messages/{message}"),
    chat_route("participants", "GET", "/threads/{thread}/participants", query="maxPageSize=10&skip=0"),
    chat_route("add participants", "POST", "/threads/{thread}/participants/:add", {"participants": [{"communicationIdentifier": {"rawId": "{identity}"}, "displayName": "d"}]},
        fields=("participants[0].communicationIdentifier.rawId=>participants[0].communicationIdentifier", "participants[0].displayName")),
    chat_route("remove participant", "POST", "/threads/{thread}/participants/:remove", {"rawId": "{identity}"}, fields=("rawId",)),
    chat_route("typing", "POST", "/threads/{thread}/typing", {"senderDisplayName": "s"}, fields=("senderDisplayName",)),
    chat_route("read receipts", "GET", "/threads/{thread}/readReceipts"),
    chat_route("send read receipt", "POST", "/threads/{thread}/readReceipts", {"chatMessageId": "{message}"}, fields=("chatMessageId",)),
    # Management API
    manage("create resource", "POST", "resources/", {"name": "Another"}, fields=("name",)),
    manage("resource", "GET", "resources/{slug}/"),
    manage("rename resource", "PATCH", "resources/{slug}/", {"name": "Renamed"}, fields=("name",)),
    manage("keys", "GET", "resources/{slug}/keys/"),
    manage("regenerate key", "POST", "resources/{slug}/keys/regenerate/", {"key": "primary"}, fields=("key",)),
    manage("add member", "POST", "resources/{slug}/members/", {"user": "owner", "role": "reader"}, fields=("user", "role")),
    manage("change member", "PATCH", "resources/{slug}/members/{member}/", {"role": "contributor"}, fields=("role",)),
    manage("members", "GET", "resources/{slug}/members/", query="limit=10&offset=0"),
    manage("create identity (manage)", "POST", "resources/{slug}/identities/", {"scopes": ["chat"], "expiresInMinutes": 60}, fields=("scopes[0]",)),
    manage("identities", "GET", "resources/{slug}/identities/", query="limit=10&offset=0"),
    manage("identity", "GET", "resources/{slug}/identities/{identity}/"),
    manage("delete identity (manage)", "DELETE", "resources/{slug}/identities/{identity}/"),
    manage("issue token (manage)", "POST", "resources/{slug}/identities/{identity}/token/", {"scopes": ["chat"]}, fields=("scopes[0]",)),
    manage("revoke (manage)", "POST", "resources/{slug}/identities/{identity}/revoke/"),
    manage("numbers", "GET", "resources/{slug}/numbers/", query="limit=10&offset=0"),
    manage("number", "GET", "resources/{slug}/numbers/{number}/"),
    manage("set destination", "PATCH", "resources/{slug}/numbers/{number}/", {"inboundDestination": "https://example.com/in"}, fields=("inboundDestination",)),
    manage("release (manage)", "DELETE", "resources/{slug}/numbers/{number}/"),
    manage("search (manage)", "POST", "resources/{slug}/numbers/searches/", {"country": "US", **SEARCH}, fields=("country", "phoneNumberType", "assignmentType", "capabilities.calling", "capabilities.sms", "areaCode")),
    manage("search (manage) detail", "GET", "resources/{slug}/numbers/searches/{search}/"),
    manage("purchase (manage)", "POST", "resources/{slug}/numbers/searches/{search}/purchase/"),
    manage("operation (manage)", "GET", "resources/{slug}/numbers/operations/{operation}/"),
    manage("subscribe", "POST", "resources/{slug}/event-subscriptions/", {"name": "hook", "endpoint_url": "https://example.com/hook", "event_types": ["Microsoft.Communication.SMSReceived"], "schema": "EventGrid"},
        fields=("name", "endpoint_url", "event_types[0]", "schema")),
    manage("subscriptions", "GET", "resources/{slug}/event-subscriptions/", query="limit=10&offset=0"),
    manage("subscription", "GET", "resources/{slug}/event-subscriptions/{uuid}/"),
    manage("enable subscription", "PATCH", "resources/{slug}/event-subscriptions/{uuid}/", {"enabled": True}),
    manage("unsubscribe", "DELETE", "resources/{slug}/event-subscriptions/{uuid}/"),
    manage("revalidate subscription", "POST", "resources/{slug}/event-subscriptions/{uuid}/validate/"),
    manage("test-fire", "POST", "resources/{slug}/event-subscriptions/{uuid}/test/"),
    manage("events", "GET", "resources/{slug}/events/", query="type=Microsoft.Communication.SMSReceived&limit=10"),
    manage("deliveries", "GET", "resources/{slug}/event-deliveries/", query="state=pending&subscription={uuid}&limit=10"),
    manage("delivery", "GET", "resources/{slug}/event-deliveries/{uuid}/"),
    manage("redeliver", "POST", "resources/{slug}/event-deliveries/{uuid}/redeliver/"),
    manage("validate subscription", "GET", "events/validate/{uuid}", query="code=abc"),
    manage("send SMS (manage)", "POST", "resources/{slug}/sms/messages/", {"sender": "{sender}", "to": ["+14255550199"], "message": "hi", "tag": "t"}, fields=("sender", "to[0]", "message", "tag")),
    manage("SMS messages", "GET", "resources/{slug}/sms/messages/", query="direction=outbound&status=delivered&number={handset}&limit=10"),
    manage("SMS message", "GET", "resources/{slug}/sms/messages/{uuid}/"),
    manage("add opt-out", "POST", "resources/{slug}/sms/opt-outs/", {"sender": "{sender}", "recipient": "+14255550198"}, fields=("sender", "recipient")),
    manage("opt-outs", "GET", "resources/{slug}/sms/opt-outs/", query="sender={sender}&limit=10"),
    manage("remove opt-out", "DELETE", "resources/{slug}/sms/opt-outs/{opt_out}/"),
    manage("handsets", "GET", "resources/{slug}/sms/handsets/"),
    manage("handset messages", "GET", "resources/{slug}/sms/handsets/{handset}/messages/", query="limit=10"),
    manage("handset texts", "POST", "resources/{slug}/sms/handsets/{handset}/messages/", {"to": "{sender}", "message": "hi"}, fields=("to", "message")),
    manage("chat threads (manage)", "GET", "resources/{slug}/chat/threads/", query="limit=10&offset=0"),
    manage("chat thread (manage)", "GET", "resources/{slug}/chat/threads/{thread}/"),
    manage("chat participants (manage)", "GET", "resources/{slug}/chat/threads/{thread}/participants/"),
    manage("chat messages (manage)", "GET", "resources/{slug}/chat/threads/{thread}/messages/"),
]  # fmt: skip


def test_every_route_is_in_the_matrix() -> None:
    """The list above covers every API route (a new route must join the matrices)."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns: list[Any], prefix: str = "") -> list[str]:
        found: list[str] = []
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                found += walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                found.append(prefix + str(pattern.pattern))
        return found

    api = {p for p in walk(get_resolver().url_patterns) if p.startswith(("r/", "api/v1/"))}
    api.discard("r/<slug:slug>/^(?:/)?chat/config/realTimeNotifications$")  # a fixed 501

    def shape(path: str) -> str:
        import re

        return re.sub(r"<[^>]+>|\{[^}]+\}", "*", path).removeprefix("/").replace("r/*/", "")

    covered = {shape(r.path.removeprefix("/api/v1/").removeprefix("/r/{slug}")) for r in ROUTES}
    covered |= {"api/v1/" + c for c in covered}
    missing = {
        p
        for p in api
        if shape(p) not in covered and shape(p).removeprefix("api/v1/") not in covered
    }
    assert not missing, sorted(missing)


# --- Matrix 1: each string field of each body, each bad value -----------------------------------
BAD_STRINGS = {
    "lone high surrogate": "x\ud800",
    "lone low surrogate": "\udc00x",
    "reversed pair": "\ude00\ud83d",
    "NUL": "x\x00y",
}


def _path_of(spec: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in spec.replace("]", "").replace("[", ".").split("."):
        parts.append(int(piece) if piece.isdigit() and len(piece) < 4 else piece)
    return parts


def _set(body: Any, path: list[str | int], value: Any, *, key: bool = False) -> Any:
    body = json.loads(json.dumps(body))
    container = body
    for part in path[:-1]:
        container = container[part]
    if key:
        container[f"{path[-1]}{value}"] = container.pop(path[-1])
    else:
        container[path[-1]] = value
    return body


def _field_cases() -> list[Any]:
    cases = []
    for route in ROUTES:
        specs = [(f, False) for f in route.fields] + [(k, True) for k in route.keys]
        for (spec, key), (label, bad) in itertools.product(specs, BAD_STRINGS.items()):
            where, _, target = spec.partition("=>")
            cases.append(
                pytest.param(route, where, key, bad, target or where,
                             id=f"{route.name}: {'key of ' if key else ''}{where}: {label}")
            )  # fmt: skip
    return cases


def assert_refused(response: Any, statuses: tuple[int, ...] = (400,)) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.content[:500])
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    return dict(error)


@pytest.mark.parametrize(("route", "where", "key", "bad", "target"), _field_cases())
def test_a_bad_string_in_any_field_is_refused_by_the_reader_and_changes_nothing(
    world: World, route: Route, where: str, key: bool, bad: str, target: str
) -> None:
    # given a valid body with one bad string in it
    world.prepare(route)
    body = _set(world.fill(route.body), _path_of(world.fill(where)), bad, key=key)
    before = state()

    # when
    response = route.send(world, body=body)

    # then the reader refused it, naming the field, before anything ran
    error = assert_refused(response)
    assert (error["code"], error.get("target")) == ("InvalidRequest", world.fill(target)), error
    assert state() == before


# --- Matrix 2: each body route, each bad document ------------------------------------------------
BAD_DOCUMENTS: dict[str, tuple[bytes, str, str | None]] = {
    "invalid UTF-8": (b'{"x": "\xff"}', "InvalidJson", None),
    "raw surrogate bytes": (b'{"x": "\xed\xa0\x80"}', "InvalidJson", None),
    "33 levels deep": (b'{"x": ' + b"[" * 33 + b"]" * 33 + b"}", "InvalidJson", None),
    "100,000 levels deep": (b"[" * 100_000 + b"]" * 100_000, "InvalidJson", None),
    "a 5,000-digit integer": (b'{"x": ' + b"9" * 5000 + b"}", "InvalidRequest", "x"),
    "2**63": (b'{"x": 9223372036854775808}', "InvalidRequest", "x"),
    "1e400": (b'{"x": 1e400}', "InvalidRequest", "x"),
    "NaN": (b'{"x": NaN}', "InvalidJson", None),
    "a control character in a key": (b'{"x\\u0007": 1}', "InvalidRequest", None),
    "a surrogate in an unknown member": (b'{"x": ["\\ud800"]}', "InvalidRequest", "x[0]"),
}
BODY_ROUTES = [r for r in ROUTES if r.body is not None or r.method in ("POST", "PATCH")]
# Every route gets these; the routes of EVERY_VALUE get all (the reader is one function: what
# a route can get wrong is reading its body, path or query some other way, or not at all).
EVERY_ROUTE_DOCUMENTS = ("raw surrogate bytes", "100,000 levels deep", "a 5,000-digit integer")
EVERY_VALUE = {"create identity", "revoke tokens", "send SMS", "reserve", "create room",
               "send message", "thread", "room", "SMS message", "chat thread (manage)",
               "create resource", "revoke (manage)", "subscribe", "handset messages",
               "localities", "area codes", "events", "SMS messages", "deliveries"}  # fmt: skip


@pytest.mark.parametrize(
    ("route", "document", "code", "target"),
    [
        pytest.param(route, *BAD_DOCUMENTS[label], id=f"{route.name}: {label}")
        for route in BODY_ROUTES
        for label in BAD_DOCUMENTS
        if route.name in EVERY_VALUE or label in EVERY_ROUTE_DOCUMENTS
    ],
)
def test_a_bad_document_is_refused_by_the_reader_and_changes_nothing(
    world: World, route: Route, document: bytes, code: str, target: str | None
) -> None:
    # given
    world.prepare(route)
    before = state()

    # when
    response = route.send(world, raw_body=document)

    # then
    error = assert_refused(response)
    assert (error["code"], error.get("target")) == (code, target), error
    assert state() == before


# --- Matrix 3: each id in a path, each bad escape ------------------------------------------------
BAD_PATH_IDS = {
    "NUL": "%00",
    "NUL inside": "8%3Aacs%3Ax%00y",
    "raw surrogate bytes": "%ED%A0%80",
    "overlong NUL": "%C0%80",
    "invalid UTF-8": "%FF%FE",
    "control character": "%01",
    "escape character": "a%1Bb",
    "DEL": "%7F",
}
EVERY_ROUTE_PATH_IDS = ("NUL inside", "raw surrogate bytes", "control character")
ID_NAMES = ("identity", "number", "country", "search", "operation", "reservation", "room",
            "thread", "message", "uuid", "handset", "member", "opt_out")  # fmt: skip


def _path_cases() -> list[Any]:
    cases = []
    for route in ROUTES:
        for name in ID_NAMES:
            if "{" + name + "}" not in route.path:
                continue
            for label, bad in BAD_PATH_IDS.items():
                if route.name in EVERY_VALUE or label in EVERY_ROUTE_PATH_IDS:
                    cases.append(
                        pytest.param(route, name, bad, id=f"{route.name}: {name}: {label}")
                    )
    return cases


@pytest.mark.parametrize(("route", "name", "bad"), _path_cases())
def test_a_bad_id_in_a_path_is_400_or_404_and_changes_nothing(
    world: World, route: Route, name: str, bad: str
) -> None:
    # given
    world.prepare(route)
    path = world.fill(route.path.replace("{" + name + "}", "BAD-ID"), in_path=True)
    path = path.replace("BAD-ID", bad)
    before = state()

    # when
    response = route.send(world, path=path)

    # then
    assert_refused(response, (400, 404))
    assert state() == before


# --- Matrix 4: each query parameter, each bad escape --------------------------------------------
BAD_QUERY_VALUES = {
    "NUL": "%00",
    "NUL inside": "a%00b",
    "raw surrogate bytes": "%ED%A0%80",
    "invalid UTF-8": "%FF",
    "control character": "%01",
}


def _query_cases() -> list[Any]:
    cases = []
    for route in ROUTES:
        if route.method != "GET":
            continue
        names = [pair.split("=")[0] for pair in route.query.split("&") if pair] + ["extra"]
        for name, (label, bad) in itertools.product(names, BAD_QUERY_VALUES.items()):
            if route.name in EVERY_VALUE or label in ("NUL inside", "raw surrogate bytes"):
                cases.append(pytest.param(route, name, bad, id=f"{route.name}: ?{name}: {label}"))
        cases.append(pytest.param(route, "%00", "1", id=f"{route.name}: a NUL parameter name"))
    return cases


@pytest.mark.parametrize(("route", "name", "bad"), _query_cases())
def test_a_bad_query_value_is_400_and_changes_nothing(
    world: World, route: Route, name: str, bad: str
) -> None:
    # given the route's query with one value replaced (or one more parameter)
    world.prepare(route)
    pairs = [pair for pair in route.query.split("&") if pair and not pair.startswith(name + "=")]
    query = "&".join([*pairs, f"{name}={bad}"])
    before = state()

    # when
    response = route.send(world, query=query)

    # then
    error = assert_refused(response)
    assert error["code"] in ("InvalidRequest", "BadRequest"), error
    assert state() == before


# --- Matrix 5: control characters where a field makes no sense of them -------------------------
def _route(name: str) -> Route:
    return next(route for route in ROUTES if route.name == name)


FIELD_RULES: list[tuple[str, str, Any, int, str | None]] = [
    # (route, field, value, status, target): refused by the field's own check
    ("send SMS", "message", "hi\x07there", 400, "message"),
    ("send SMS", "message", "hi\x1b[31m", 400, "message"),
    ("send SMS", "smsSendOptions.tag", "t\n", 400, "tag"),
    ("send SMS", "smsSendOptions.tag", "t\x85", 400, "tag"),
    ("send SMS", "smsRecipients[0].repeatabilityRequestId", "r\x01", 400, "repeatabilityRequestId"),
    ("send SMS", "from", "{sender}\n", 400, "from"),
    ("opt-outs add", "from", "{sender}\n", 400, "from"),
    ("opt-outs check", "from", "+1425555010\u0662", 400, "from"),
    ("search", "areaCode", "42\u00b2", 400, "areaCode"),
    ("search", "areaCode", "425\n", 400, "areaCode"),
    ("search", "areaCode", "4" * 9, 400, "areaCode"),
    ("browse", "phoneNumberPrefixes[0]", "\u0664\u0662", 400, "phoneNumberPrefixes"),
    ("search (manage)", "areaCode", "4\t2", 400, "areaCode"),
    ("set destination", "inboundDestination", "https://example.com/\x07", 400, "inboundDestination"),
    ("set destination", "inboundDestination", "https://example.com/" + "a" * 2048, 400, "inboundDestination"),
    ("update SIP configuration", "routes[0].name", "r\x07", 422, "routes[0].name"),
    ("update SIP configuration", "routes[0].numberPattern", "^\\+1\n", 422, "routes[0].numberPattern"),
    ("update SIP configuration", "routes[0].description", "d\x1b[31m", 422, "routes[0].description"),
    ("update SIP configuration", "routes[0].trunks[0]", "sbc.example.com\n", 422, "routes"),
    ("create resource", "name", "New\x07one", 400, "name"),
    ("create resource", "name", "New\u0085one", 400, "name"),
    ("rename resource", "name", "Re\nnamed", 400, "name"),
    ("add member", "user", "owner\x1b", 404, None),
    ("send SMS (manage)", "message", "hi\x07", 400, "message"),
    ("send SMS (manage)", "tag", "t\r\nt", 400, "tag"),
    ("handset texts", "message", "\x08", 400, "message"),
    ("handset texts", "to", "+1425\x0755501", 400, "to"),
    ("add opt-out", "sender", "+1425\x0755501", 400, "from"),
    ("add opt-out", "recipient", "+1425\x0755501", 400, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "where", "value", "status", "target"),
    FIELD_RULES,
    ids=[f"{rule[0]}: {rule[1]}: {rule[2][:24]!r}" for rule in FIELD_RULES],
)
def test_a_control_character_where_it_makes_no_sense_is_refused_and_changes_nothing(
    world: World, name: str, where: str, value: str, status: int, target: str | None
) -> None:
    # given
    route = _route(name)
    world.prepare(route)
    body = _set(world.fill(route.body), _path_of(world.fill(where)), world.fill(value))
    before = state()

    # when
    response = route.send(world, body=body)

    # then
    error = assert_refused(response, (status,))
    if target is not None:
        assert error.get("target") == target, error
    assert state() == before


def test_a_reservation_key_of_other_digits_is_refused(world: World) -> None:
    # given
    route = _route("reserve")
    world.prepare(route)
    body = {
        "phoneNumbers": {
            "\u0661\u0664\u0662\u0665": world.fill(route.body)["phoneNumbers"][
                world.names["available_id"]
            ]
        }
    }
    before = state()

    # when
    response = route.send(world, body=body)

    # then
    assert assert_refused(response)["target"] == "phoneNumbers"
    assert state() == before


@pytest.mark.parametrize("header", ["r\x01", "r\x7f", "r" * 101])
def test_a_room_repeatability_id_with_a_control_character_is_refused(
    world: World, header: str
) -> None:
    # given
    before = state()

    # when
    response = world.acs.call(
        "POST", "/rooms", {}, api_version=ROOMS, headers={"Repeatability-Request-Id": header}
    )

    # then
    assert assert_refused(response)["target"] == "Repeatability-Request-Id"
    assert state() == before


def test_a_recipient_with_a_trailing_newline_is_refused_per_recipient(world: World) -> None:
    # given
    body = world.fill(_route("send SMS").body)
    body["smsRecipients"] = [{"to": "+14255550199\n"}]

    # when
    response = _route("send SMS").send(world, body=body)

    # then (ACS answers per recipient; nothing is sent)
    assert response.status_code == 202, response.content
    [result] = response.json()["value"]
    assert result["httpStatusCode"] == 400 and not result.get("messageId")
    from apps.sms.models import SmsMessage

    assert not SmsMessage.objects.exists()


@pytest.mark.parametrize(
    ("name", "where", "value"),
    [
        ("send SMS", "message", "line one\nline two\r\n\ttabbed"),
        ("send SMS (manage)", "message", "line one\nline two"),
        ("handset texts", "message", "Thanks!\nSee you"),
    ],
)
def test_line_breaks_and_tabs_stay_welcome_in_free_text(
    world: World, name: str, where: str, value: str
) -> None:
    # given
    route = _route(name)
    body = _set(world.fill(route.body), _path_of(where), value)

    # when
    response = route.send(world, body=body)

    # then
    assert response.status_code in (201, 202), response.content


# --- The edge middleware itself, on both of Django's paths ----------------------------------------
EDGE_CASES: list[tuple[str, str, bytes, int, str | None]] = [
    # (method, path, JSON body, status, ACS code or None for a console page)
    ("GET", "/api/v1/resources/?x=%00", b"", 400, "InvalidRequest"),
    ("GET", "/api/v1/resources/?x=%ED%A0%80", b"", 400, "InvalidRequest"),
    ("GET", "/api/v1/resources/%00/", b"", 404, "NotFound"),
    ("POST", "/api/v1/resources/", b'{"name": "\\ud800"}', 400, "InvalidRequest"),
    ("POST", "/api/v1/resources/", b"[" * 40 + b"]" * 40, 400, "InvalidJson"),
    ("GET", "/r/contoso/identities?api-version=2023-10-01&x=%01", b"", 400, "InvalidRequest"),
    ("GET", "/resources/?x=%00", b"", 400, None),
    ("GET", "/resources/a%00b/", b"", 404, None),
    ("GET", "/login/?next=%01", b"", 400, None),
]  # fmt: skip


def _check_edge(response: Any, status: int, code: str | None) -> None:
    assert response.status_code == status, response.content[:300]
    if code is not None:
        assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), EDGE_CASES)
def test_the_edge_middleware_refuses_before_routing(
    resource: Resource, method: str, path: str, body: bytes, status: int, code: str | None
) -> None:
    from django.test import Client

    response = Client().generic(method, path, body, content_type="application/json")
    _check_edge(response, status, code)


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), EDGE_CASES)
async def test_the_edge_middleware_refuses_on_the_async_path_too(
    method: str, path: str, body: bytes, status: int, code: str | None
) -> None:
    from django.test import AsyncClient

    response = await AsyncClient().generic(method, path, body, content_type="application/json")
    _check_edge(response, status, code)


def test_the_edge_middleware_lets_good_requests_through(resource: Resource, owner: Any) -> None:
    client = APIClient()
    client.force_authenticate(owner)
    assert client.get("/api/v1/resources/?limit=5&x=Zo%C3%AB").status_code == 200
    response = client.post("/api/v1/resources/", {"name": "Zoë 😀 Line"}, format="json")
    assert response.status_code == 201, response.content


# --- Paging numbers no database takes (management API) -------------------------------------------
PAGINATION = "apps.core.api.BoundedLimitOffsetPagination"


@pytest.fixture
def bounded_paging(monkeypatch: Any) -> None:
    """The management API's paging as spool/settings.py should name it, where it does not yet."""
    from rest_framework import generics

    from apps.core.api import BoundedLimitOffsetPagination

    monkeypatch.setattr(generics.GenericAPIView, "pagination_class", BoundedLimitOffsetPagination)


def test_the_bounded_paging_is_installed() -> None:
    from tests import settings as configured

    assert configured.REST_FRAMEWORK["DEFAULT_PAGINATION_CLASS"] == PAGINATION


LISTS = ("members/", "identities/", "numbers/", "event-subscriptions/", "chat/threads/",
         "sms/messages/", "sms/opt-outs/", "events/", "event-deliveries/")  # fmt: skip


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("limit=100000000000000000000", 200),
        ("limit=9223372036854775807&offset=9223372036854775807", 400),
        ("offset=100000000000000000000", 400),
        ("offset=" + "9" * 5000, 200),  # not a number DRF reads: the first page
        ("limit=-5&offset=-5", 200),
    ],
)
def test_paging_with_absurd_numbers_is_bounded(
    bounded_paging: None, resource: Resource, owner: Any, query: str, status: int
) -> None:
    # given
    client = APIClient()
    client.force_authenticate(owner)

    for listing in LISTS:
        # when
        response = client.get(f"/api/v1/resources/{resource.slug}/{listing}?{query}")

        # then
        assert response.status_code == status, (listing, response.content[:300])
        if status == 400:
            assert response.json()["error"]["target"] == "offset"
