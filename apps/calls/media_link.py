"""The way to the media process (apps/automation/media.py), which holds every bridged call's
Janus AudioBridge room: messages on one channel-layer channel, `settings.MEDIA_CHANNEL`.

A message is a fast path, not a promise: the media process also reads the database (queued
operations, legs) on its own rounds, so a message lost while it restarts delays work, never
loses it. Its answers to a socket come back as realtime frames addressed to that socket.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

logger = logging.getLogger(__name__)


async def send(message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    assert layer is not None
    await layer.send(settings.MEDIA_CHANNEL, message)


def send_after_commit(message: dict[str, Any]) -> None:
    """Send `message` once the surrounding transaction commits (from sync code)."""

    def deliver() -> None:
        try:
            async_to_sync(send)(message)
        except Exception:
            # The media process reads the database on its own rounds: this is only late.
            logger.exception("could not reach the media process with %s", message.get("type"))

    transaction.on_commit(deliver)
