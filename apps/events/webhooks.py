"""The HTTP side of webhooks: one request to a receiver, through the safe outbound module
(apps/core/outbound.py: public addresses only, no redirects, one deadline, a size cap), and
the Standard Webhooks signature.

Callers get an `Answer` whatever happens (a status, or an error), never an exception, so every
attempt can be recorded. A receiver that moved must be re-subscribed, as with Event Grid.
"""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks import Webhook

from apps.core import outbound
from apps.core.outbound import Answer

__all__ = ["Answer", "options", "post", "sign"]


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
    return outbound.request("POST", url, body=body.encode(), headers=headers, deadline=timeout)


def options(url: str, headers: dict[str, str], *, timeout: float) -> Answer:
    return outbound.request("OPTIONS", url, headers=headers, deadline=timeout)
