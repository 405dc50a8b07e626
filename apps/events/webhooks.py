"""The HTTP side of webhooks: one request to a receiver, and the Standard Webhooks signature.

Callers get an `Answer` whatever happens (a status, or an error such as "timeout"), never an
exception, so every attempt can be recorded. Redirects are not followed: a receiver that
moved must be re-subscribed, as with Event Grid.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests
import urllib3
from standardwebhooks import Webhook

USER_AGENT = "Spool-Webhooks/1.0"
EXCERPT_CHARS = 500


@dataclass
class Answer:
    status_code: int | None = None  # None: no HTTP answer at all
    error: str = ""
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    duration_ms: int = 0

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code <= 299

    @property
    def excerpt(self) -> str:
        return self.body.decode("utf-8", "replace")[:EXCERPT_CHARS]


def sign(secret: str, message_id: str, body: str, now: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for `body` (https://www.standardwebhooks.com): a
    receiver verifies them with the same library, `Webhook(secret).verify(body, headers)`."""
    now = now.astimezone(UTC)  # the library reads the wall time as UTC, whatever the zone
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


def post(url: str, body: str, headers: dict[str, str], *, timeout: float) -> Answer:
    return _request("POST", url, body.encode(), headers, timeout=timeout)


def options(url: str, headers: dict[str, str], *, timeout: float) -> Answer:
    return _request("OPTIONS", url, None, headers, timeout=timeout)


# Receivers answer with anything; what is kept of an answer is bounded.
MAX_BODY_BYTES = 64 * 1024

_session: requests.Session | None = None
_session_pid = 0


def _http() -> requests.Session:
    """One keep-alive session per process (a prefork worker must not share its parent's)."""
    global _session, _session_pid
    if _session is None or _session_pid != os.getpid():
        _session = requests.Session()
        _session.headers["User-Agent"] = USER_AGENT
        _session_pid = os.getpid()
    return _session


def _request(
    method: str, url: str, data: bytes | None, headers: dict[str, str], *, timeout: float
) -> Answer:
    started = time.monotonic()
    answer = Answer()
    try:
        with _http().request(
            method,
            url,
            data=data,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
        ) as response:
            answer.status_code = response.status_code
            answer.headers = dict(response.headers)
            try:
                answer.body = response.raw.read(MAX_BODY_BYTES, decode_content=True) or b""
            except (urllib3.exceptions.HTTPError, OSError):
                # The status line is the answer; a body that stalls or breaks is not.
                answer.body = b""
    except requests.Timeout:
        answer.error = "timeout"
    except requests.ConnectionError as error:
        answer.error = _connection_error(error)
    except (requests.RequestException, OSError, ValueError) as error:
        answer.error = f"request failed: {error}"[:200]
    answer.duration_ms = int((time.monotonic() - started) * 1000)
    return answer


def _connection_error(error: requests.ConnectionError) -> str:
    if isinstance(error, requests.exceptions.SSLError):
        return "TLS error"
    cause: Any = error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        cause = cause.__cause__ or cause.__context__
    text = str(error)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "nodename nor servname" in text:
        return "host name not found"
    return f"connection failed: {text}"[:200]
