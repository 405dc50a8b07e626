"""The realtime publisher: push a payload to a Channels group, after the current commit."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def group_name(*parts: object) -> str:
    """A channel-layer-safe group name ("identity.<uuid>")."""
    return ".".join(str(part) for part in parts)


def publish_now(group: str, payload: dict[str, Any]) -> None:
    """Send `payload` to every socket in `group`; consumers dispatch on payload["type"].

    A broker outage is logged, never raised: the database write that caused the event
    has already committed, and clients catch up when they reconnect.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "realtime.event", "payload": payload})
    except Exception:
        logger.exception("could not publish to %s", group)


def publish(group: str, payload: dict[str, Any]) -> None:
    """Publish once the surrounding transaction commits (at once outside one)."""
    transaction.on_commit(lambda: publish_now(group, payload))
