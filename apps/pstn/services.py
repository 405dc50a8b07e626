"""SIP routing (ACS direct routing): a resource's trunks and routes as the ACS SIP routing API
reads and merges them, the operator's settings of a trunk, and the two lookups the SIP engines
make: which trunks an outbound call goes through (`route_call`) and which trunk an inbound call
came through (`trunk_for_source`).

Rules, as ACS has them (its answers: 422 `UnprocessableConfiguration` with the reason in
`innererror`, 400 for duplicates):

- a trunk is keyed by its FQDN: a domain name of at least two labels, at most 249 characters,
  lowercased; IP addresses are refused. Its `sipSignalingPort` is 1..65535.
- `PATCH` merges trunks by FQDN (`null` deletes one; `"trunks": null` all of them) and replaces
  the routes as a whole when `routes` is present.
- route names are unique and not blank; a route's trunks are unique and must exist after the
  patch, so a trunk a route still uses cannot be deleted (`MissingTrunk`).
- `numberPattern` is a regular expression (ACS: .NET; Spool: Python `re`, plus .NET's leading
  `^+`), matched against the E.164 number with search semantics (.NET `IsMatch`): patterns
  anchor themselves (`^\\+1\\d{10}$`).
- at most 250 trunks, 250 routes, 250 trunks per route (the spec's own limits).

A refused patch changes nothing: it is checked whole before the first write, in one
transaction that holds the resource's row (so two patches of one resource do not interleave).
"""

from __future__ import annotations

import functools
import importlib
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from apps.accounts.models import Resource
from apps.core.errors import ApiError
from apps.core.parsers import is_single_line, is_text
from apps.pstn.exceptions import InvalidTrunkSettings, SipConfigurationError
from apps.pstn.models import CallerIdFormat, Codec, SipRoute, SipTrunk, Transport

MAX_TRUNKS = 250
MAX_ROUTES = 250
MAX_ROUTE_TRUNKS = 250
MAX_FQDN_LENGTH = 249
MAX_ROUTE_NAME_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 1024
MAX_PATTERN_LENGTH = 1024
# How many ways a pattern may try to match a number, estimated from its structure
# (`_pattern_cost`): Python's `re` backtracks, and `((\d*)*)*$` takes minutes on 15 digits.
MAX_PATTERN_COST = 100_000
MAX_NETWORKS = 100
MAX_PREFIXES = 100
E164 = re.compile(r"\+?[0-9]{1,15}")

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


# --- Reading ------------------------------------------------------------------------------
def configuration(resource: Resource) -> dict[str, Any]:
    """The resource's SipConfiguration as the ACS API answers it: trunks in the order they were
    added, routes in their order."""
    trunks = {
        trunk.fqdn: {"sipSignalingPort": trunk.signaling_port}
        for trunk in SipTrunk.objects.filter(resource=resource).order_by("id")
    }
    routes = [
        route_body(route)
        for route in SipRoute.objects.filter(resource=resource).order_by("position")
    ]
    return {"trunks": trunks, "routes": routes}


def route_body(route: SipRoute) -> dict[str, Any]:
    body: dict[str, Any] = {"name": route.name}
    if route.description:
        body["description"] = route.description
    body["numberPattern"] = route.number_pattern
    body["trunks"] = list(route.trunks)
    return body


def list_trunks(resource: Resource | None = None) -> Any:
    """Trunks of one resource, or (operators) of all, with their resource."""
    trunks = SipTrunk.objects.select_related("resource").order_by("resource__name", "id")
    return trunks.filter(resource=resource) if resource is not None else trunks


def list_routes(resource: Resource) -> Any:
    return SipRoute.objects.filter(resource=resource).order_by("position")


# --- The ACS PATCH ------------------------------------------------------------------------
@dataclass(frozen=True)
class RouteSpec:
    name: str
    description: str
    number_pattern: str
    trunks: list[str]


