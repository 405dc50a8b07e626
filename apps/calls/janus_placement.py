"""Which Janus server a call's media is on, when Spool drives several: the placement rule, the
servers' health, and the servers an operator configured.

Configuration (spool/settings.py, docs/configuration.md):
- `SPOOL_JANUS_URLS=ws://a:8188#calls=200,ws://b:8188#calls=100`: the servers, each with the
  most live calls it takes (no `#calls`: no limit). They serve both planes: group calls'
  VideoRoom (the web processes' legs, apps/calls/consumers.py) and the media process's
  AudioBridge and SIP plugin (apps/automation/media.py), so a group call's phones meet its
  browsers on one server.
- Unset: `SPOOL_JANUS_URL` (group calls) and `SPOOL_MEDIA_JANUS_URL` (the media process;
  `SPOOL_JANUS_URL`'s when unset), each a list of one.

The rule, in `choose`: a call is placed the first time it needs Janus (a group call through the
SFU when its first participant's media opens; a bridged call when the media process opens its
AudioBridge room), on the healthy server of its plane with the most spare capacity: its
capacity less the live calls placed on it. A server without a capacity has unlimited spare
capacity; ties go to the server with fewer live calls, then to the one listed first. A full
server takes no new call; when no server can take one, NoJanusServer (a JanusError). The choice
is stored on the call (`Call.janus_server`), so every web host and the media process use that
server for the call's whole life; the live calls counted are those rows.

Health: the media process checks each server every `SPOOL_JANUS_HEALTH_SECONDS` (Janus's `info`
request over its WebSocket API) and records what it found in the cache, which every host reads;
a process whose connection to a server dropped checks that server at once (`confirm_lost`). A
server that does not answer (twice, half a second apart) is down: it gets no new calls until it
answers again, and whoever found it down ends its live calls (apps.calls.signaling.
end_janus_calls: code 503, subCode 510503). A server never checked, or whose record expired,
counts as up.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count

from apps.calls.models import Call, CallTopology
from apps.calls.sfu import CONNECTION_LOST, JanusError, _Connection

logger = logging.getLogger(__name__)

# The two planes: group calls' VideoRoom, and the media process's AudioBridge and SIP plugin.
SFU = "sfu"
MEDIA = "media"
PROBE_SECONDS = 3.0  # for one `info` answer
PROBE_RETRY_SECONDS = 0.5  # a server is down after two probes this far apart both failed
HEALTH_KEY = "janus-health:{url}"


@dataclass(frozen=True)
class JanusServer:
    url: str
    calls: int = 0  # the most live calls placed on it; 0: no limit


@dataclass(frozen=True)
class ServerState:
    """One configured server as placement sees it (the metrics show these)."""

    url: str
    calls: int  # its capacity (0: no limit)
    live: int  # live calls placed on it
    up: bool | None  # None: not checked lately


class NoJanusServer(JanusError):
    """No configured Janus server can take a new call (none configured, all down or full)."""

    def __init__(self, message: str) -> None:
        super().__init__(CONNECTION_LOST, message)


# --- The servers -----------------------------------------------------------------------------
def servers(plane: str) -> list[JanusServer]:
    """The servers of `plane` (SFU or MEDIA), in the order the operator listed them."""
    if settings.JANUS_SERVERS:
        return [JanusServer(url, calls) for url, calls in settings.JANUS_SERVERS]
    url = settings.JANUS_URL if plane == SFU else settings.MEDIA_JANUS_URL or settings.JANUS_URL
    return [JanusServer(url)] if url else []


def all_servers() -> list[JanusServer]:
    """Every configured server, of either plane, once."""
    seen: dict[str, JanusServer] = {}
    for server in [*servers(SFU), *servers(MEDIA)]:
        seen.setdefault(server.url, server)
    return list(seen.values())


def media_shares_sfu() -> bool:
    """Whether the media process drives the servers group calls are on (phones can then join
    group calls: the AudioBridge of a call is bridged to its VideoRoom on the same server)."""
    return {s.url for s in servers(SFU)} <= {s.url for s in servers(MEDIA)}


def plane_of(topology: str) -> str:
    return SFU if topology == CallTopology.SFU else MEDIA


# --- Placement -------------------------------------------------------------------------------
def live_calls() -> dict[str, int]:
    """Live calls placed on each server (servers without any are left out)."""
    rows = (
        Call.objects.filter(ended_at__isnull=True)
        .exclude(janus_server="")
        .values("janus_server")
        .annotate(n=Count("pk"))
    )
    return {row["janus_server"]: row["n"] for row in rows}


def choose(plane: str) -> str:
    """The server a new call of `plane` goes to (the module's rule). Raises NoJanusServer."""
    configured = servers(plane)
    if not configured:
        raise NoJanusServer("No Janus server is configured (SPOOL_JANUS_URLS).")
    up = health([server.url for server in configured])
    live = live_calls()

    def spare(server: JanusServer) -> float:
        return server.calls - live.get(server.url, 0) if server.calls else math.inf

    candidates = [
        (index, server)
        for index, server in enumerate(configured)
        if up[server.url] is not False and spare(server) > 0
    ]
    if not candidates:
        down = sum(1 for server in configured if up[server.url] is False)
        raise NoJanusServer(
            f"No Janus server can take the call: {down} of {len(configured)} down, the others full."
        )
    _, best = min(candidates, key=lambda pair: (-spare(pair[1]), live.get(pair[1].url, 0), pair[0]))
    return best.url


def place(call_id: Any) -> str:
    """The server of the call `call_id`'s media: the one it was placed on, or (the first time)
    one chosen now for its plane and stored on the call. Two processes placing the same call at
    once agree (the first stored wins). Raises NoJanusServer, also for an unknown or ended call
    that was never placed."""
    key = uuid.UUID(str(call_id))
    row = Call.objects.filter(pk=key).values("janus_server", "topology", "ended_at").first()
    if row is None:
        raise NoJanusServer(f"Call {call_id} is not there.")
    if row["janus_server"]:
        return str(row["janus_server"])
    if row["ended_at"] is not None:
        raise NoJanusServer(f"Call {call_id} has ended.")
    url = choose(plane_of(row["topology"]))
    if Call.objects.filter(pk=key, janus_server="").update(janus_server=url):
        logger.info("call %s placed on Janus %s", call_id, url)
        return url
    return str(Call.objects.values_list("janus_server", flat=True).get(pk=key))


def server_of(call_id: Any) -> str:
    """The server the call was placed on ("" if none)."""
    found = Call.objects.filter(pk=uuid.UUID(str(call_id))).values_list("janus_server", flat=True)
    return str(found.first() or "")


def up_server(plane: str) -> str:
    """A healthy server of `plane` for what is no call (the media process's SIP line, a
    console's virtual phone): the first listed that is not down ("" if none is configured;
    the first one when all are down, which the caller's requests will find out)."""
    configured = servers(plane)
    if not configured:
        return ""
    up = health([server.url for server in configured])
    return next((s.url for s in configured if up[s.url] is not False), configured[0].url)


def states() -> list[ServerState]:
    """Every configured server with its capacity, live calls and health (for the metrics)."""
    configured = all_servers()
    up = health([server.url for server in configured])
    live = live_calls()
    return [
        ServerState(server.url, server.calls, live.get(server.url, 0), up[server.url])
        for server in configured
    ]


# --- Health ----------------------------------------------------------------------------------
def _key(url: str) -> str:
    return HEALTH_KEY.format(url=url)


def _ttl() -> int:
    # Outlives a few missed checks; then the server counts as up again (nobody checks it).
    return int(max(60.0, 6 * settings.JANUS_HEALTH_SECONDS))


def health(urls: list[str]) -> dict[str, bool | None]:
    """Each server's last recorded health: True up, False down, None not checked lately."""
    records = cache.get_many([_key(url) for url in urls])
    return {url: bool(records[_key(url)]["up"]) if _key(url) in records else None for url in urls}


def is_down(url: str) -> bool:
    return health([url])[url] is False


def record(url: str, up: bool, reason: str = "") -> bool:
    """Store what a check found; returns whether the server was up before (or unknown)."""
    before = cache.get(_key(url))
    was_up = before is None or bool(before["up"])
    since = before["since"] if before is not None and bool(before["up"]) == up else time.time()
    cache.set(_key(url), {"up": up, "since": since, "reason": reason}, _ttl())
    if was_up and not up:
        logger.error("Janus %s is down (%s): it takes no new calls", url, reason)
    elif not was_up and up:
        logger.warning("Janus %s answers again: it takes new calls", url)
    return was_up


async def probe(url: str, timeout: float = PROBE_SECONDS) -> str:
    """Ask the server for its `info`: "" when it answered, else why not."""
    connection = _Connection(url, lambda message: None)
    try:
        await connection.open(timeout)
        reply = await connection.request({"janus": "info"}, timeout=timeout)
        if reply.get("janus") != "server_info":
            return f"unexpected answer {reply.get('janus')!r}"
        return ""
    except JanusError as error:
        return error.reason
    except Exception as error:  # a bad URL, a refused handshake: not a Janus that answers
        return str(error) or type(error).__name__
    finally:
        try:
            await connection.close()
        except Exception as error:
            logger.debug("closing a probe of %s: %s", url, error)


async def check(url: str) -> bool:
    """Probe the server (again after a moment if it did not answer) and record what was found;
    returns whether it is up."""
    reason = await probe(url)
    if reason:
        await asyncio.sleep(PROBE_RETRY_SECONDS)
        reason = await probe(url)
    await sync_to_async(record)(url, not reason, reason)
    return not reason


async def check_all() -> list[str]:
    """Check every configured server at once; returns those down."""
    urls = [server.url for server in all_servers()]
    found = await asyncio.gather(*(check(url) for url in urls))
    return [url for url, up in zip(urls, found, strict=True) if not up]


async def confirm_lost(url: str) -> bool:
    """A connection to the server dropped: is the server itself down (then it is recorded so,
    and its calls should end), or did only that connection go? An unconfigured URL (a test's,
    a server taken out of the list) is checked all the same."""
    return not await check(url)
