"""Calls in Django admin: read-only views of rooms and calls (changes go through the APIs)."""

from __future__ import annotations

from django.contrib import admin

from apps.calls.models import Call, Room
from apps.core.admin import ReadOnlyAdmin


@admin.register(Room)
class RoomAdmin(ReadOnlyAdmin):
    list_display = ["id", "resource", "valid_from", "valid_until", "pstn_dial_out_enabled"]
    list_filter = ["resource"]


@admin.register(Call)
class CallAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "resource",
        "caller_raw_id",
        "state",
        "created_at",
        "end_code",
        "janus_server",
    ]
    list_filter = ["state", "resource", "janus_server"]