def patch_configuration(resource: Resource, body: Any) -> dict[str, Any]:
    """Apply an ACS SipConfigurationUpdate (JSON merge patch) to `resource` and return the
    configuration that results. Raises SipConfigurationError (422, or 400 for duplicates) or
    ApiError (400, a body of the wrong shape); either way nothing is written. Runs in its own
    transaction, holding the resource's row."""
    if not isinstance(body, dict):
        raise ApiError("The request body must be a JSON object.", code="InvalidRequestBody")
    with transaction.atomic():
        Resource.objects.select_for_update().filter(pk=resource.pk).first()
        existing = {trunk.fqdn: trunk for trunk in SipTrunk.objects.filter(resource=resource)}
        upserts: dict[str, int | None] = {}
        deletes: set[str] = set()
        if "trunks" in body:
            upserts, deletes = _check_trunks(body["trunks"], existing)
        kept = (set(existing) - deletes) | set(upserts)
        if len(kept) > MAX_TRUNKS:
            raise SipConfigurationError(
                "TooManyTrunks", f"A resource has at most {MAX_TRUNKS} SIP trunks.", target="trunks"
            )
        replaced = "routes" in body
        routes = (
            check_routes(body["routes"])
            if replaced
            else [
                RouteSpec(r.name, r.description, r.number_pattern, list(r.trunks))
                for r in SipRoute.objects.filter(resource=resource).order_by("position")
            ]
        )
        _check_references(routes, kept, replaced=replaced)
        _write(resource, existing, upserts, deletes, routes if replaced else None)
    return configuration(resource)


def _check_trunks(
    raw: Any, existing: Mapping[str, SipTrunk]
) -> tuple[dict[str, int | None], set[str]]:
    """The trunks member of a patch as (FQDN -> port to set, None: keep; FQDNs to delete)."""
    if raw is None:  # merge patch: the whole map removed
        return {}, set(existing)
    if not isinstance(raw, dict):
        raise ApiError(
            "trunks must be an object keyed by FQDN.", code="InvalidRequest", target="trunks"
        )
    if len(raw) > MAX_TRUNKS:
        raise SipConfigurationError(
            "TooManyTrunks", f"A resource has at most {MAX_TRUNKS} SIP trunks.", target="trunks"
        )
    upserts: dict[str, int | None] = {}
    deletes: set[str] = set()
    for key, value in raw.items():
        fqdn = check_fqdn(key)
        if fqdn in upserts or fqdn in deletes:
            raise SipConfigurationError(
                "DuplicatedTrunk",
                f"Trunk {fqdn} is named twice (FQDNs are not case-sensitive).",
                status=400,
                target="trunks",
            )
        if value is None:
            deletes.add(fqdn)  # deleting a trunk that is not there is no error (idempotent)
            continue
        if not isinstance(value, dict):
            raise ApiError(
                f"Trunk {fqdn} must be an object or null.", code="InvalidRequest", target="trunks"
            )
        if "sipSignalingPort" not in value and fqdn in existing:
            upserts[fqdn] = None  # {} keeps an existing trunk as it is
            continue
        upserts[fqdn] = _check_port(value.get("sipSignalingPort"), fqdn)
    return upserts, deletes


def check_fqdn(raw: Any) -> str:
    """A trunk's FQDN, lowercased. Raises SipConfigurationError (InvalidTrunkFqdn)."""

    def refuse(why: str) -> SipConfigurationError:
        shown = raw if isinstance(raw, str) and len(raw) <= 64 else f"{str(raw)[:64]}..."
        return SipConfigurationError(
            "InvalidTrunkFqdn", f"Trunk {shown!r} has an invalid FQDN: {why}", target="trunks"
        )

    if not isinstance(raw, str) or not raw:
        raise refuse("it must be a domain name.")
    if not raw.isascii():
        raise refuse("use the ASCII (punycode) form of the domain name.")
    if len(raw) > MAX_FQDN_LENGTH:
        raise refuse(f"at most {MAX_FQDN_LENGTH} characters.")
    fqdn = raw.lower()
    labels = fqdn.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels):
        raise refuse(
            "it must be a domain name of two labels or more (letters, digits and hyphens)."
        )
    if labels[-1].isdigit():
        raise refuse("an IP address is not an FQDN (an operator can point a trunk at one).")
    return fqdn


