"""Chat in Django admin: read-only views (changes go through the services: the API and the
console), so operators can look into a thread without bypassing its sequence and events."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from apps.chat.models import ChatActivity, ChatMessage, ChatParticipant, ChatThread
from apps.core.admin import ReadOnlyAdmin


class ParticipantInline(admin.TabularInline[Any, Any]):
    model = ChatParticipant
    fields = readonly_fields = (
        "identity",
        "display_name",
        "share_history_time",
        "metadata",
        "added_at",
    )
    extra = 0
    can_delete = False


@admin.register(ChatThread)
class ChatThreadAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "topic",
        "resource",
        "created_at",
        "last_message_at",
        "expires_at",
        "deleted_at",
    ]
    list_filter = ["resource"]
    search_fields = ["id", "topic", "created_by_raw_id"]
    inlines = [ParticipantInline]


@admin.register(ChatMessage)
class ChatMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "thread", "type", "sender_raw_id", "created_at", "deleted_at"]
    list_filter = ["type"]
    search_fields = ["thread__id", "sender_raw_id", "content"]


@admin.register(ChatActivity)
class ChatActivityAdmin(ReadOnlyAdmin):
    list_display = ["thread", "sequence", "event", "created_at"]
    list_filter = ["event"]
    search_fields = ["thread__id"]
