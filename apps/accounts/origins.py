"""Each resource's own origin: how it is named, and which resource a request's host names.

ACS gives every resource a host name (`<name>.communication.azure.com`) and serves its API at
the root, and the official JavaScript SDKs refuse an endpoint with a path. So a resource's
endpoint is an origin of its own:

- `https://<slug>.<SPOOL_RESOURCE_DOMAIN>[:port]/` when a domain is configured (a wildcard DNS
  name and certificate; any number of hosts behind a load balancer that keeps `Host`);
- else `https://<public host>:<port>/`, an HTTPS port of the resource's own from
  SPOOL_RESOURCE_PORTS, which every web process listens on: this needs no DNS, so it works on
  one machine for clients that cannot resolve `*.localhost` (Node and Python here cannot);
- `/r/<slug>/` on the console's origin stays valid for existing clients.

The resource is resolved from the Host header, which is also what an HMAC signature covers; a
forged Host only picks which resource's keys the request must then prove it holds.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings

from apps.accounts.models import Resource

logger = logging.getLogger(__name__)

# How often each web process looks for resources created or deleted elsewhere.
PORT_POLL_SECONDS = 1.0

# Paths every origin serves as they are, not as part of a resource's API.
SHARED_PATHS = ("/.well-known/", "/healthz")


class UnknownResourceHost(Exception):
    """The host names a resource's origin (under SPOOL_RESOURCE_DOMAIN, or a port of
    SPOOL_RESOURCE_PORTS), but no resource has it."""


def split_host(host: str) -> tuple[str, int | None]:
    """`host[:port]` (as Django's get_host() returns it) into a lower-case name and a port."""
    parts = urlsplit(f"//{host}")
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), port


def _console_ports() -> set[int | None]:
    public = urlsplit(settings.PUBLIC_URL)
    default = 443 if public.scheme == "https" else 80
    return {None, settings.HTTP_PORT, settings.HTTPS_PORT, public.port or default}


def resource_for_host(host: str) -> Resource | None:
    """The resource whose own origin `host` names, or None for the console's origin.

    Raises UnknownResourceHost for a name under the resource domain that no resource has, so
    such a host never falls through to the console.
    """
    lookup = resource_lookup_for_host(host)
    if lookup is None:
        return None
    resource = Resource.objects.filter(**lookup).first()
    if resource is None and _is_resource_origin(host, lookup):
        raise UnknownResourceHost(host)  # a deleted resource's name or port, say
    return resource


def resource_lookup_for_host(host: str) -> dict[str, Any] | None:
    """How to find the resource whose origin `host` names (`{"slug": ...}` or
    `{"port": ...}`), or None for the console's origin (no query needed).

    Raises UnknownResourceHost for a name under the resource domain that cannot be a slug."""
    name, port = split_host(host)
    domain = settings.RESOURCE_DOMAIN
    if domain and name.endswith(f".{domain}") and name != settings.PUBLIC_HOST.lower():
        label = name[: -len(domain) - 1]
        if "." in label:
            raise UnknownResourceHost(name)
        return {"slug": label}
    if port in _console_ports():
        return None
    return {"port": port}


def _is_resource_origin(host: str, lookup: dict[str, Any]) -> bool:
    """Whether a host the lookup found no resource for still names a resource's origin: a name
    under the resource domain, or a port of SPOOL_RESOURCE_PORTS."""
    if "slug" in lookup:
        return True
    if settings.RESOURCE_PORTS is None:
        return False
    first, last = settings.RESOURCE_PORTS
    return first <= (lookup["port"] or 0) <= last


def resource_endpoint(resource: Resource) -> str:
    """The endpoint a connection string names: the resource's own origin."""
    public = urlsplit(settings.PUBLIC_URL)
    if settings.RESOURCE_DOMAIN:
        port = f":{public.port}" if public.port else ""
        return f"{public.scheme}://{resource.slug}.{settings.RESOURCE_DOMAIN}{port}/"
    if resource.port is not None:
        name = public.hostname or "127.0.0.1"
        host = f"[{name}]" if ":" in name else name
        return f"https://{host}:{resource.port}/"
    return path_endpoint(resource)


def path_endpoint(resource: Resource) -> str:
    """The endpoint under the console's origin, for clients configured before origins."""
    return f"{settings.PUBLIC_URL}/r/{resource.slug}/"


def _port_is_free(port: int) -> bool:
    family = socket.AF_INET6 if ":" in settings.BIND_ADDRESS else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((settings.BIND_ADDRESS, port))
        except OSError:
            return False
    return True


def free_resource_port() -> int | None:
    """The lowest port of SPOOL_RESOURCE_PORTS that no resource holds and no other program
    listens on; None when ports are off or all taken (the resource then has only its domain
    name and /r/<slug>/). Call inside the transaction that saves it: the port is unique."""
    if settings.RESOURCE_PORTS is None:
        return None
    first, last = settings.RESOURCE_PORTS
    taken = set(Resource.objects.exclude(port=None).values_list("port", flat=True))
    for port in range(first, last + 1):
        if port not in taken and _port_is_free(port):
            return port
    return None


def resource_ports() -> set[int]:
    """Every resource's port: what each web process listens on."""
    ports = Resource.objects.exclude(port=None).values_list("port", flat=True)
    return {port for port in ports if port is not None}


def listen_on_resource_ports(sender: Any, listeners: Any, **kwargs: Any) -> None:
    """core's `web_serving` receiver: keep the process listening on every resource's port (even
    with SPOOL_RESOURCE_PORTS now off, a port once given stays in clients' connection strings)."""
    asyncio.ensure_future(_follow_resource_ports(listeners))


async def _follow_resource_ports(listeners: Any) -> None:
    read_ports = database_sync_to_async(resource_ports)
    while not listeners.stopped:
        try:
            wanted = await read_ports()
        except Exception:  # the database is away: keep what is open, try again
            logger.exception("Cannot read the resources' ports")
        else:
            for port in wanted - listeners.ports():
                listeners.open(port)
            for port in listeners.ports() - wanted:
                listeners.close(port)
        await asyncio.sleep(PORT_POLL_SECONDS)
