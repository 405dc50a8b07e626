"""Shapes of the chat part of the management API (/api/v1/): what operators see of a
resource's threads (read-only; identities chat through the ACS API)."""

from __future__ import annotations

from rest_framework import serializers

from apps.chat.models import ChatMessage, ChatParticipant, ChatThread


class ChatThreadSerializer(serializers.ModelSerializer[ChatThread]):
    participant_count = serializers.IntegerField(read_only=True)
    message_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = ChatThread
        fields = [
            "id",
            "topic",
            "created_by_raw_id",
            "created_at",
            "last_message_at",
            "deleted_at",
            "participant_count",
            "message_count",
        ]


class ChatParticipantSerializer(serializers.ModelSerializer[ChatParticipant]):
    raw_id = serializers.CharField(source="identity.raw_id", read_only=True)

    class Meta:
        model = ChatParticipant
        fields = ["raw_id", "display_name", "share_history_time", "added_at"]


class ChatMessageSerializer(serializers.ModelSerializer[ChatMessage]):
    content = serializers.SerializerMethodField()

    class Meta:
        model = ChatMessage
        fields = [
            "id",
            "sequence_id",
            "type",
            "content",
            "topic",
            "participants",
            "sender_raw_id",
            "sender_display_name",
            "metadata",
            "created_at",
            "edited_at",
            "deleted_at",
        ]

    def get_content(self, message: ChatMessage) -> str:
        # A deleted message's text is gone for operators too, as in the ACS API.
        return "" if message.deleted_at else message.content
