"""Several Janus servers behind one live `manage.py serve` (SPOOL_JANUS_URLS): group calls of
Python call agents spread over both, one Janus is killed, its calls end with 503 / 510503 while
the call on the other goes on, and a new call goes to the Janus that is left. The metrics show
each server's health and calls placed on it."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.calls.agent import CallAgent
from tests.conftest import LiveSpool, start_spool, stop_spool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.janus import require_janus, run_janus

pytestmark = pytest.mark.e2e

TOKEN = "e2e-janus-servers-metrics-0123456789"
GONE = {"code": 503, "subCode": 510503}  # docs/calls.md: the call's Janus server went away


def janus_metrics(live: LiveSpool) -> dict[tuple[str, str], float]:
    """{(metric, server): value} for spool_janus_up and spool_janus_calls."""
    request = urllib.request.Request(
        f"{live.http_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, sample.labels["server"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name in ("spool_janus_up", "spool_janus_calls")
        for sample in family.samples
    }


async def hear_each_other(agents: list[CallAgent], frames: int = 25, timeout: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not all(
        len(agent.frames_from) == len(agents) - 1 and min(agent.frames_from.values()) > frames
        for agent in agents
    ):
        if loop.time() > deadline:
            raise AssertionError([agent.frames_from for agent in agents])
        await asyncio.sleep(0.1)


async def until_metrics(live: LiveSpool, wanted: dict[tuple[str, str], float]) -> None:
    """The scrape shows `wanted` within a few seconds (the media process checks each Janus
    every second here)."""
    seen: dict[tuple[str, str], float] = {}
    for _ in range(50):
        seen = await asyncio.to_thread(janus_metrics, live)
        if all(seen.get(key) == value for key, value in wanted.items()):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{wanted} not in {seen}")


@pytest.mark.timeout(120)
def test_calls_spread_over_two_janus_and_the_calls_of_one_that_dies_end_while_new_ones_go_on() -> (
    None
):
    require_janus()
    with run_janus() as first, run_janus() as second:
        live, cleanups = start_spool(
            {
                "SPOOL_JANUS_URLS": f"{first.url}#calls=20,{second.url}#calls=20",
                "SPOOL_JANUS_HEALTH_SECONDS": "1",
                "SPOOL_METRICS_TOKEN": TOKEN,
            }
        )
        try:
            connection = live.create_resource()
            tokens = [voip_user(live, connection)[1] for _ in range(6)]
            agents = [CallAgent(socket_url(live.http_url), token) for token in tokens]
            on_first, on_second, newcomers = agents[:2], agents[2:4], agents[4:]

            async def scenario() -> None:
                try:
                    # given two group calls, placed one on each Janus (the first goes to the
                    # first listed; the second to the one with more room left), with audio
                    for call in (on_first, on_second):
                        group = str(uuid.uuid4())
                        for agent in call:
                            await agent.connect()
                            await agent.join(group_id=group)
                        await hear_each_other(call)
                        assert {agent.topology for agent in call} == {"sfu"}
                    await until_metrics(
                        live,
                        {
                            ("spool_janus_calls", first.url): 1,
                            ("spool_janus_calls", second.url): 1,
                            ("spool_janus_up", first.url): 1,
                            ("spool_janus_up", second.url): 1,
                        },
                    )

                    # when the first Janus dies
                    os.kill(first.pid, signal.SIGKILL)

                    # then its call ends for both its participants with the documented reason
                    for agent in on_first:
                        await agent.wait_state("Disconnected", timeout=15)
                        assert agent.end_reason == GONE, agent.end_reason
                    # and the call on the other Janus goes on, its audio still flowing
                    before = [sum(agent.frames_from.values()) for agent in on_second]
                    await asyncio.sleep(1)
                    after = [sum(agent.frames_from.values()) for agent in on_second]
                    assert all(b > a + 25 for a, b in zip(before, after, strict=True))
                    assert {agent.state for agent in on_second} == {"Connected"}
                    await until_metrics(
                        live,
                        {
                            ("spool_janus_up", first.url): 0,
                            ("spool_janus_calls", first.url): 0,
                            ("spool_janus_calls", second.url): 1,
                        },
                    )

                    # and a new call goes to the Janus that is left, where its audio flows
                    group = str(uuid.uuid4())
                    for agent in newcomers:
                        await agent.connect()
                        await agent.join(group_id=group)
                    await hear_each_other(newcomers)
                    await until_metrics(live, {("spool_janus_calls", second.url): 2})
                    for agent in [*on_second, *newcomers]:
                        await agent.hang_up()
                        await agent.wait_state("Disconnected")
                finally:
                    for agent in agents:
                        await agent.close()

            asyncio.run(asyncio.wait_for(scenario(), 90))
        finally:
            stop_spool(live, cleanups)
