"""WebSocket routes of every app, then a refusal for any other path."""

from __future__ import annotations

from typing import Any

from django.urls import path, re_path

from apps.accounts.routing import websocket_urlpatterns as accounts_routes
from apps.automation.phone_consumers import VirtualPhoneConsumer
from apps.core.consumers import UnknownPathConsumer

websocket_urlpatterns: list[Any] = [
    *accounts_routes,
    path("ws/virtual-phone/", VirtualPhoneConsumer.as_asgi()),
    re_path(r"", UnknownPathConsumer.as_asgi()),
]
