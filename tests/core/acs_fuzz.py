"""Helpers of tests/core/test_fuzz_acs.py: Microsoft's ACS specs merged into one Swagger 2.0
document schemathesis loads, real ids to aim the generated requests at, the signed call into
the app, and a snapshot of every table an ACS request may change."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from django.db import connection
from django.db.models import Model
from django.test import Client

from apps.accounts.models import CommunicationIdentity, Resource
from apps.calls.models import Room, RoomParticipant
from apps.chat.models import ChatMessage, ChatParticipant, ChatThread, ReadReceipt
from apps.events.models import Event
from apps.numbers.models import NumberOperation, NumberSearch, PhoneNumber
from apps.pstn.models import SipRoute, SipTrunk
from apps.sms.models import OptOut, SmsMessage
from tests.conftest import origin_host, sign_headers

SPECS = Path(__file__).resolve().parents[3] / "shared" / "acs-api" / "specs"
# The APIs Spool serves, at the version of the spec each is fuzzed with. (CallAutomation is
# not fuzzed yet.)
FUZZED = {
    "Identity": "2023-10-01",
    "Sms": "2021-03-07",
    "Chat": "2024-03-07",
    "PhoneNumbers": "2025-06-01",
    "Rooms": "2025-03-13",
    "SipRouting": "2023-03-01",
}
# Chat is called with a user access token, as ACS has it; the others with an HMAC-signed key.
BEARER_PREFIX = "/chat/"

_COMMON_REF = re.compile(
    r"^\.\./\.\./\.\./Common/stable/(\d{4})-(\d{2})-(\d{2})/common\.json#/definitions/(\w+)$"
)


def _rewrite(node: Any, prefix: str) -> Any:
    """`node` with every local $ref renamed under `prefix` (specs share definition names), every
    reference into a Common spec pointed at its merged copy, and x-ms-examples (files that are
    not here) dropped."""
    if isinstance(node, list):
        return [_rewrite(item, prefix) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten: dict[str, Any] = {}
    for key, value in node.items():
        if key == "x-ms-examples":
            continue
        if key == "$ref" and isinstance(value, str):
            common = _COMMON_REF.match(value)
            if common:
                value = f"#/definitions/Common{''.join(common.groups()[:3])}_{common[4]}"
            else:
                section, _, name = value.removeprefix("#/").partition("/")
                assert section in ("definitions", "parameters"), value
                value = f"#/{section}/{prefix}_{name}"
        rewritten[key] = _rewrite(value, prefix)
    return rewritten


def _pin_api_version(parameters: Sequence[Any], version: str) -> None:
    for parameter in parameters:
        if parameter.get("name") == "api-version" and parameter.get("in") == "query":
            parameter["enum"] = [version]


def _close(schema: Any) -> None:
    """Forbid members an object's schema does not name, as the SDKs send none: otherwise most
    valid bodies carry random keys, which hold control characters and are refused at the edge.
    (Negative examples still add some.)"""
    if not isinstance(schema, dict):
        return
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for member in schema.get("properties", {}).values():
        _close(member)
    for key in ("items", "additionalProperties", "schema"):
        _close(schema.get(key))


def merged_specs() -> dict[str, Any]:
    """One Swagger 2.0 document holding every fuzzed ACS operation, paths relative to the
    resource's endpoint, `api-version` pinned to the spec's own (a random one is refused at the
    door: the fuzz is meant to reach the views), objects closed (`_close`). No security schemes:
    the test signs."""
    merged: dict[str, Any] = {
        "swagger": "2.0",
        "info": {"title": "ACS data plane, as Spool serves it", "version": "fuzz"},
        "host": "testserver",
        "basePath": "/",
        "schemes": ["http"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": {},
        "definitions": {},
        "parameters": {},
    }
    for path in sorted(SPECS.glob("Common-*.json")):
        prefix = "Common" + path.stem.removeprefix("Common-").replace("-", "")
        definitions = _rewrite(json.loads(path.read_text())["definitions"], prefix)
        merged["definitions"].update({f"{prefix}_{n}": d for n, d in definitions.items()})
    for name, version in FUZZED.items():
        spec = _rewrite(json.loads((SPECS / f"{name}-{version}.json").read_text()), name)
        for section in ("definitions", "parameters"):
            merged[section].update({f"{name}_{n}": d for n, d in spec.get(section, {}).items()})
        _pin_api_version(list(spec.get("parameters", {}).values()), version)
        for path, operations in spec["paths"].items():
            assert path not in merged["paths"], path
            for operation in operations.values():
                if isinstance(operation, dict):
                    _pin_api_version(operation.get("parameters", []), version)
            merged["paths"][path] = operations
    for schema in (*merged["definitions"].values(), *merged["parameters"].values()):
        _close(schema)
    for operations in merged["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else []:
                _close(parameter)
    return merged


# The seeded resource's SIP trunks (test_fuzz_acs.py's seeds), and one more a patch may add.
SIP_TRUNKS = ["sbc.example.com", "sbc2.example.com"]


# --- Aiming at real rows ---------------------------------------------------------------------
@dataclass
class Seeds:
    """Real ids of the fuzzed resource, by path parameter or body field: a generated value is
    swapped for one of them in two cases out of three, so requests reach past the lookups."""

    resource: Resource
    key: str
    token: str  # a chat user's (Bearer), for the Chat API
    path: dict[str, list[str]]
    raw_ids: list[str]
    numbers: list[str]  # E.164, owned by the resource
    free_digits: list[str]  # available numbers as ACS number ids (digits only)
    search_id: str
    message_id: str


def _chosen(value: Any, choices: Sequence[Any]) -> Any:
    """`value`, or one of `choices`: a choice that depends on the value only, so a run is
    repeatable and hypothesis' shrinking stays meaningful."""
    digest = zlib.crc32(repr(value).encode("utf-8", "surrogatepass"))
    if digest % 3 == 0 or not choices:
        return value
    return choices[digest % len(choices)]


