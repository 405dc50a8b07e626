"""SMS in Django admin: read-only views of the message log, opt-outs and handsets (changes go
through the services: the console and the APIs)."""

from __future__ import annotations

from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.sms.models import HandsetMessage, OptOut, SenderPace, SmsMessage


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


@admin.register(SenderPace)
class SenderPaceAdmin(admin.ModelAdmin[SenderPace]):
    """An operator may give one number its own send rate."""

    list_display = ["number", "segments_per_second", "next_slot_at"]
    search_fields = ["number"]
    fields = ["number", "segments_per_second"]

    def get_readonly_fields(self, request: object, obj: SenderPace | None = None) -> list[str]:  # type: ignore[override]
        return ["number"] if obj else []

    def save_model(self, request: object, obj: SenderPace, form: object, change: bool) -> None:  # type: ignore[override]
        if not change:
            from django.utils import timezone

            obj.next_slot_at = timezone.now()
        super().save_model(request, obj, form, change)  # type: ignore[arg-type]
