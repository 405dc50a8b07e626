"""Shapes of the SMS part of the management API (/api/v1/)."""

from __future__ import annotations

from rest_framework import serializers

from apps.sms.models import HandsetMessage, OptOut, SmsMessage


class MessageSerializer(serializers.ModelSerializer[SmsMessage]):
    class Meta:
        model = SmsMessage
        fields = [
            "id",
            "direction",
            "sender",
            "recipient",
            "text",
            "encoding",
            "segments",
            "tag",
            "delivery_report_requested",
            "status",
            "status_detail",
            "attempts",
            "submissions",
            "possible_duplicate",
            "carrier",
            "carrier_message_id",
            "created_at",
            "submitted_at",
            "finished_at",
        ]


class SendSerializer(serializers.Serializer[None]):
    sender = serializers.CharField(help_text="One of the resource's numbers, E.164")
    to = serializers.ListField(child=serializers.CharField(), min_length=1, max_length=100)
    message = serializers.CharField(max_length=2048, trim_whitespace=False)
    enable_delivery_report = serializers.BooleanField(default=False)
    tag = serializers.CharField(max_length=256, required=False, allow_blank=True, default="")


class OptOutSerializer(serializers.ModelSerializer[OptOut]):
    class Meta:
        model = OptOut
        fields = ["id", "sender", "recipient", "source", "created_at"]


class OptOutCreateSerializer(serializers.Serializer[None]):
    sender = serializers.CharField()
    recipient = serializers.CharField()


class HandsetMessageSerializer(serializers.ModelSerializer[HandsetMessage]):
    class Meta:
        model = HandsetMessage
        fields = ["id", "handset", "counterpart", "to_handset", "text", "created_at"]


class HandsetSerializer(serializers.Serializer[None]):
    handset = serializers.CharField()
    messages = serializers.IntegerField()
    last_at = serializers.DateTimeField()


class HandsetReplySerializer(serializers.Serializer[None]):
    to = serializers.CharField(help_text="The resource's number the handset texts")
    message = serializers.CharField(max_length=2048, trim_whitespace=False)
