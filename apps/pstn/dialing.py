"""Who may call which phone number, through which trunks: the toll-fraud rules of outbound
calls, checked before anything rings (apps/calls/signaling.py asks; the media process places
the call through the trunks in order, apps/automation/sip.py).

- The caller id must be one of the resource's own numbers with outbound calling.
- The number must be E.164, and a route of the resource must match it (`PATCH /sip`).
- Only enabled trunks carry calls; a trunk's outbound prefixes (if set) must allow the number,
  and its concurrency limit must not be reached.
- A resource has at most SPOOL_PSTN_MAX_CALLS phone calls at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

from apps.accounts.models import Resource
from apps.core.errors import ApiError
from apps.numbers import orders as numbers
from apps.numbers.models import Capability, NumberStatus
from apps.pstn import loopback, services
from apps.pstn.models import SipTrunk

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
OUTBOUND = (Capability.OUTBOUND, Capability.BOTH)


class DialRefused(ApiError):
    status = 403
    code = "Forbidden"


class NoRoute(ApiError):
    status = 400
    code = "NoRouteToNumber"


class TooManyPhoneCalls(ApiError):
    status = 429
    code = "TooManyCalls"


@dataclass(frozen=True)
class Dial:
    """A phone call that may go out: to `number`, showing `caller_id`, through `trunks` (the
    FQDNs of the resource's trunks, in the route's order)."""

    number: str
    caller_id: str
    trunks: tuple[str, ...]


def plan_dial(
    resource: Resource,
    number: str,
    caller_id: str | None,
    *,
    live_calls: int,
    live_by_trunk: dict[str, int],
) -> Dial:
    """Check an outbound phone call (`live_calls`: the resource's phone calls now;
    `live_by_trunk`: those per trunk FQDN). Raises InvalidCallRequest-like ApiErrors:
    DialRefused (caller id), NoRoute, TooManyPhoneCalls."""
    if not isinstance(number, str) or not E164.fullmatch(number):
        raise NoRoute(f"{number!r} is not an E.164 phone number.", target="to")
    if not isinstance(caller_id, str) or not caller_id:
        raise DialRefused(
            "Calls to phone numbers need a caller id: one of the resource's numbers "
            "(alternateCallerId).",
            target="alternateCallerId",
        )
    try:
        owned = numbers.access_owned_number(resource, caller_id)
    except ApiError:
        raise DialRefused(
            f"{caller_id} is not one of this resource's numbers.", target="alternateCallerId"
        ) from None
    if owned.owned_calling not in OUTBOUND:
        raise DialRefused(
            f"{owned.number} has no outbound calling: update its capabilities first.",
            target="alternateCallerId",
        )
    if live_calls >= settings.PSTN_MAX_CALLS:
        raise TooManyPhoneCalls(
            f"This resource has {live_calls} phone calls, the most it may have at once "
            f"({settings.PSTN_MAX_CALLS})."
        )
    routed = services.route_call(resource, number)
    if not routed and loopback.available():
        # No route takes it: the loopback carrier does (the deployment's numbers, virtual phones).
        return Dial(number, owned.number, (loopback.LOOPBACK,))
    trunks = [
        trunk
        for trunk in routed
        if trunk.allows_destination(number) and _has_room(trunk, live_by_trunk)
    ]
    if not trunks:
        raise NoRoute(
            f"No route of this resource reaches {number} through an enabled trunk with room "
            "for the call (SIP routing: PATCH /sip).",
            target="to",
        )
    return Dial(number, owned.number, tuple(trunk.fqdn for trunk in trunks))


def _has_room(trunk: SipTrunk, live_by_trunk: dict[str, int]) -> bool:
    limit = trunk.max_concurrent_calls
    return limit is None or live_by_trunk.get(trunk.fqdn, 0) < limit


def caller_ids(resource: Resource) -> list[str]:
    """The resource's numbers that may be a phone call's caller id (outbound calling)."""
    return list(
        resource.phone_numbers.filter(status=NumberStatus.OWNED, owned_calling__in=OUTBOUND)
        .order_by("number")
        .values_list("number", flat=True)
    )
