"""Settings for the test suite: spool.settings plus fast, isolated test services.

Unit tests use the in-memory channel layer, a local-memory cache and eager Celery unless
REDIS_URL is set (the CI run on real services). End-to-end tests start `manage.py serve`
with the real settings in their own data dir.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile

if "SPOOL_DATA_DIR" not in os.environ:
    os.environ["SPOOL_DATA_DIR"] = tempfile.mkdtemp(prefix="spool-test-")

from spool.settings import *  # noqa: E402,F403
from spool.settings import DATA_DIR, DATABASES, REDIS_URL  # noqa: E402

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
TOKEN_TIME_FLUSH_SECONDS = 0  # write "last token issued" at once, so tests can read it
# The request log stays in its buffer (as in production, off the queries a request costs);
# tests/core/test_request_log.py flushes it when it wants the rows.
REQUEST_LOG_FLUSH_SECONDS = 3600
GROUP_COMMIT = False  # each test is one transaction: no other thread sees its rows
SMS_RECORD_BEHIND = False  # the same
SMS_DRAIN_LINGER_MS = 0  # eager Celery runs the job inline: nothing else can arrive meanwhile
CELERY_TASK_EAGER_PROPAGATES = True
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# Test receivers listen on loopback; tests/core/test_outbound.py takes this away to attack.
OUTBOUND_ALLOWED_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, as in production (WAL, busy timeout): Django's default in-memory test database
    # locks whole tables across threads, so carrier threads and webhook races could not run.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}

if not os.environ.get("REDIS_URL"):
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "spool-test",
        }
    }
