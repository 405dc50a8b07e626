"""WebSocket routes of every app."""

from __future__ import annotations

from typing import Any

from apps.accounts.routing import websocket_urlpatterns as accounts_routes

websocket_urlpatterns: list[Any] = [*accounts_routes]
