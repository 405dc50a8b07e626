"""The official ACS JavaScript SDKs (tests/js/*.test.mjs, `@azure/communication-*` from npm,
unchanged) against a live `manage.py serve`, with the connection string exactly as
`create_resource` prints it and the self-signed certificate through NODE_EXTRA_CA_CERTS."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, LiveSpool

pytestmark = pytest.mark.e2e

JS = ROOT / "tests" / "js"
TEST_FILES = sorted(path.name for path in JS.glob("*.test.mjs"))


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
    result = subprocess.run(
        [node, "--test", "--test-reporter=spec", test_file],
        cwd=JS,
        env=js_env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, f"{test_file}:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


def test_every_js_test_file_is_collected() -> None:
    assert {"identity.test.mjs", "sms.test.mjs", "chat.test.mjs", "rooms.test.mjs"} <= set(
        TEST_FILES
    ), TEST_FILES
    assert Path(JS / "package-lock.json").exists()
