"""The official ACS JavaScript SDKs (tests/js/*.test.mjs, `@azure/communication-*` from npm,
unchanged) against a live `manage.py serve`, with the connection string exactly as
`create_resource` prints it and the self-signed certificate through NODE_EXTRA_CA_CERTS."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from apps.calls.agent import CallAgent
from tests.conftest import ROOT, LiveSpool
from tests.e2e.test_call_agents import socket_url, voip_user
from tests.events.conftest import Receiver
from tests.janus import require_janus

pytestmark = pytest.mark.e2e

JS = ROOT / "tests" / "js"
# Needs a call agent beside it: run by its own test below.
CALL_AUTOMATION = "call-automation.test.mjs"
TEST_FILES = sorted(path.name for path in JS.glob("*.test.mjs") if path.name != CALL_AUTOMATION)


@pytest.fixture(scope="module")
def node() -> str:
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / ".installed").exists():
        message = "Node.js or the JS SDKs are missing: install Node 20, then `make install`"
        if os.environ.get("SPOOL_REQUIRE_TOOLS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return node


@pytest.fixture(scope="module")
def js_env(live_spool: LiveSpool) -> dict[str, str]:
    live_spool.manage("seed_numbers", "--country", "US", "--count", "10")
    connection = live_spool.create_resource()
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "NODE_EXTRA_CA_CERTS": live_spool.cert,
        "SPOOL_CONNECTION_STRING": connection,
        "SPOOL_OWNED_NUMBER": live_spool.give_number(connection),
    }


@pytest.mark.parametrize("test_file", TEST_FILES)
def test_the_official_js_sdk(node: str, js_env: dict[str, str], test_file: str) -> None:
    run_node(node, test_file, js_env)


def run_node(node: str, test_file: str, env: dict[str, str]) -> None:
    result = subprocess.run(
        [node, "--test", "--test-reporter=spec", test_file],
        cwd=JS,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"{test_file}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


@pytest.mark.timeout(120)
def test_the_official_js_call_automation_sdk(
    node: str, js_env: dict[str, str], live_spool: LiveSpool
) -> None:
    """The application (node, call-automation.test.mjs) calls an identity a Python call agent
    answers; the agent presses the keys node asks for (POSTed to `keys`) once its recognizer
    runs."""
    require_janus()
    # given an identity answered by a call agent, and where node asks it for keys
    callee_id, callee_token = voip_user(live_spool, js_env["SPOOL_CONNECTION_STRING"])
    agent = CallAgent(socket_url(live_spool.http_url), callee_token)
    keys = Receiver()
    keys.start()
    done = threading.Event()

    async def answer_and_press_keys() -> str | None:
        await agent.connect()
        try:
            while not done.is_set():
                try:
                    await agent.answer(timeout=1)
                    break
                except TimeoutError:
                    continue
            else:
                return None
            await agent.wait_state("Connected")
            pressed = 0
            while not done.is_set() and agent.state != "Disconnected":
                for request in keys.received[pressed:]:
                    pressed += 1
                    await asyncio.sleep(0.5)  # the recognizer starts just after its 202
                    for tone in json.loads(request.body)["tones"]:
                        await agent.send_dtmf(tone)
                await asyncio.sleep(0.05)
            if agent.state != "Disconnected":  # node may finish just before the agent hears
                await agent.wait_state("Disconnected", timeout=5)
            return agent.state
        finally:
            await agent.close()

    # when node runs the application
    started = time.monotonic()
    try:
        with ThreadPoolExecutor(1) as pool:
            answering = pool.submit(asyncio.run, answer_and_press_keys())
            try:
                run_node(
                    node,
                    CALL_AUTOMATION,
                    {**js_env, "SPOOL_CALLEE": callee_id, "SPOOL_KEYS_URL": keys.url},
                )
            finally:
                done.set()
            final_state = answering.result(timeout=30)
    finally:
        keys.stop()

    # then the agent was in the call until node hung up, and it all took well under a minute
    assert final_state == "Disconnected"
    assert len(keys.received) == 1
    assert time.monotonic() - started < 60


def test_every_js_test_file_is_collected() -> None:
    assert {"identity.test.mjs", "sms.test.mjs", "chat.test.mjs", "rooms.test.mjs"} <= set(
        TEST_FILES
    ), TEST_FILES
    assert (JS / CALL_AUTOMATION).exists()
    assert Path(JS / "package-lock.json").exists()
