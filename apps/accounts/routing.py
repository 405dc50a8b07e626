from __future__ import annotations

from django.urls import path

from apps.accounts.consumers import IdentityConsumer

websocket_urlpatterns = [path("ws/", IdentityConsumer.as_asgi())]
