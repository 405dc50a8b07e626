from __future__ import annotations

from django.contrib import admin

from apps.numbers.models import NumberOperation, NumberSearch, PhoneNumber


@admin.register(PhoneNumber)
class PhoneNumberAdmin(admin.ModelAdmin[PhoneNumber]):
    list_display = [
        "number",
        "country_code",
        "number_type",
        "area_code",
        "locality",
        "status",
        "owner",
    ]
    list_filter = ["status", "country_code", "number_type", "carrier"]
    search_fields = ["number", "locality", "area_code"]
    readonly_fields = [
        "status",
        "owner",
        "held_by",
        "purchased_at",
        "quarantined_until",
        "created_at",
    ]


@admin.register(NumberSearch)
class NumberSearchAdmin(admin.ModelAdmin[NumberSearch]):
    list_display = [
        "id",
        "resource",
        "country_code",
        "number_type",
        "quantity",
        "state",
        "expires_at",
    ]
    list_filter = ["state", "country_code"]

    def has_add_permission(self, request: object) -> bool:  # type: ignore[override]
        return False


@admin.register(NumberOperation)
class NumberOperationAdmin(admin.ModelAdmin[NumberOperation]):
    list_display = [
        "id",
        "resource",
        "kind",
        "status",
        "progress_done",
        "progress_total",
        "last_action_at",
    ]
    list_filter = ["kind", "status"]

    def has_add_permission(self, request: object) -> bool:  # type: ignore[override]
        return False
