"""Django admin for operators. A trunk's FQDN, port and the routes are the tenant's (the ACS
SIP routing API): shown, not changed here. The operator's settings are changed through the
services, with the console's rules."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.pstn import services
from apps.pstn.forms import TrunkSettingsForm
from apps.pstn.models import SipRoute, SipTrunk


class SipTrunkAdminForm(forms.ModelForm[SipTrunk]):
    """The console's settings form inside admin: lists as text, the password write-only."""

    class Meta:
        model = SipTrunk
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings_form = TrunkSettingsForm(
            self.data if self.is_bound else None, trunk=self.instance
        )
        self.fields.update(self.settings_form.fields)
        if not self.is_bound:
            self.initial.update(self.settings_form.initial)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.settings_form.is_valid():
            for field, errors in self.settings_form.errors.items():
                for error in errors:
                    self.add_error(None if field == "__all__" else field, error)
        return data


TENANT_FIELDS = ("resource", "fqdn", "signaling_port", "password_set", "created_at")


@admin.register(SipTrunk)
class SipTrunkAdmin(admin.ModelAdmin[SipTrunk]):
    form = SipTrunkAdminForm
    list_display = ["fqdn", "signaling_port", "resource", "enabled", "transport", "target_host"]
    list_filter = ["enabled", "transport"]
    search_fields = ["fqdn", "address", "resource__name", "resource__slug"]
    readonly_fields = TENANT_FIELDS
    fieldsets = [
        ("Set by the tenant (ACS SIP routing API)", {"fields": TENANT_FIELDS}),
        (
            "Operator settings",
            {
                "fields": [
                    "enabled",
                    "address",
                    "transport",
                    "digest_username",
                    "digest_password",
                    "clear_password",
                    "allowed_networks",
                    "codecs",
                    "srtp",
                    "caller_id_format",
                    "assert_identity",
                    "max_concurrent_calls",
                    "outbound_prefixes",
                ]
            },
        ),
    ]

    @admin.display(boolean=True, description="Digest password set")
    def password_set(self, trunk: SipTrunk) -> bool:
        return bool(trunk.sealed_digest_password)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        # Its fields are the settings form's, not model fields: no modelform_factory.
        return SipTrunkAdminForm

    def save_model(self, request: HttpRequest, obj: SipTrunk, form: Any, change: bool) -> None:
        settings = form.settings_form.settings
        assert settings is not None
        services.update_trunk_settings(obj, settings)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # trunks are added through the ACS SIP routing API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # routes may name it; disable it instead


@admin.register(SipRoute)
class SipRouteAdmin(admin.ModelAdmin[SipRoute]):
    list_display = ["name", "resource", "position", "number_pattern", "trunks"]
    search_fields = ["name", "number_pattern", "resource__name", "resource__slug"]
    readonly_fields = ["resource", "position", "name", "description", "number_pattern", "trunks"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
