"""Relay (TURN) credentials for browsers behind NAT, in coturn's REST-API scheme.

coturn with `use-auth-secret` and `static-auth-secret=<SPOOL_TURN_SECRET>` accepts, until the
time in it, the username `<unix expiry>:<user>` with the password
base64(HMAC-SHA1(secret, username)). Nothing is stored: any web process can hand them out,
and coturn checks them without asking Spool.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.calls.exceptions import InvalidRoomRequest

ROUTE_TYPES = ("any", "nearest")
MAX_TTL_SECONDS = 172800  # what ACS allows


@dataclass(frozen=True)
class RelayConfiguration:
    expires_on: datetime
    ice_servers: list[dict[str, Any]]


def turn_password(username: str, secret: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def relay_configuration(
    user: str, *, ttl: int | None = None, route_type: str | None = None
) -> RelayConfiguration:
    """ICE servers for `user`: the configured STUN servers and TURN servers with credentials
    valid for `ttl` seconds (capped by SPOOL_TURN_TTL_SECONDS). Empty when none are set."""
    seconds = min(ttl if ttl is not None else MAX_TTL_SECONDS, settings.TURN_TTL_SECONDS)
    expires = int(time.time()) + seconds
    username = f"{expires}:{user}"
    route = route_type or "any"
    servers: list[dict[str, Any]] = []
    if settings.TURN_URLS:
        servers.append(
            {
                "urls": list(settings.TURN_URLS),
                "username": username,
                "credential": turn_password(username, settings.TURN_SECRET),
                "routeType": route,
            }
        )
    if settings.STUN_URLS:
        # STUN needs no credentials; ACS's shape requires the fields, so they are empty.
        servers.append(
            {"urls": list(settings.STUN_URLS), "username": "", "credential": "", "routeType": route}
        )
    return RelayConfiguration(datetime.fromtimestamp(expires, UTC), servers)


def check_relay_request(
    resource: Resource, body: dict[str, Any]
) -> tuple[str, int | None, str | None]:
    """The user (an identity of `resource`, or the resource itself), TTL and route type of an
    ACS issueRelayConfiguration request. Raises InvalidRoomRequest (400) naming the field."""
    raw_id = body.get("id")
    if raw_id is not None:
        if not isinstance(raw_id, str):
            raise InvalidRoomRequest("id must be an identity's raw id.", target="id")
        accounts.access_identity(resource, raw_id)  # 404 for anyone else's
    ttl = body.get("ttl")
    if ttl is not None and (
        isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 < ttl <= MAX_TTL_SECONDS
    ):
        raise InvalidRoomRequest(
            f"ttl must be a number of seconds from 1 to {MAX_TTL_SECONDS}.", target="ttl"
        )
    route_type = body.get("routeType")
    if route_type is not None and route_type not in ROUTE_TYPES:
        raise InvalidRoomRequest("routeType must be any or nearest.", target="routeType")
    return raw_id or f"resource:{resource.pk}", ttl, route_type
