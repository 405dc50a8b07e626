"""Hosts that split the roles: `serve --role web` takes work that only a `serve --role worker`
host does, and of several beat hosts exactly one runs beat, another taking over when it dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
import requests

from apps.core.management.commands.beat import LOCK_KEY
from apps.core.management.commands.serve import parse_roles
from tests.conftest import ROOT, LiveSpool, free_port, start_spool, stop_spool, wait_for

pytestmark = pytest.mark.e2e

LOCK_SECONDS = 3
TOKEN = "metrics-token-for-the-test"


def beat_host(redis_url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    data_dir.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        REDIS_URL=redis_url,
        SPOOL_DATA_DIR=str(data_dir),
        SPOOL_BEAT_LOCK_SECONDS=str(LOCK_SECONDS),
        PYTHONUNBUFFERED="1",
    )
    env.pop("SPOOL_BEAT_OWNER", None)
    log = open(data_dir / "beat.log", "wb")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "beat"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def sms_status(live: LiveSpool, message_id: str) -> str:
    script = f"from apps.sms.models import SmsMessage; print(SmsMessage.objects.get(pk={message_id!r}).status)"
    return live.manage("shell", "-c", script).stdout.split()[-1]


def runs_celery_beat(process: subprocess.Popen[bytes]) -> bool:
    try:
        children = psutil.Process(process.pid).children()
    except psutil.NoSuchProcess:
        return False
    return any("celery" in " ".join(child.cmdline()) for child in children)


def test_roles_are_checked() -> None:
    assert parse_roles("all") == {"web", "worker", "beat", "media"}
    assert parse_roles("web, worker") == {"web", "worker"}
    for wrong in ("", "web,cron", "everything"):
        with pytest.raises(Exception, match="is not a role"):
            parse_roles(wrong)


def test_a_host_with_some_roles_needs_the_shared_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "REDIS_URL")}
    env["SPOOL_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "serve", "--role", "worker"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "set REDIS_URL" in done.stderr


@pytest.mark.timeout(90)
def test_one_beat_runs_and_another_takes_over_when_it_dies(
    shared_redis: str, tmp_path: Path
) -> None:
    # given two beat hosts on one Redis
    first = beat_host(shared_redis, tmp_path / "a")
    wait_for(lambda: runs_celery_beat(first), 30)
    second = beat_host(shared_redis, tmp_path / "b")
    try:
        # then only the first runs beat; the second waits, and says so
        wait_for(
            lambda: b"another beat holds the lock" in (tmp_path / "b/beat.log").read_bytes(), 30
        )
        time.sleep(LOCK_SECONDS)  # several renewals: the second still waits
        assert runs_celery_beat(first) and not runs_celery_beat(second)

        # when the first host dies at once (its beat goes with it)
        beat = psutil.Process(first.pid).children()
        first.kill()
        first.wait()
        psutil.wait_procs(beat, timeout=10)

        # then the second runs beat once the lock has expired
        took = wait_for(lambda: runs_celery_beat(second), LOCK_SECONDS * 4)
        assert took <= LOCK_SECONDS * 2 + 2

        # and a clean stop hands the lock on at once
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0
        assert redis.Redis.from_url(shared_redis).get(LOCK_KEY) is None
    finally:
        for host in (first, second):
            if host.poll() is None:
                host.kill()
                host.wait()


@pytest.mark.timeout(180)
def test_a_web_host_takes_work_that_a_worker_host_does(shared_redis: str) -> None:
    # given a web-only host (its Redis is the shared one)
    web, web_cleanups = start_spool({"REDIS_URL": shared_redis}, serve_args=["--role", "web"])
    try:
        wait_for(lambda: "Spool is running (web)" in (web.data_dir / "serve.log").read_text(), 10)
        assert not any(
            "celery" in " ".join(p.cmdline()) for p in psutil.Process(web.process.pid).children()
        )
        connection = web.create_resource()
        sender = web.give_number(connection)
        from azure.communication.sms import SmsClient

        sms = SmsClient.from_connection_string(connection, connection_verify=web.cert)
        [sent] = sms.send(from_=sender, to=["+14255550123"], message="hi")
        assert sent.successful
        # when no worker host runs, the message waits
        time.sleep(3)
        assert sms_status(web, sent.message_id) == "queued"

        # when a worker host with the same database and Redis starts
        metrics_port = free_port()
        worker_env = {
            **web.env,
            "SPOOL_METRICS_TOKEN": TOKEN,
            "SPOOL_METRICS_PORT": str(metrics_port),
        }
        worker = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", "--role", "worker,beat"],
            env=worker_env,
            cwd=ROOT,
            stdout=open(web.data_dir / "worker-host.log", "wb"),
            stderr=subprocess.STDOUT,
        )
        try:
            # then it sends the message
            wait_for(lambda: sms_status(web, sent.message_id) not in ("queued", "sending"), 60)
            # and its own /metrics (it has no web role) counts what its worker sent
            metrics = f"http://127.0.0.1:{metrics_port}/metrics"
            assert requests.get(metrics, timeout=5).status_code == 401
            scraped = requests.get(
                metrics, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
            ).text
            assert "spool_sms_submitted_total 1.0" in scraped
            assert (
                requests.get(metrics.replace("/metrics", "/admin/"), timeout=5).status_code == 404
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    finally:
        stop_spool(web, web_cleanups)
