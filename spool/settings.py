"""Spool settings: one module, driven by the environment, runnable with nothing set.

With no variables set Spool runs on its embedded defaults: SQLite and a private Redis
(started by `manage.py serve`) under $SPOOL_DATA_DIR. DATABASE_URL and REDIS_URL switch to
real services. See docs/configuration.md for every variable.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

# Lets model and admin classes be subscripted for type checking.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {value!r}") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {number}")
    return number


def env_int_list(name: str, default: list[int]) -> list[int]:
    items = env_list(name)
    try:
        return [int(item) for item in items] if items else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be integers separated by commas") from None


def env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def env_port_range(name: str, default: tuple[int, int] | None) -> tuple[int, int] | None:
    """`first-last` (inclusive), or `off`."""
    value = os.environ.get(name, "").strip().lower()
    if value == "":
        return default
    if value == "off":
        return None
    first, _, last = value.partition("-")
    try:
        ports = (int(first), int(last or first))
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be first-last (e.g. 8444-8643) or off") from None
    if not 1 <= ports[0] <= ports[1] <= 65535:
        raise ImproperlyConfigured(f"{name} must be a range of ports within 1-65535, got {value!r}")
    return ports


def env_janus_servers(name: str) -> list[tuple[str, int]]:
    """Janus servers, comma-separated: each its WebSocket API (`ws://` or `wss://`), optionally
    with the most calls it takes (`ws://10.0.0.7:8188#calls=200`; none: no limit). Returns
    (url, calls) pairs, calls 0 for no limit."""
    servers: list[tuple[str, int]] = []
    for entry in env_list(name):
        url, _, capacity = entry.partition("#")
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ImproperlyConfigured(
                f"{name}: {entry!r} is not a Janus WebSocket URL (ws://host:8188)"
            )
        calls = 0
        if capacity:
            key, _, value = capacity.partition("=")
            if key != "calls" or not value.isdigit() or int(value) < 1:
                raise ImproperlyConfigured(
                    f"{name}: after # comes calls=N, N at least 1 (ws://host:8188#calls=200), "
                    f"got {entry!r}"
                )
            calls = int(value)
        if url in (known for known, _ in servers):
            raise ImproperlyConfigured(f"{name} names {url} twice")
        servers.append((url, calls))
    return servers


def env_limit(name: str, default: str) -> tuple[int, int] | None:
    """A quota: `count/seconds`, e.g. `1000/30`, or `off` (not counted at all)."""
    value = os.environ.get(name, "").strip() or default
    if value.lower() == "off":
        return None
    count, _, seconds = value.partition("/")
    try:
        limit = (int(count), int(seconds))
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be count/seconds, e.g. 1000/30") from None
    if min(limit) < 1:
        raise ImproperlyConfigured(f"{name} must be positive numbers, got {value!r}")
    return limit


def _public_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(f"SPOOL_PUBLIC_URL must be scheme://host[:port], got {value!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ImproperlyConfigured(f"SPOOL_PUBLIC_URL must not have a path, got {value!r}")
    # Clients omit a default port from Host, and HMAC signatures cover the host as sent.
    default_port = {"http": 80, "https": 443}[parts.scheme]
    netloc = parts.netloc if parts.port not in (default_port,) else parts.netloc.rsplit(":", 1)[0]
    return f"{parts.scheme}://{netloc}"


# --- Where this deployment writes -------------------------------------------------------
DATA_DIR = Path(os.environ.get("SPOOL_DATA_DIR", "var")).resolve()
# What Spool writes (the database and its WAL with access keys and webhook secrets, Redis's
# files, mail, keys) is for its own user only: new files 0600 and folders 0700, and what an
# older version left readable is closed now.
os.umask(0o077)
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _close_data_dir(folder: Path) -> None:
    try:
        folder.chmod(0o700)
        for path in folder.iterdir():
            if path.is_file() and not path.is_symlink():
                path.chmod(0o600)
            elif path.is_dir() and path.name in ("redis", "mail", "tls", "signing-keys"):
                _close_data_dir(path)
    except OSError:
        pass  # not ours to change (a read-only mount, another owner): left as it is


_close_data_dir(DATA_DIR)


def _generated_secret_key() -> str:
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = os.environ.get("SECRET_KEY") or _generated_secret_key()
DEBUG = env_bool("DEBUG")

HTTP_PORT = env_int("SPOOL_HTTP_PORT", 8000, minimum=1)
HTTPS_PORT = env_int("SPOOL_HTTPS_PORT", 8443, minimum=1)
BIND_ADDRESS = os.environ.get("SPOOL_BIND", "127.0.0.1")
PUBLIC_URL = _public_url(os.environ.get("SPOOL_PUBLIC_URL") or f"https://127.0.0.1:{HTTPS_PORT}")
PUBLIC_HOST = urlsplit(PUBLIC_URL).hostname or "127.0.0.1"

# Each resource's ACS API answers at the root of an origin of its own, as ACS does
# (<name>.communication.azure.com), since the official JS SDKs refuse an endpoint with a path:
# `<slug>.<SPOOL_RESOURCE_DOMAIN>` with a wildcard DNS name and certificate, or, with no domain
# (one machine, no DNS), an HTTPS port of its own from SPOOL_RESOURCE_PORTS. /r/<slug>/ on the
# console's origin keeps working. See docs/endpoints.md.
RESOURCE_DOMAIN = os.environ.get("SPOOL_RESOURCE_DOMAIN", "").strip().lower().strip(".")
if RESOURCE_DOMAIN and not all(
    label and len(label) <= 63 and label.replace("-", "").isalnum()
    for label in RESOURCE_DOMAIN.split(".")
):
    raise ImproperlyConfigured(f"SPOOL_RESOURCE_DOMAIN must be a DNS name, got {RESOURCE_DOMAIN!r}")
RESOURCE_PORTS = env_port_range(
    "SPOOL_RESOURCE_PORTS", None if RESOURCE_DOMAIN else (HTTPS_PORT + 1, HTTPS_PORT + 200)
)

TLS_DIR = DATA_DIR / "tls"
# An operator's own certificate is never replaced; only the default pair is self-signed.
OPERATOR_TLS = bool(os.environ.get("SPOOL_TLS_CERT") or os.environ.get("SPOOL_TLS_KEY"))
TLS_CERT = Path(os.environ.get("SPOOL_TLS_CERT") or TLS_DIR / "spool.crt")
TLS_KEY = Path(os.environ.get("SPOOL_TLS_KEY") or TLS_DIR / "spool.key")
SIGNING_KEYS_DIR = Path(os.environ.get("SPOOL_SIGNING_KEYS_DIR") or DATA_DIR / "signing-keys")

WEB_PROCESSES = env_int("SPOOL_WEB_PROCESSES", 2, minimum=1)
# One Django thread per web process on SQLite, like a sync WSGI worker: more threads only
# queue on the GIL (bench/tokens.py at 32 clients: p99 ~40 ms with 1, ~55 with 2, ~65 with 4,
# 90+ with 16). On PostgreSQL every query is a round trip, and a second thread works while the
# first waits (2026-12-05, 32 clients: tokens 1,238 -> 1,451/s, SMS sends 676 -> 805/s).
# Raise it when views wait on slower I/O (a distant database).
WEB_THREADS = env_int("SPOOL_WEB_THREADS", 2 if os.environ.get("DATABASE_URL") else 1, minimum=1)
# Writes kept off the hot path (apps/core/batching.py) go every tenth of a second: a batch of
# two seconds of busy traffic held the web process's GIL for ~60 ms and set the p99 of token
# requests (bench/tokens.py: ~45 ms at 2 s, ~21 ms at 0.1 s).
TOKEN_TIME_FLUSH_SECONDS = env_float("SPOOL_TOKEN_TIME_FLUSH_SECONDS", 0.1)
# Accepted SMS and posted chat messages are committed by one thread per web process, many
# requests in one transaction (apps/sms/send_route.py, apps/chat/message_route.py); tests
# store them in the request's own transaction instead.
GROUP_COMMIT = True
# A delivering worker records the carrier's answers to a chunk of SMS on a thread of its own
# while it submits the next chunk (apps/sms/delivery.py); tests record them in line.
SMS_RECORD_BEHIND = True
# The console's charts: hourly points are kept this long (5-minute points two days).
METRICS_DAYS = env_int("SPOOL_METRICS_DAYS", 90, minimum=1)
# The request log (every ACS and management API request): how long it is kept, and how often
# each web process writes what it collected (0: at once).
REQUEST_LOG_DAYS = env_int("SPOOL_REQUEST_LOG_DAYS", 7, minimum=1)
REQUEST_LOG_FLUSH_SECONDS = env_float("SPOOL_REQUEST_LOG_FLUSH_SECONDS", 0.1)

# Phone numbers: how long a search holds its numbers (ACS: 16 minutes), how long a released
# number rests before it is sold again, and which carrier module provisions numbers.
NUMBER_SEARCH_HOLD_MINUTES = env_int("SPOOL_NUMBER_SEARCH_HOLD_MINUTES", 16, minimum=1)
NUMBER_QUARANTINE_DAYS = env_int("SPOOL_NUMBER_QUARANTINE_DAYS", 7)
NUMBER_CARRIER = os.environ.get("SPOOL_NUMBER_CARRIER", "loopback")
# A number job untouched this long is presumed lost (killed worker) and re-queued by beat.
NUMBER_JOB_LEASE_SECONDS = env_int("SPOOL_NUMBER_JOB_LEASE_SECONDS", 120, minimum=1)
JOB_SWEEP_SECONDS = env_int("SPOOL_JOB_SWEEP_SECONDS", 60, minimum=1)

# SMS: the carrier module that sends and receives ("loopback": numbers of this deployment and
# virtual handsets; "smpp": an SMSC; or a dotted path), and each sender number's pace in
# segments per second (a US long code: 1; toll-free: 3). Excess waits its turn, never dropped.
SMS_CARRIER = os.environ.get("SPOOL_SMS_CARRIER", "loopback")
SMS_SEGMENTS_PER_SECOND = env_float("SPOOL_SMS_SEGMENTS_PER_SECOND", 1.0, minimum=0.001)
SMS_TOLL_FREE_SEGMENTS_PER_SECOND = env_float(
    "SPOOL_SMS_TOLL_FREE_SEGMENTS_PER_SECOND", 3.0, minimum=0.001
)
# A message handed to a worker but unanswered this long is presumed lost and re-queued.
SMS_JOB_LEASE_SECONDS = env_int("SPOOL_SMS_JOB_LEASE_SECONDS", 30, minimum=1)
SMS_SWEEP_SECONDS = env_int("SPOOL_SMS_SWEEP_SECONDS", 5, minimum=1)
# How long a delivery job waits for more messages before it starts: up to this much latency
# per message, in exchange for batches under load (bench/sms.py).
SMS_DRAIN_LINGER_MS = env_int("SPOOL_SMS_DRAIN_LINGER_MS", 50)
# A message the carrier keeps refusing with transient errors fails after this long.
SMS_VALIDITY_MINUTES = env_int("SPOOL_SMS_VALIDITY_MINUTES", 2880, minimum=1)
# A message sent with a delivery report asked for and no carrier receipt this long after shows
# in the resource's error log (handsets answer in seconds; a silent carrier never does).
SMS_RECEIPT_OVERDUE_MINUTES = env_int("SPOOL_SMS_RECEIPT_OVERDUE_MINUTES", 60, minimum=1)
SMS_HELP_TEXT = os.environ.get(
    "SPOOL_SMS_HELP_TEXT", "Reply STOP to unsubscribe, START to subscribe again."
)
# SMPP 3.4 carrier (SPOOL_SMS_CARRIER=smpp): one transceiver bind per worker process.
SMPP_HOST = os.environ.get("SPOOL_SMPP_HOST", "127.0.0.1")
SMPP_PORT = env_int("SPOOL_SMPP_PORT", 2775, minimum=1)
SMPP_SYSTEM_ID = os.environ.get("SPOOL_SMPP_SYSTEM_ID", "")
SMPP_PASSWORD = os.environ.get("SPOOL_SMPP_PASSWORD", "")
SMPP_SYSTEM_TYPE = os.environ.get("SPOOL_SMPP_SYSTEM_TYPE", "")
SMPP_WINDOW = env_int("SPOOL_SMPP_WINDOW", 10, minimum=1)
SMPP_ENQUIRE_LINK_SECONDS = env_int("SPOOL_SMPP_ENQUIRE_LINK_SECONDS", 30, minimum=1)
SMPP_TIMEOUT_SECONDS = env_int("SPOOL_SMPP_TIMEOUT_SECONDS", 10, minimum=1)
SMPP_RECONNECT_MAX_SECONDS = env_int("SPOOL_SMPP_RECONNECT_MAX_SECONDS", 60, minimum=1)


# Requests on a tenant's behalf (webhooks, callbacks, media URLs; apps/core/outbound.py) reach
# only public addresses, except the networks listed here (an operator's own receivers; tests).
def _networks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    try:
        return [ipaddress.ip_network(item, strict=False) for item in env_list(name)]
    except ValueError as error:
        raise ImproperlyConfigured(f"{name} must be networks like 10.0.0.0/8: {error}") from None


OUTBOUND_ALLOWED_NETWORKS = _networks("SPOOL_OUTBOUND_ALLOWED_NETWORKS")

# Webhooks: Event Grid's retry schedule (seconds after each failed attempt; the last step
# repeats), how long an event is retried before it is dead-lettered, and the request timeout.
EVENT_RETRY_SECONDS = env_int_list(
    "SPOOL_EVENT_RETRY_SECONDS", [10, 30, 60, 300, 600, 1800, 3600, 10800, 21600, 43200]
)
EVENT_TTL_MINUTES = env_int("SPOOL_EVENT_TTL_MINUTES", 1440, minimum=1)
EVENT_MAX_ATTEMPTS = env_int("SPOOL_EVENT_MAX_ATTEMPTS", 30, minimum=1)
# The whole attempt, from the DNS lookup to the last byte read.
EVENT_DELIVERY_TIMEOUT_SECONDS = env_int("SPOOL_EVENT_DELIVERY_TIMEOUT_SECONDS", 30, minimum=1)
# Attempts one subscription may have in flight at once: a slow receiver holds no more workers.
EVENT_CONCURRENCY_PER_SUBSCRIPTION = env_int(
    "SPOOL_EVENT_CONCURRENCY_PER_SUBSCRIPTION", 2, minimum=1
)
EVENT_SWEEP_SECONDS = env_int("SPOOL_EVENT_SWEEP_SECONDS", 10, minimum=1)

# TURN relays for browsers behind NAT (coturn with use-auth-secret): time-limited credentials
# are derived from the shared secret. Unset: no relays (loopback and LANs need none).
TURN_URLS = env_list("SPOOL_TURN_URLS")
STUN_URLS = env_list("SPOOL_STUN_URLS")
TURN_SECRET = os.environ.get("SPOOL_TURN_SECRET", "")
TURN_TTL_SECONDS = env_int("SPOOL_TURN_TTL_SECONDS", 172800, minimum=60)
if TURN_URLS and not TURN_SECRET:
    raise ImproperlyConfigured(
        "SPOOL_TURN_URLS needs SPOOL_TURN_SECRET (coturn's static-auth-secret)"
    )

# Quotas (apps/core/quotas.py), `count/seconds`, answered 429 with Retry-After when exceeded;
# ACS's published limits where it has them. Per resource for key callers, per identity for
# token callers, per account and address for sign-ins.
QUOTAS = {
    "identities": env_limit("SPOOL_QUOTA_IDENTITIES", "1000/30"),
    "identity-deletes": env_limit("SPOOL_QUOTA_IDENTITY_DELETES", "500/30"),
    "tokens": env_limit("SPOOL_QUOTA_TOKENS", "1000/30"),
    "chat": env_limit("SPOOL_QUOTA_CHAT", "300/30"),
    "sms": env_limit("SPOOL_QUOTA_SMS", "300/30"),
    "call-invites": env_limit("SPOOL_QUOTA_CALL_INVITES", "30/60"),
    "sign-in-account": env_limit("SPOOL_QUOTA_SIGN_IN_ACCOUNT", "10/900"),
    "sign-in-address": env_limit("SPOOL_QUOTA_SIGN_IN_ADDRESS", "50/900"),
    "sign-ups": env_limit("SPOOL_QUOTA_SIGN_UPS", "10/3600"),
}
# Limits on what one holds at once.
MAX_SOCKETS_PER_IDENTITY = env_int("SPOOL_MAX_SOCKETS_PER_IDENTITY", 20, minimum=1)
MAX_CALLS_PER_IDENTITY = env_int("SPOOL_MAX_CALLS_PER_IDENTITY", 5, minimum=1)
# Phone calls (through SIP trunks) a resource has at once: a toll-fraud and capacity guard.
PSTN_MAX_CALLS = env_int("SPOOL_PSTN_MAX_CALLS", 10, minimum=0)
MAX_HELD_NUMBERS = env_int("SPOOL_MAX_HELD_NUMBERS", 100, minimum=1)

# Inbound phone calls: the SIP edge (Kamailio) that carriers' trunks call, where the media
# process's SIP line registers ("host:port"; empty: no inbound calls). `serve` starts its own
# on SPOOL_BIND at SPOOL_SIP_PORT when Kamailio is installed and no edge is set (0: none).
SIP_EDGE = os.environ.get("SPOOL_SIP_EDGE", "")
# The control socket (host:port) of the rtpengine beside the edge, whose health the media process
# checks (apps/metrics/engines.py); `serve` sets it for the one it starts.
RTPENGINE_NG = os.environ.get("SPOOL_RTPENGINE_NG", "")
SIP_PORT = env_int("SPOOL_SIP_PORT", 5060, minimum=0)
# The address Janus's SIP plugin sends from: the only one the edge takes the line's REGISTER from.
SIP_LINE_ADDRESS = os.environ.get("SPOOL_SIP_LINE_ADDRESS", "127.0.0.1")
# The loopback voice carrier ("loopback"): calls to numbers no SIP route takes stay inside the
# deployment, to its own numbers or to the console's virtual phones; "sip": trunks only.
VOICE_CARRIER = os.environ.get("SPOOL_VOICE_CARRIER", "loopback")
if VOICE_CARRIER not in ("loopback", "sip"):
    raise ImproperlyConfigured("SPOOL_VOICE_CARRIER must be loopback or sip")
# What marks Spool's own SIP at the edge: calls it places through trunks, and the loopback
# carrier's (derived from SECRET_KEY unless set; SPOOL_SIP_LOOPBACK_SECRET is its old name).
SIP_EDGE_SECRET = (
    os.environ.get("SPOOL_SIP_EDGE_SECRET")
    or os.environ.get("SPOOL_SIP_LOOPBACK_SECRET")
    or hmac.new(SECRET_KEY.encode(), b"spool-sip-loopback", hashlib.sha256).hexdigest()[:32]
)
# SIP over TLS at the edge `serve` starts: trunks call in on this port (0: no TLS), with the
# certificate of SPOOL_SIP_TLS_CERT / _KEY (default: the web's, SPOOL_TLS_CERT / _KEY), and
# calls out to TLS trunks check the trunk's certificate against SPOOL_SIP_TLS_CA_FILE.
SIP_TLS_PORT = env_int("SPOOL_SIP_TLS_PORT", 5061, minimum=0)
SIP_TLS_CERT = Path(os.environ.get("SPOOL_SIP_TLS_CERT") or TLS_CERT)
SIP_TLS_KEY = Path(os.environ.get("SPOOL_SIP_TLS_KEY") or TLS_KEY)
SIP_TLS_CA_FILE = Path(
    os.environ.get("SPOOL_SIP_TLS_CA_FILE") or "/etc/ssl/certs/ca-certificates.crt"
)
# Inbound calls one SIP line (one media process) takes at once; more get 486 Busy Here.
SIP_LINE_MAX_CALLS = env_int("SPOOL_SIP_LINE_MAX_CALLS", 50, minimum=1)
# Where the media process receives rtpengine's reports of RFC 2833 keys from phones (host:port,
# rtpengine's --dtmf-log-dest); `serve` sets it for the rtpengine it starts. Empty: none.
SIP_DTMF_LOG = os.environ.get("SPOOL_SIP_DTMF_LOG", "")
# A trunk that says nothing for this long after an INVITE (Janus does not report 100 Trying)
# is given up for the route's next one; the last trunk is never given up this way.
SIP_TRUNK_SETUP_SECONDS = env_int("SPOOL_SIP_TRUNK_SETUP_SECONDS", 8, minimum=1)
# An answered phone whose audio stops for this long is given up (its trunk vanished without a
# BYE): the call ends as a silent line (408). 0: never. A phone on hold with `a=inactive`
# sends nothing either, so keep it above the longest hold you expect.
PHONE_MEDIA_TIMEOUT_SECONDS = env_int("SPOOL_PHONE_MEDIA_TIMEOUT_SECONDS", 60, minimum=0)

# A 1:1 call nobody answers stops ringing after this long (end code 408).
RING_TIMEOUT_SECONDS = env_int("SPOOL_RING_TIMEOUT_SECONDS", 60, minimum=1)

# Group calls: through Janus's VideoRoom (an SFU) when SPOOL_JANUS_URL names its WebSocket API
# (ws://127.0.0.1:8188/; `serve` sets it to the Janus it starts), else a mesh (every participant
# sends to every other) of a few people. SPOOL_GROUP_CALLS=mesh keeps them a mesh regardless.
JANUS_URL = os.environ.get("SPOOL_JANUS_URL", "")
GROUP_CALLS = os.environ.get("SPOOL_GROUP_CALLS", "sfu")
if GROUP_CALLS not in ("sfu", "mesh"):
    raise ImproperlyConfigured("SPOOL_GROUP_CALLS must be sfu or mesh")
# Call Automation's media process (apps/automation/media.py): the channel-layer channel it
# listens on, and the Janus it drives (AudioBridge; the SFU's Janus unless set apart).
MEDIA_CHANNEL = os.environ.get("SPOOL_MEDIA_CHANNEL", "automation.media")
MEDIA_JANUS_URL = os.environ.get("SPOOL_MEDIA_JANUS_URL", "")
# Several Janus servers (SPOOL_JANUS_URLS=ws://a:8188#calls=200,ws://b:8188#calls=100), which
# serve group calls' VideoRoom and the media process alike: each new call is placed on the
# healthy one with the most spare capacity and stays there (apps/calls/janus_placement.py).
# Set, it takes the place of SPOOL_JANUS_URL and SPOOL_MEDIA_JANUS_URL above (which are then
# ignored); unset, those are the lists, of one each.
JANUS_SERVERS = env_janus_servers("SPOOL_JANUS_URLS")
# How often the media process asks each Janus server whether it is alive (`info`); one that does
# not answer takes no new calls and its calls end (code 503, subCode 510503).
JANUS_HEALTH_SECONDS = env_float("SPOOL_JANUS_HEALTH_SECONDS", 5.0, minimum=0.5)
RECORDINGS_DIR = Path(os.environ.get("SPOOL_RECORDINGS_DIR", str(DATA_DIR / "recordings")))
RECORDING_RETENTION_DAYS = int(os.environ.get("SPOOL_RECORDING_RETENTION_DAYS", "30"))
# Finished recordings go to this S3-compatible bucket when set (apps/automation/storage.py).
RECORDINGS_S3_BUCKET = os.environ.get("SPOOL_RECORDINGS_S3_BUCKET", "")
RECORDINGS_S3_ENDPOINT = os.environ.get("SPOOL_RECORDINGS_S3_ENDPOINT", "")
RECORDINGS_S3_REGION = os.environ.get("SPOOL_RECORDINGS_S3_REGION", "")
RECORDINGS_S3_PREFIX = os.environ.get("SPOOL_RECORDINGS_S3_PREFIX", "recordings/")
# Files the application asks Spool to play are fetched once, at most this big, then cached.
MEDIA_FILE_MAX_BYTES = int(os.environ.get("SPOOL_MEDIA_FILE_MAX_BYTES", str(20 * 1024 * 1024)))
MEDIA_FILE_FETCH_SECONDS = float(os.environ.get("SPOOL_MEDIA_FILE_FETCH_SECONDS", "15"))
# How long an incoming call waits for the application to answer, redirect or reject it.
INCOMING_CALL_SECONDS = int(os.environ.get("SPOOL_INCOMING_CALL_SECONDS", "60"))
CALLBACK_TIMEOUT_SECONDS = float(os.environ.get("SPOOL_CALLBACK_TIMEOUT_SECONDS", "10"))
CALLBACK_RETRY_SECONDS = (2, 5, 15, 30, 60)
CALLBACK_TTL_MINUTES = int(os.environ.get("SPOOL_CALLBACK_TTL_MINUTES", "30"))
# Janus's api_secret, when its API is reachable by more than Spool (web hosts apart from it).
JANUS_API_SECRET = os.environ.get("SPOOL_JANUS_API_SECRET", "")
MESH_MAX_PARTICIPANTS = env_int("SPOOL_MESH_MAX_PARTICIPANTS", 4, minimum=2)

# Chat: how long the activity log keeps events for sockets that reconnect (messages stay).
CHAT_ACTIVITY_DAYS = env_int("SPOOL_CHAT_ACTIVITY_DAYS", 7, minimum=1)

WORKER_CONCURRENCY = env_int("SPOOL_WORKER_CONCURRENCY", 2, minimum=1)
# Processes of the worker that only delivers webhooks (and makes their handshakes).
WEBHOOK_CONCURRENCY = env_int("SPOOL_WEBHOOK_CONCURRENCY", 2, minimum=1)
WORKER_LOG_LEVEL = os.environ.get("SPOOL_WORKER_LOG_LEVEL", "WARNING")
# One beat per deployment: the holder of this Redis lock runs it, others wait; a dead holder's
# lock expires after this long and a waiting beat takes over (manage.py beat).
BEAT_LOCK_SECONDS = env_int("SPOOL_BEAT_LOCK_SECONDS", 30, minimum=3)

ALLOWED_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    PUBLIC_HOST,
    *([f".{RESOURCE_DOMAIN}"] if RESOURCE_DOMAIN else []),
    # The host's own address, when it listens on one: the console URL serve prints.
    *(
        [f"[{BIND_ADDRESS}]" if ":" in BIND_ADDRESS else BIND_ADDRESS]
        if BIND_ADDRESS not in ("0.0.0.0", "::", "")
        else []
    ),
    *env_list("SPOOL_ALLOWED_HOSTS"),
]
CSRF_TRUSTED_ORIGINS = [
    PUBLIC_URL,
    *(
        f"{scheme}://{host}:{port}"
        for scheme, port in (("http", HTTP_PORT), ("https", HTTPS_PORT))
        for host in ("127.0.0.1", "localhost")
    ),
    *env_list("SPOOL_CSRF_TRUSTED_ORIGINS"),
]
# The ACS API over plain HTTP from other than loopback (apps/core/security.py): off, since
# the SDKs never use it and signatures and tokens would cross the network in the clear.
ALLOW_HTTP_API = env_bool("SPOOL_ALLOW_HTTP_API")
# HSTS on HTTPS answers; off by default for loopback and IP addresses, where a browser would
# then refuse the plain-HTTP console port of the same name.
_LOCAL_PUBLIC_HOST = (
    PUBLIC_HOST in ("localhost", "127.0.0.1", "::1") or PUBLIC_HOST.replace(".", "").isdigit()
)
SECURE_HSTS_SECONDS = env_int("SPOOL_HSTS_SECONDS", 0 if _LOCAL_PUBLIC_HOST else 31536000)
# Behind a load balancer (docker/haproxy/): the web processes take the client's address and
# scheme from X-Forwarded-For / X-Forwarded-Proto, but only on connections from the proxies
# listed (addresses or networks), so nobody else can claim another address.
BEHIND_PROXY = env_bool("SPOOL_BEHIND_PROXY")
TRUSTED_PROXIES = [
    entry.strip()
    for entry in os.environ.get("SPOOL_TRUSTED_PROXIES", "127.0.0.1,::1").split(",")
    if entry.strip()
]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None

# --- Django ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "corsheaders",
    "apps.core",
    "apps.accounts",
    "apps.events",
    "apps.numbers",
    "apps.sms",
    "apps.chat",
    "apps.calls",
    "apps.automation",
    "apps.pstn",
    "apps.metrics",
    "apps.console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Secure cookies on HTTPS and a CSP for the console: outside what sets cookies.
    "apps.core.security.BrowserProtectionMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # Before CORS and the URL resolver: a resource's own origin serves its ACS API at the root.
    "apps.accounts.middleware.ResourceOriginMiddleware",
    # After it (it sees the routed path), before CORS (preflights are logged too).
    "apps.core.request_log.RequestLogMiddleware",
    # While the database is unreachable, 503 at once for what needs it (logged as such).
    "apps.core.outage.DatabaseOutageMiddleware",
    # The ACS API only over TLS (or loopback).
    "apps.core.security.HttpsOnlyApiMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # Bodies, query strings and paths of every request checked once (apps/core/api.py).
    "apps.core.api.input_edge_middleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Browsers on an app's own origin call the ACS API (a resource's origin, or /r/...) as the ACS
# JavaScript SDKs do. It is authenticated by keys and tokens, never cookies, so any origin may
# call it unless listed. (ResourceOriginMiddleware gives resource origins /r/<slug>/ paths.)
CORS_URLS_REGEX = r"^/r/"
CORS_ALLOWED_ORIGINS = env_list("SPOOL_CORS_ALLOWED_ORIGINS")
CORS_ALLOW_ALL_ORIGINS = not CORS_ALLOWED_ORIGINS
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-ms-date",
    "x-ms-content-sha256",
    "x-ms-client-request-id",
    "x-ms-return-client-request-id",
    # The JS SDKs' browser builds send it on every request.
    "x-ms-useragent",
    "repeatability-request-id",
    "repeatability-first-sent",
)
CORS_EXPOSE_HEADERS = (
    "operation-location",
    "location",
    "retry-after",
    "x-ms-client-request-id",
    "x-ms-request-id",
    "ms-cv",
)

ROOT_URLCONF = "spool.urls"
WSGI_APPLICATION = "spool.wsgi.application"
ASGI_APPLICATION = "spool.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.console.context_processors.console",
            ],
        },
    },
]

# --- Database: PostgreSQL when DATABASE_URL is set, else SQLite in the data dir ----------
# On PostgreSQL each web thread and worker process keeps its connection (CONN_MAX_AGE), or,
# with SPOOL_DB_POOL_SIZE, each process shares a psycopg pool of at most that many (fewer
# connections per host when threads are many). Behind PgBouncer in transaction mode, set
# SPOOL_PGBOUNCER=1: no server-side cursors or prepared statements cross its transactions.
DB_POOL_SIZE = env_int("SPOOL_DB_POOL_SIZE", 0)
PGBOUNCER = env_bool("SPOOL_PGBOUNCER")
if os.environ.get("DATABASE_URL"):
    DATABASES = {
        "default": dj_database_url.parse(
            os.environ["DATABASE_URL"],
            conn_max_age=0 if DB_POOL_SIZE else 600,
            conn_health_checks=not DB_POOL_SIZE,
        )
    }
    if DB_POOL_SIZE:
        # (Django has the pool check each connection before handing it out.)
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 1,
            "max_size": DB_POOL_SIZE,
            "timeout": 10,  # a request waits this long for a connection, then fails
        }
    # A database that stops answering (its host gone, a network cut) fails the reads waiting
    # on it within seconds instead of TCP's quarter of an hour: a web process's event loop
    # reads for its shortcuts (apps/core/wsgi_bridge.py), and every request thread would
    # hang. Parameters in DATABASE_URL's query (?connect_timeout=...) take precedence.
    for _name, _value in {
        "connect_timeout": 5,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 3,
        "keepalives_count": 3,
        "tcp_user_timeout": 15_000,  # ms that sent data may go unacknowledged
    }.items():
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault(_name, _value)
    # Django's queries are never prepared (its cursor binds parameters itself); the hot
    # plain-SQL statements are (apps/core/sql.py), except behind PgBouncer, where psycopg's
    # None turns preparing off.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = None if PGBOUNCER else 5
    if PGBOUNCER:
        DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DATA_DIR / "spool.sqlite3"),
            # Reopening the file and rerunning the pragmas on every request cost half its time.
            "CONN_MAX_AGE": 600,
            "OPTIONS": {
                # select_for_update is a no-op on SQLite: IMMEDIATE transactions take the
                # write lock up front, so two writers queue instead of failing mid-way.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: channel layer, cache and Celery broker --------------------------------------
REDIS_SOCKET = DATA_DIR / "redis" / "redis.sock"
EMBEDDED_REDIS = not os.environ.get("REDIS_URL")
REDIS_URL = os.environ.get("REDIS_URL") or f"unix://{REDIS_SOCKET}"
CELERY_REDIS_URL = f"redis+socket://{REDIS_SOCKET}" if EMBEDDED_REDIS else REDIS_URL
# Redis through Sentinel (host:port,...): REDIS_URL's host is then the master's name in the
# Sentinels' configuration (redis://:password@spool/0). apps/core/redis_connections.py.
REDIS_SENTINELS = [
    (host.strip(), int(port))
    for host, port in (
        entry.rsplit(":", 1)
        for entry in os.environ.get("REDIS_SENTINELS", "").split(",")
        if entry.strip()
    )
]
if REDIS_SENTINELS and EMBEDDED_REDIS:
    raise ImproperlyConfigured("REDIS_SENTINELS needs REDIS_URL=redis://<master name>/<db>")

# An unreachable Redis must fail a request within a second, not hang it (a TCP Redis that
# vanished; the private one is a unix socket that refuses at once).
_redis_host: dict[str, Any] = {"address": REDIS_URL, "socket_connect_timeout": 1}
if REDIS_SENTINELS:
    _master = urlsplit(REDIS_URL)
    _redis_host = {
        "sentinels": REDIS_SENTINELS,
        "master_name": _master.hostname,
        "db": int(_master.path.strip("/") or 0),
        "password": _master.password,
        "socket_connect_timeout": 1,
        "sentinel_kwargs": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    # kombu's Sentinel transport: every Sentinel, asked in turn for the master.
    CELERY_REDIS_URL = ";".join(
        f"sentinel://{':' + _master.password + '@' if _master.password else ''}{host}:{port}"
        f"{_master.path or '/0'}"
        for host, port in REDIS_SENTINELS
    )
CHANNEL_LAYERS = {
    "default": {
        # The pub/sub layer fans out ~10x faster than the default one and does not drop
        # group messages silently (DESIGN.md, measured facts).
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [_redis_host], "prefix": "spool"},
    }
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "spool",
        "OPTIONS": {
            "socket_connect_timeout": 1,
            "socket_timeout": 1,
            **(
                {"pool_class": "apps.core.redis_connections.SentinelPool"}
                if REDIS_SENTINELS
                else {}
            ),
        },
    }
}

# --- Celery -------------------------------------------------------------------------------
CELERY_BROKER_URL = CELERY_REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {"visibility_timeout": 3600}
if REDIS_SENTINELS:
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        master_name=urlsplit(REDIS_URL).hostname,
        sentinel_kwargs={"socket_connect_timeout": 1, "socket_timeout": 1},
    )
CELERY_TASK_ALWAYS_EAGER = env_bool("SPOOL_CELERY_EAGER")
# Requests to tenants' receivers wait on the internet: their own queue and workers (serve).
CELERY_TASK_ROUTES = {
    "apps.events.tasks.deliver": {"queue": "webhooks"},
    "apps.events.tasks.validate_subscription": {"queue": "webhooks"},
    "apps.automation.tasks.deliver_callbacks": {"queue": "webhooks"},
}
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {
        "task": "apps.core.tasks.heartbeat",
        "schedule": 30.0,
        "options": {"expires": 30},
    },
    "prune-signing-keys": {"task": "apps.accounts.tasks.prune_signing_keys", "schedule": 3600.0},
    "prune-request-log": {"task": "apps.core.tasks.prune_request_log", "schedule": 3600.0},
    "sweep-callbacks": {"task": "apps.automation.tasks.sweep", "schedule": 5.0},
    "prune-recordings": {"task": "apps.automation.tasks.prune_recordings", "schedule": 3600.0},
    "expire-number-holds": {"task": "apps.numbers.tasks.expire_holds", "schedule": 30.0},
    "end-number-quarantines": {"task": "apps.numbers.tasks.end_quarantines", "schedule": 3600.0},
    "requeue-number-operations": {
        "task": "apps.numbers.tasks.requeue_stalled_operations",
        "schedule": float(JOB_SWEEP_SECONDS),
    },
    "requeue-sms": {"task": "apps.sms.tasks.sweep", "schedule": float(SMS_SWEEP_SECONDS)},
    "send-due-webhooks": {
        "task": "apps.events.tasks.sweep",
        "schedule": float(EVENT_SWEEP_SECONDS),
    },
    "prune-chat-activity": {"task": "apps.chat.tasks.prune_activity", "schedule": 3600.0},
    "apply-chat-retention": {"task": "apps.chat.tasks.apply_retention", "schedule": 3600.0},
    "roll-up-metrics": {
        "task": "apps.metrics.tasks.roll_up",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    "prune-metrics": {"task": "apps.metrics.tasks.prune", "schedule": 3600.0},
}

# --- Auth, console ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Every sign-in (console form, HTTP Basic, Django admin) is throttled per account and address.
AUTHENTICATION_BACKENDS = ["apps.accounts.signin.ThrottledModelBackend"]
CSRF_FAILURE_VIEW = "apps.core.errors.csrf_failure"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:resource-list"
LOGOUT_REDIRECT_URL = "login"

if os.environ.get("EMAIL_HOST"):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = os.environ["EMAIL_HOST"]
    EMAIL_PORT = env_int("EMAIL_PORT", 587)
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
else:
    # No mail server configured: password-reset mails land as files an operator can read.
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = DATA_DIR / "mail"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "spool@localhost")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns on every request without it
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the source folders so `make run` needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# Bodies above this get 413 in the ACS error shape (chat messages are at most 28 KB).
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("SPOOL_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
# The web tier refuses anything larger before Django reads it (file uploads included).
MAX_UPLOAD_BYTES = env_int(
    "SPOOL_MAX_UPLOAD_BYTES", 16 * 1024 * 1024, minimum=DATA_UPLOAD_MAX_MEMORY_SIZE
)

# --- REST framework ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Basic first: its WWW-Authenticate makes DRF answer 401 (not 403) without credentials.
        "apps.accounts.auth.ThrottledBasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.core.parsers.AcsJSONParser"],
    "EXCEPTION_HANDLER": "apps.core.errors.api_exception_handler",
    # OPTIONS answers 405: the schema at /api/schema/ describes the API, and DRF's metadata
    # probes views in ways they were not written for (a 500 on event subscriptions).
    "DEFAULT_METADATA_CLASS": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Spool management API",
    "DESCRIPTION": "The API behind the Spool console: resources, keys, members, identities, phone numbers, SMS, events.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The API docs load nothing from outside Spool: Swagger UI and ReDoc come from
    # drf-spectacular-sidecar, ReDoc's page drops its Google Fonts and refuses Redocly's logo
    # (templates/drf_spectacular/redoc.html), and Swagger UI sends the schema to no online
    # validator (it would on any host but localhost).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # Every operation's error responses (the ACS error shape) and the limits behind them.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.schema.add_error_responses",
    ],
    # One name per choice set shared by several fields.
    "ENUM_NAME_OVERRIDES": {
        "Capability": "apps.numbers.models.Capability",
        "AssignmentType": "apps.numbers.models.AssignmentType",
        "SearchState": "apps.numbers.models.SearchState",
        "SubscriptionState": "apps.events.models.SubscriptionState",
        "DeliveryState": "apps.events.models.DeliveryState",
    },
}

# --- Operators' monitoring: Prometheus and log shippers (docs/operations.md "Prometheus") ------
# GET /metrics answers only `Authorization: Bearer <SPOOL_METRICS_TOKEN>`; unset, it is off (404).
METRICS_TOKEN = os.environ.get("SPOOL_METRICS_TOKEN", "").strip()
if METRICS_TOKEN and (len(METRICS_TOKEN) < 16 or not METRICS_TOKEN.isascii()):
    raise ImproperlyConfigured(
        "SPOOL_METRICS_TOKEN must be at least 16 ASCII characters (openssl rand -hex 32)"
    )
# Where `manage.py serve` has its processes write their samples (emptied at each start).
METRICS_DIR = DATA_DIR / "prometheus"
# A host without the web role serves GET /metrics alone on this port (manage.py metrics_server).
METRICS_PORT = env_int("SPOOL_METRICS_PORT", 9464, minimum=1)
# `json`: every log line is one JSON object (request-log lines with their fields at the top).
LOG_FORMAT = os.environ.get("SPOOL_LOG_FORMAT", "plain").strip().lower() or "plain"
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"SPOOL_LOG_FORMAT must be plain or json, got {LOG_FORMAT!r}")
# Celery replaces the root logger's handler with its own plain one unless told not to.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",  # ISO 8601, UTC
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("SPOOL_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}, "celery": {"level": WORKER_LOG_LEVEL}},
}
