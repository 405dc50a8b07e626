from __future__ import annotations

from typing import Any

from django.contrib import admin

from apps.core.models import WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin[WorkerHeartbeat]):
    list_display = ["hostname", "last_seen"]
    readonly_fields = ["hostname", "last_seen"]


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """Admin views of rows that only services change (their rules and events stay whole)."""

    def has_add_permission(self, request: object) -> bool:  # type: ignore[override]
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:  # type: ignore[override]
        return False
