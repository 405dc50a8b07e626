"""Django admin for operators. Writes go through the services, like every other entry point."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.accounts import services
from apps.accounts.models import CommunicationIdentity, Membership, Resource
from apps.core.errors import ApiError


class ResourceForm(forms.ModelForm[Resource]):
    class Meta:
        model = Resource
        fields = ["name"]

    def clean_name(self) -> str:
        try:
            return services.check_resource_name(
                self.cleaned_data["name"], exclude=self.instance if self.instance.pk else None
            )
        except ApiError as error:
            raise forms.ValidationError(error.message) from None


class MembershipInline(admin.TabularInline[Membership, Resource]):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin[Resource]):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    form = ResourceForm
    fields = [
        "name",
        "id",
        "slug",
        "created_at",
        "primary_key_rotated_at",
        "secondary_key_rotated_at",
    ]
    readonly_fields = [
        "id",
        "slug",
        "created_at",
        "primary_key_rotated_at",
        "secondary_key_rotated_at",
    ]
    inlines = [MembershipInline]
    actions = ["regenerate_primary_key", "regenerate_secondary_key"]

    def save_model(self, request: HttpRequest, obj: Resource, form: Any, change: bool) -> None:
        # New resources get their slug and keys from the service; edits only rename.
        if change:
            services.rename_resource(obj, obj.name)
        else:
            created = services.create_resource(obj.name)
            obj.pk, obj.slug = created.pk, created.slug
            obj._state.adding = False
            obj.refresh_from_db()

    def delete_model(self, request: HttpRequest, obj: Resource) -> None:
        services.delete_resource(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Resource]) -> None:
        for resource in queryset:
            services.delete_resource(resource)

    @admin.action(description="Regenerate the primary key")
    def regenerate_primary_key(self, request: HttpRequest, queryset: QuerySet[Resource]) -> None:
        for resource in queryset:
            services.regenerate_key(resource, "primary")
        messages.success(request, f"Regenerated the primary key of {queryset.count()} resource(s).")

    @admin.action(description="Regenerate the secondary key")
    def regenerate_secondary_key(self, request: HttpRequest, queryset: QuerySet[Resource]) -> None:
        for resource in queryset:
            services.regenerate_key(resource, "secondary")
        messages.success(
            request, f"Regenerated the secondary key of {queryset.count()} resource(s)."
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["resource", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["resource__name", "user__username", "user__email"]


@admin.register(CommunicationIdentity)
class CommunicationIdentityAdmin(admin.ModelAdmin[CommunicationIdentity]):
    list_display = [
        "id",
        "label",
        "resource",
        "created_at",
        "last_token_issued_at",
        "token_generation",
    ]
    list_filter = ["resource"]
    search_fields = ["id", "label"]
    # The label is the tenant's name for the identity: they set it in the console.
    readonly_fields = [
        "id",
        "label",
        "resource",
        "created_at",
        "last_token_issued_at",
        "tokens_revoked_at",
        "token_generation",
    ]
    actions = ["revoke_tokens"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # identities are made through the API or the console

    def delete_model(self, request: HttpRequest, obj: CommunicationIdentity) -> None:
        services.delete_identity(obj)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[CommunicationIdentity]
    ) -> None:
        for identity in queryset:
            services.delete_identity(identity)

    @admin.action(description="Revoke every token issued so far")
    def revoke_tokens(
        self, request: HttpRequest, queryset: QuerySet[CommunicationIdentity]
    ) -> None:
        for identity in queryset:
            services.revoke_tokens(identity)
        messages.success(request, f"Revoked the tokens of {queryset.count()} identities.")