def _check_port(value: Any, fqdn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise SipConfigurationError(
            "InvalidTrunkSipSignalingPort",
            f"Trunk {fqdn}: sipSignalingPort must be an integer from 1 to 65535.",
            target="trunks",
        )
    return value


def check_routes(raw: Any) -> list[RouteSpec]:
    """The routes member of a patch, checked. `null` is an empty list (merge patch)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ApiError("routes must be an array.", code="InvalidRequest", target="routes")
    if len(raw) > MAX_ROUTES:
        raise SipConfigurationError(
            "TooManyRoutes", f"A resource has at most {MAX_ROUTES} routes.", target="routes"
        )
    routes: list[RouteSpec] = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        route = _check_route(item, f"routes[{index}]")
        if route.name in names:
            raise SipConfigurationError(
                "DuplicatedRoute",
                f"There is a duplicated route: {route.name!r}.",
                status=400,
                target=f"routes[{index}].name",
            )
        names.add(route.name)
        routes.append(route)
    return routes


def _check_route(item: Any, where: str) -> RouteSpec:
    if not isinstance(item, dict):
        raise ApiError(f"{where} must be an object.", code="InvalidRequest", target=where)
    name = item.get("name")
    if (
        not isinstance(name, str)
        or not name.strip()
        or len(name) > MAX_ROUTE_NAME_LENGTH
        or not is_single_line(name)
    ):
        raise SipConfigurationError(
            "InvalidRouteName",
            f"{where}: a route's name is 1 to {MAX_ROUTE_NAME_LENGTH} characters on one line.",
            target=f"{where}.name",
        )
    description = item.get("description")
    if description is None:
        description = ""
    if (
        not isinstance(description, str)
        or len(description) > MAX_DESCRIPTION_LENGTH
        or not is_text(description)
    ):
        raise SipConfigurationError(
            "InvalidRouteDescription",
            f"Route {name!r}: a description is text of at most {MAX_DESCRIPTION_LENGTH} "
            "characters.",
            target=f"{where}.description",
        )
    pattern = item.get("numberPattern")
    why = pattern_problem(pattern)
    if why:
        raise SipConfigurationError(
            "InvalidRouteNumberPattern",
            f"Route {name!r} has an invalid number pattern: {why}",
            target=f"{where}.numberPattern",
        )
    assert isinstance(pattern, str)
    return RouteSpec(
        name, description, pattern, _check_route_trunks(item.get("trunks"), name, where)
    )


def _check_route_trunks(raw: Any, name: str, where: str) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(fqdn, str) for fqdn in raw):
        raise ApiError(
            f"{where}.trunks must be an array of FQDNs.",
            code="InvalidRequest",
            target=f"{where}.trunks",
        )
    if len(raw) > MAX_ROUTE_TRUNKS:
        raise SipConfigurationError(
            "TooManyRouteTrunks",
            f"Route {name!r}: at most {MAX_ROUTE_TRUNKS} trunks.",
            target=f"{where}.trunks",
        )
    trunks = [fqdn.lower() for fqdn in raw]
    if len(set(trunks)) != len(trunks):
        raise SipConfigurationError(
            "RouteWithDuplicatedTrunk",
            f"There is a duplicated trunk in route {name!r}.",
            status=400,
            target=f"{where}.trunks",
        )
    return trunks


def _check_references(routes: Iterable[RouteSpec], trunks: set[str], *, replaced: bool) -> None:
    for route in routes:
        for fqdn in route.trunks:
            if fqdn in trunks:
                continue
            message = (
                f"Route {route.name!r} targets trunk {fqdn!r}, which does not exist."
                if replaced
                else f"Trunk {fqdn!r} is used by route {route.name!r}: change the routes first."
            )
            raise SipConfigurationError(
                "MissingTrunk", message, target="routes" if replaced else "trunks"
            )


def _write(
    resource: Resource,
    existing: Mapping[str, SipTrunk],
    upserts: Mapping[str, int | None],
    deletes: set[str],
    routes: list[RouteSpec] | None,
) -> None:
    if routes is not None:
        SipRoute.objects.filter(resource=resource).delete()
    if deletes:
        SipTrunk.objects.filter(resource=resource, fqdn__in=deletes).delete()
    for fqdn, port in upserts.items():
        trunk = existing.get(fqdn)
        if trunk is None:
            assert port is not None
            SipTrunk.objects.create(resource=resource, fqdn=fqdn, signaling_port=port)
        elif port is not None and port != trunk.signaling_port:
            trunk.signaling_port = port
            trunk.save(update_fields=["signaling_port", "updated_at"])
    if routes is not None:
        SipRoute.objects.bulk_create(
            SipRoute(
                resource=resource,
                position=position,
                name=route.name,
                description=route.description,
                number_pattern=route.number_pattern,
                trunks=route.trunks,
            )
            for position, route in enumerate(routes)
        )


# --- Number patterns ------------------------------------------------------------------------
_parser: Any = importlib.import_module("re._parser")


def pattern_problem(pattern: Any) -> str:
    """Why `pattern` cannot be a route's numberPattern, or "" when it can."""
    if not isinstance(pattern, str) or not pattern:
        return "it must be a regular expression."
    if len(pattern) > MAX_PATTERN_LENGTH:
        return f"at most {MAX_PATTERN_LENGTH} characters."
    if not is_single_line(pattern):
        return "it holds a control character."
    try:
        compile_pattern(pattern)
        cost = _pattern_cost(_parser.parse(_python_form(pattern)))
    except (re.error, OverflowError, RecursionError, ValueError) as error:
        return f"{error}."
    if cost > MAX_PATTERN_COST:
        return (
            "it can match a number in too many ways (nested or many repetitions, "
            "or alternatives inside a repetition); write it more plainly."
        )
    return ""


def _python_form(pattern: str) -> str:
    # .NET takes a quantifier on an anchor (`^+[1-9]...`, in ACS's own samples) as the anchor.
    return "^" + pattern[2:] if pattern.startswith("^+") else pattern


@functools.lru_cache(maxsize=4096)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A route's numberPattern compiled (raises re.error and the like when it does not)."""
    try:
        return re.compile(pattern)
    except re.error:
        if pattern.startswith("^+"):
            return re.compile(_python_form(pattern))
        raise


# A number is at most 16 characters: a repetition can go round no more often than this.
_ROUNDS = 17


def _pattern_cost(items: Any) -> int:
    """An upper estimate of how many ways a parsed pattern can try to match a number: a sequence
    multiplies its parts' ways, alternatives add, a repetition adds the ways of each count it
    allows (at most 17 rounds). Capped, so that a huge estimate stays cheap to compute."""
    total = 1
    for op, arg in items:
        name = getattr(op, "name", str(op))
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, high, body = arg
            each = _pattern_cost(body)
            rounds = range(min(low, _ROUNDS), min(high, _ROUNDS) + 1)
            cost = sum(min(each**n, MAX_PATTERN_COST + 1) for n in rounds)
        elif name == "BRANCH":
            cost = sum(_pattern_cost(alternative) for alternative in arg[1])
        elif name in ("SUBPATTERN",):
            cost = _pattern_cost(arg[-1])
        elif name in ("ASSERT", "ASSERT_NOT"):
            cost = _pattern_cost(arg[1])
        elif name == "ATOMIC_GROUP":
            cost = _pattern_cost(arg)
        elif name == "GROUPREF_EXISTS":
            cost = _pattern_cost(arg[1]) + (_pattern_cost(arg[2]) if arg[2] else 1)
        else:  # a literal, class, anchor or back-reference: one way
            cost = 1
        total = min(total * cost, MAX_PATTERN_COST + 1)
    return total


# --- What the SIP engines ask -----------------------------------------------------------------
def route_call(resource: Resource, number: str) -> list[SipTrunk]:
    """The trunks an outbound call from `resource` to `number` (E.164) goes through, in the
    order to try them: the enabled trunks of the first route whose pattern matches the number,
    less those whose outbound prefixes (the operator's toll-fraud guard) exclude it. Empty when
    no route matches, or `number` is not a number."""
    if not E164.fullmatch(number or ""):
        return []
    for route in SipRoute.objects.filter(resource=resource).order_by("position"):
        try:
            pattern = compile_pattern(route.number_pattern)
        except (re.error, OverflowError, RecursionError, ValueError):
            continue  # stored before a stricter check: never matches
        if pattern.search(number):
            trunks = {
                trunk.fqdn: trunk
                for trunk in SipTrunk.objects.filter(
                    resource=resource, fqdn__in=route.trunks, enabled=True
                ).select_related("resource")
            }
            return [
                trunks[fqdn]
                for fqdn in route.trunks
                if fqdn in trunks and trunks[fqdn].allows_destination(number)
            ]
    return []


def trunk_for_source(address: str) -> SipTrunk | None:
    """The enabled trunk an inbound call from `address` (the peer's IP) came through: the one
    whose allowed networks hold the address most narrowly (the longest prefix; the oldest trunk
    on a tie), or None (the call is refused). Trunks with no allowed networks accept nothing."""
    trunks = trunks_for_source(address)
    return trunks[0] if trunks else None


def trunks_for_source(address: str) -> list[SipTrunk]:
    """Every enabled trunk whose allowed networks hold `address`, the narrowest first (then the
    oldest): a carrier that serves several resources is a trunk of each."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return []
    ranked: dict[int, tuple[tuple[int, int], SipTrunk]] = {}
    trunks = SipTrunk.objects.filter(enabled=True).exclude(allowed_networks=[])
    for trunk in trunks.select_related("resource").order_by("id"):
        for network in trunk.allowed_networks:
            try:
                parsed = ipaddress.ip_network(network, strict=False)
            except ValueError:
                continue
            if ip.version == parsed.version and ip in parsed:
                rank = (-parsed.prefixlen, trunk.pk)
                if trunk.pk not in ranked or rank < ranked[trunk.pk][0]:
                    ranked[trunk.pk] = (rank, trunk)
    return [trunk for _, trunk in sorted(ranked.values(), key=lambda item: item[0])]


# --- The operator's settings ----------------------------------------------------------------
@dataclass(frozen=True)
class TrunkSettings:
    enabled: bool
    address: str
    transport: str
    digest_username: str
    digest_password: str | None  # None: keep the stored one
    allowed_networks: list[str]
    codecs: list[str]
    srtp: bool
    caller_id_format: str
    assert_identity: bool
    max_concurrent_calls: int | None
    outbound_prefixes: list[str]


def check_trunk_settings(raw: Mapping[str, Any]) -> TrunkSettings:
    """An operator's settings for a trunk, checked and normalised. Lists may come as lists or
    as text (one item per line or comma-separated). Raises InvalidTrunkSettings naming the
    field."""
    address = str(raw.get("address") or "").strip()
    if address:
        address = _check_address(address)
    transport = str(raw.get("transport") or Transport.UDP)
    if transport not in Transport.values:
        raise InvalidTrunkSettings("transport", "Choose UDP, TCP or TLS.")
    username = str(raw.get("digest_username") or "").strip()
    if len(username) > 128 or not is_single_line(username):
        raise InvalidTrunkSettings("digest_username", "At most 128 characters on one line.")
    password = raw.get("digest_password")
    if password is not None:
        password = str(password)
        if len(password) > 128 or not is_single_line(password):
            raise InvalidTrunkSettings("digest_password", "At most 128 characters on one line.")
    networks = []
    for item in _items(raw.get("allowed_networks")):
        try:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise InvalidTrunkSettings(
                "allowed_networks", f"{item!r} is not an IP network (e.g. 192.0.2.0/24)."
            ) from None
    if len(networks) > MAX_NETWORKS:
        raise InvalidTrunkSettings("allowed_networks", f"At most {MAX_NETWORKS} networks.")
    codecs = [item.lower() for item in _items(raw.get("codecs"))] or [Codec.PCMU, Codec.PCMA]
    if not set(codecs) <= set(Codec.values) or len(set(codecs)) != len(codecs):
        raise InvalidTrunkSettings("codecs", "Codecs are pcmu and pcma, each at most once.")
    srtp = bool(raw.get("srtp"))
    if srtp and transport != Transport.TLS:
        # SDES puts the audio's keys in the SDP: over UDP or TCP anyone on the path reads them.
        raise InvalidTrunkSettings("srtp", "SRTP needs the TLS transport: its keys travel in SIP.")
    caller_id_format = str(raw.get("caller_id_format") or CallerIdFormat.E164)
    if caller_id_format not in CallerIdFormat.values:
        raise InvalidTrunkSettings("caller_id_format", "Choose e164 or digits.")
    limit = raw.get("max_concurrent_calls")
    if limit in (None, ""):
        limit = None
    else:
        try:
            limit = int(str(limit))
        except ValueError:
            limit = 0
        if not 1 <= limit <= 100_000:
            raise InvalidTrunkSettings(
                "max_concurrent_calls", "A number from 1 to 100000, or empty for no limit."
            )
    prefixes = _items(raw.get("outbound_prefixes"))
    if len(prefixes) > MAX_PREFIXES or not all(
        re.fullmatch(r"\+[0-9]{1,15}", prefix) for prefix in prefixes
    ):
        raise InvalidTrunkSettings(
            "outbound_prefixes",
            f"E.164 prefixes such as +1 or +4420, at most {MAX_PREFIXES}; empty allows any.",
        )
    return TrunkSettings(
        enabled=bool(raw.get("enabled")),
        address=address,
        transport=transport,
        digest_username=username,
        digest_password=password,
        allowed_networks=list(dict.fromkeys(networks)),
        codecs=[str(codec) for codec in codecs],
        srtp=srtp,
        caller_id_format=caller_id_format,
        assert_identity=bool(raw.get("assert_identity")),
        max_concurrent_calls=limit,
        outbound_prefixes=list(dict.fromkeys(prefixes)),
    )


def _items(raw: Any) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = re.split(r"[\s,]+", raw)
    return [str(item).strip() for item in raw if str(item).strip()]


def _check_address(address: str) -> str:
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        pass
    try:
        return check_fqdn(address)
    except SipConfigurationError:
        raise InvalidTrunkSettings(
            "address", "An IP address or a domain name (blank: the trunk's FQDN)."
        ) from None


def access_trunk(trunk_id: Any) -> SipTrunk:
    """A trunk by id (operators), with its resource. Raises ApiError 404."""
    try:
        return SipTrunk.objects.select_related("resource").get(pk=int(trunk_id))
    except (SipTrunk.DoesNotExist, ValueError, TypeError, OverflowError):
        raise ApiError("No such SIP trunk.", status=404, code="NotFound") from None


def update_trunk_settings(trunk: SipTrunk, settings: TrunkSettings) -> SipTrunk:
    """Store an operator's checked settings on `trunk` (what the ACS API sets is left alone)."""
    with transaction.atomic():
        trunk = SipTrunk.objects.select_for_update().get(pk=trunk.pk)
        trunk.enabled = settings.enabled
        trunk.address = settings.address
        trunk.transport = settings.transport
        trunk.digest_username = settings.digest_username
        if settings.digest_password is not None:
            trunk.digest_password = settings.digest_password
        trunk.allowed_networks = settings.allowed_networks
        trunk.codecs = settings.codecs
        trunk.srtp = settings.srtp
        trunk.caller_id_format = settings.caller_id_format
        trunk.assert_identity = settings.assert_identity
        trunk.max_concurrent_calls = settings.max_concurrent_calls
        trunk.outbound_prefixes = settings.outbound_prefixes
        trunk.save()
    return trunk