def seed_path(parameters: dict[str, Any], seeds: Seeds) -> dict[str, Any]:
    """Path parameters (already percent-encoded) with some swapped for real ids."""
    seeded = dict(parameters)
    for name, value in parameters.items():
        choice = _chosen(value, seeds.path.get(name, []))
        if choice is not value:
            seeded[name] = quote(choice, safe="")
    return seeded


def seed_body(body: Any, seeds: Seeds, key: str = "") -> Any:
    """A generated JSON body with identifiers, numbers and ids swapped for real ones in places.
    `key` names the member `body` is the value of (`name[]` for an item of a list)."""
    if isinstance(body, list):
        return [seed_body(item, seeds, f"{key}[]") for item in body]
    if isinstance(body, dict):
        keys = {
            "participants": seeds.raw_ids,  # Rooms: a map keyed by raw id
            "phoneNumbers": seeds.free_digits,  # a reservation: a map keyed by number id
            "trunks": SIP_TRUNKS,  # SIP routing: a map keyed by FQDN
        }.get(key, [])
        return {_chosen(k, keys): seed_body(v, seeds, k) for k, v in body.items()}
    if not isinstance(body, str):
        return body
    choices = {
        "rawId": seeds.raw_ids,
        "id": seeds.raw_ids,  # communicationUser.id
        "from": seeds.numbers,
        "to": seeds.numbers,
        "value": seeds.numbers,  # phoneNumber.value
        "phoneNumbers[]": seeds.numbers,
        "trunks[]": SIP_TRUNKS,  # a route's trunks
        "numberPattern": [r"^\+1\d{10}$", r"^\+44"],
        "searchId": [seeds.search_id],
        "chatMessageId": [seeds.message_id],
        # Free text that passes the checks, so that a request gets on to what follows them.
        "message": ["Hello from the fuzzer"],
        "content": ["Hello from the fuzzer"],
        "topic": ["Fuzzing"],
    }.get(key, [])
    return _chosen(body, choices)


# --- The call ----------------------------------------------------------------------------------
def call(
    client: Client,
    seeds: Seeds,
    *,
    method: str,
    path: str,
    query: str,
    body: bytes,
    media_type: str,
    headers: dict[str, str],
) -> Any:
    """`method <path>?<query>` into the app, at the root of the resource's own origin or under
    /r/<slug>/ on the console's (one or the other by the path, so both routes are fuzzed),
    signed as the ACS SDKs sign (HMAC over the raw target, the body's hash and the host with
    the endpoint's path), or with the chat user's token on the Chat API."""
    if zlib.crc32(path.encode()) % 2:
        host, prefix = origin_host(seeds.resource), ""
    else:
        host, prefix = "testserver", f"/r/{seeds.resource.slug}"
    target = f"{prefix}{path}" + (f"?{query}" if query else "")
    if path.startswith(BEARER_PREFIX):
        auth = {"Authorization": f"Bearer {seeds.token}"}
    else:
        auth = sign_headers(method, target, body, seeds.key, f"{host}{prefix}")
    sent = {**headers, "Host": host, **auth}
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in sent.items()}
    meta["REQUEST_URI"] = target  # what a real server hands over: the target still encoded
    return client.generic(method, target, body, content_type=media_type, **meta)


# --- What a refused request must leave alone ---------------------------------------------------
SNAPSHOT: tuple[type[Model], ...] = (
    CommunicationIdentity,  # identities, and their tokens (generation, last issued)
    ChatThread,
    ChatParticipant,
    ChatMessage,
    ReadReceipt,
    Room,
    RoomParticipant,
    SmsMessage,
    OptOut,
    NumberSearch,  # searches and reservations (holds)
    NumberOperation,  # orders
    PhoneNumber,
    Event,
    SipTrunk,
    SipRoute,
)


def state() -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table an ACS request may change (the fuzz tests' data is small), as
    the database returns them: raw SQL is some 5-25 times faster than the ORM's conversions,
    and this runs once or twice per request."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    quote_name = connection.ops.quote_name
    with connection.cursor() as cursor:
        for model in SNAPSHOT:
            table, pk = quote_name(model._meta.db_table), quote_name(model._meta.pk.column)
            cursor.execute(f"SELECT * FROM {table} ORDER BY {pk}")
            rows[model.__name__] = cursor.fetchall()
    return rows
