"""`manage.py beat`: Celery beat, run only while this process holds the deployment's beat lock.

Beat schedules the sweeps, rollups and retries; two beats would schedule each twice. Every
host may run `serve --role beat` (so losing one loses no beat): each waits for the lock, a Redis
key with a time to live (`SPOOL_BEAT_LOCK_SECONDS`), and the one that holds it renews it and runs
beat. If the holder dies, the key expires and a waiting one starts beat within that time. If the
holder cannot renew (Redis gone longer than the lock lives, or the key taken over), it stops its
beat before another could start one.

The lock's owner is `SPOOL_BEAT_OWNER` when `serve` sets it (its host and pid), so a beat that
`serve` restarts takes its own lock back at once instead of waiting for it to expire.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from apps.core.management.commands.serve import die_with_parent
from apps.core.quotas import cache_redis

logger = logging.getLogger(__name__)

LOCK_KEY = "spool:beat-lock"
TICK_SECONDS = 0.2


class Command(BaseCommand):
    help = "Run Celery beat while holding the deployment's beat lock (one beat at a time)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stopping = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._request_stop)
        client = cache_redis()
        if client is None:
            raise SystemExit("beat needs the Redis cache (REDIS_URL or the embedded Redis)")
        ttl = settings.BEAT_LOCK_SECONDS
        owner = os.environ.get("SPOOL_BEAT_OWNER") or f"{socket.gethostname()}:{os.getpid()}"
        lock = client.lock(LOCK_KEY, timeout=ttl, thread_local=False)
        if not self._wait_for(lock, owner, ttl):
            return
        logger.info("beat lock taken by %s: starting beat", owner)
        beat = subprocess.Popen(
            [
                sys.executable,
                *("-m", "celery", "-A", "spool", "--quiet", "beat"),
                *("--loglevel", settings.WORKER_LOG_LEVEL),
                *("--schedule", str(settings.DATA_DIR / "celerybeat-schedule")),
            ],
            preexec_fn=die_with_parent,  # never a beat left running without its lock holder
        )
        try:
            self._hold(lock, ttl, beat)
        finally:
            if beat.poll() is None:
                beat.terminate()
                try:
                    beat.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    beat.kill()
            if self.stopping:  # a clean stop hands the lock on at once
                try:
                    lock.release()
                except (LockError, RedisError):
                    pass
        if not self.stopping:
            raise SystemExit(1)  # serve restarts us: we wait for the lock again

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.stopping = True

    def _wait_for(self, lock: Lock, owner: str, ttl: int) -> bool:
        """Block until this process holds the lock (True), or is asked to stop (False)."""
        told = False
        while not self.stopping:
            try:
                if _take(lock, owner):
                    return True
                if not told:
                    holder = lock.redis.get(LOCK_KEY)
                    logger.warning(
                        "another beat holds the lock (%s): waiting to take over",
                        holder.decode() if holder else "?",
                    )
                    told = True
            except RedisError as error:
                logger.warning("beat lock: Redis did not answer (%s); retrying", error)
            self._sleep(max(1.0, ttl / 3))
        return False

    def _hold(self, lock: Lock, ttl: int, beat: subprocess.Popen[bytes]) -> None:
        """Renew the lock every third of its life while beat runs; stop beat when renewing
        fails for longer than the lock lives (another may hold it by then), or at once when
        the lock is someone else's."""
        renewed = time.monotonic()
        while not self.stopping and beat.poll() is None:
            self._sleep(ttl / 3)
            try:
                lock.reacquire()
                renewed = time.monotonic()
            except LockError:
                logger.error("the beat lock was taken over: stopping this beat")
                return
            except RedisError as error:
                if time.monotonic() - renewed >= ttl:
                    logger.error("beat lock not renewed for %d s (%s): stopping beat", ttl, error)
                    return
        if beat.poll() is not None and not self.stopping:
            logger.error("beat exited with %s", beat.returncode)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(TICK_SECONDS)


def _take(lock: Lock, owner: str) -> bool:
    """Take the lock for `owner`: free, or already `owner`'s (a restarted beat of the same
    serve)."""
    if lock.acquire(blocking=False, token=owner):
        return True
    lock.local.token = owner.encode()
    try:
        lock.reacquire()
    except LockError:
        lock.local.token = None
        return False
    return True
