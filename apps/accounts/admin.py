from __future__ import annotations

from django.contrib import admin

from apps.accounts.models import CommunicationIdentity, Membership, Resource


class MembershipInline(admin.TabularInline[Membership, Resource]):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Resource)
class ResourceAdmin(admin.ModelAdmin[Resource]):
    list_display = ["name", "slug", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["id", "slug", "created_at", "primary_key_rotated_at", "secondary_key_rotated_at"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin[Membership]):
    list_display = ["resource", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["resource__name", "user__username", "user__email"]


@admin.register(CommunicationIdentity)
class CommunicationIdentityAdmin(admin.ModelAdmin[CommunicationIdentity]):
    list_display = ["id", "resource", "created_at", "last_token_issued_at", "token_generation"]
    list_filter = ["resource"]
    search_fields = ["id"]
    readonly_fields = ["id", "created_at", "last_token_issued_at", "tokens_revoked_at"]
