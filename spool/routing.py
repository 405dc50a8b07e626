"""WebSocket routes of every app (each app's routing.py adds its own)."""

from __future__ import annotations

from typing import Any

websocket_urlpatterns: list[Any] = []
