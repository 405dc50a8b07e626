"""Shapes of the numbers part of the management API (/api/v1/)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.numbers.models import NumberOperation, NumberSearch, PhoneNumber


class OwnedNumberSerializer(serializers.ModelSerializer[PhoneNumber]):
    class Meta:
        model = PhoneNumber
        fields = [
            "number",
            "country_code",
            "number_type",
            "locality",
            "administrative_division",
            "area_code",
            "owned_assignment_type",
            "owned_calling",
            "owned_sms",
            "monthly_cost",
            "currency",
            "purchased_at",
            "inbound_destination",
        ]


class SearchSerializer(serializers.ModelSerializer[NumberSearch]):
    numbers = serializers.SerializerMethodField()

    class Meta:
        model = NumberSearch
        fields = [
            "id",
            "country_code",
            "number_type",
            "assignment_type",
            "calling",
            "sms",
            "area_code",
            "quantity",
            "state",
            "expires_at",
            "numbers",
        ]

    def get_numbers(self, search: NumberSearch) -> list[str]:
        return list(search.numbers.order_by("number").values_list("number", flat=True))


class OperationSerializer(serializers.ModelSerializer[NumberOperation]):
    class Meta:
        model = NumberOperation
        fields = [
            "id",
            "kind",
            "status",
            "progress_done",
            "progress_total",
            "error_code",
            "error_message",
            "created_at",
            "last_action_at",
        ]


class SearchRequestSerializer(serializers.Serializer[Any]):
    """The ACS search body, plus the country."""

    country = serializers.CharField()
    phoneNumberType = serializers.CharField()
    assignmentType = serializers.CharField()
    capabilities = serializers.DictField(child=serializers.CharField())
    areaCode = serializers.CharField(required=False, allow_blank=True)
    quantity = serializers.IntegerField(required=False)


class DestinationSerializer(serializers.Serializer[Any]):
    inboundDestination = serializers.CharField(allow_blank=True)
