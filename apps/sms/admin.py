"""SMS in Django admin: read-only views of the message log, opt-outs and handsets (changes go
through the services: the console and the APIs)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from apps.sms.models import HandsetMessage, OptOut, SmsMessage


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: object) -> bool:  # type: ignore[override]
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:  # type: ignore[override]
        return False


@admin.register(SmsMessage)
class SmsMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "resource", "direction", "sender", "recipient", "status", "created_at"]
    list_filter = ["direction", "status", "carrier", "possible_duplicate"]
    search_fields = ["id", "sender", "recipient", "carrier_message_id"]


@admin.register(OptOut)
class OptOutAdmin(ReadOnlyAdmin):
    list_display = ["sender", "recipient", "resource", "source", "created_at"]
    search_fields = ["sender", "recipient"]


@admin.register(HandsetMessage)
class HandsetMessageAdmin(ReadOnlyAdmin):
    list_display = ["handset", "counterpart", "to_handset", "resource", "created_at"]
    search_fields = ["handset", "counterpart"]
