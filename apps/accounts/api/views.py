"""The management API behind the console: resources, keys, members, identities, tokens.

Authenticated as a portal user (session or HTTP Basic); roles are checked by the services.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import services
from apps.accounts.api import serializers as s
from apps.accounts.models import CommunicationIdentity, Membership, Resource


def _valid(serializer_class: type[Any], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class ResourceList(generics.ListAPIView[Resource]):
    serializer_class = s.ResourceSerializer

    def get_queryset(self) -> Any:
        return services.list_resources(self.request.user)

    @extend_schema(request=s.ResourceNameSerializer, responses={201: s.ResourceSerializer})
    def post(self, request: Request) -> Response:
        data = _valid(s.ResourceNameSerializer, request)
        resource = services.create_resource(data["name"], owner=request.user)
        return Response(
            s.ResourceSerializer(resource, context={"request": request}).data, status=201
        )


class ResourceDetail(APIView):
    @extend_schema(responses=s.ResourceSerializer)
    def get(self, request: Request, slug: str) -> Response:
        resource = services.access_resource(request.user, slug)
        return Response(s.ResourceSerializer(resource, context={"request": request}).data)

    @extend_schema(request=s.ResourceNameSerializer, responses=s.ResourceSerializer)
    def patch(self, request: Request, slug: str) -> Response:
        resource = services.access_resource(request.user, slug, services.MANAGE_RESOURCE)
        data = _valid(s.ResourceNameSerializer, request)
        services.rename_resource(resource, data["name"])
        return Response(s.ResourceSerializer(resource, context={"request": request}).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str) -> Response:
        services.delete_resource(
            services.access_resource(request.user, slug, services.MANAGE_RESOURCE)
        )
        return Response(status=204)


class ResourceKeys(APIView):
    @extend_schema(responses=s.KeysSerializer)
    def get(self, request: Request, slug: str) -> Response:
        resource = services.access_resource(request.user, slug, services.READ_KEYS)
        return Response(s.KeysSerializer.of(resource))


class RegenerateKey(APIView):
    @extend_schema(request=s.RegenerateKeySerializer, responses=s.KeysSerializer)
    def post(self, request: Request, slug: str) -> Response:
        resource = services.access_resource(request.user, slug, services.MANAGE_KEYS)
        data = _valid(s.RegenerateKeySerializer, request)
        services.regenerate_key(resource, data["key"])
        return Response(s.KeysSerializer.of(resource))


class MemberList(generics.ListAPIView[Membership]):
    serializer_class = s.MembershipSerializer

    def get_queryset(self) -> Any:
        return services.list_members(
            services.access_resource(self.request.user, self.kwargs["slug"])
        )

    @extend_schema(request=s.AddMemberSerializer, responses={201: s.MembershipSerializer})
    def post(self, request: Request, slug: str) -> Response:
        resource = services.access_resource(request.user, slug, services.MANAGE_MEMBERS)
        data = _valid(s.AddMemberSerializer, request)
        membership = services.add_member(resource, data["user"], data["role"])
        return Response(s.MembershipSerializer(membership).data, status=201)


class MemberDetail(APIView):
    @extend_schema(request=s.RoleSerializer, responses=s.MembershipSerializer)
    def patch(self, request: Request, slug: str, member_id: int) -> Response:
        resource = services.access_resource(request.user, slug, services.MANAGE_MEMBERS)
        data = _valid(s.RoleSerializer, request)
        membership = services.change_member_role(resource, member_id, data["role"])
        return Response(s.MembershipSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, member_id: int) -> Response:
        resource = services.access_resource(request.user, slug, services.MANAGE_MEMBERS)
        services.remove_member(resource, member_id)
        return Response(status=204)


class IdentityList(generics.ListAPIView[CommunicationIdentity]):
    serializer_class = s.IdentitySerializer

    def get_queryset(self) -> Any:
        return services.list_identities(
            services.access_resource(self.request.user, self.kwargs["slug"])
        )

    @extend_schema(request=s.CreateIdentitySerializer, responses={201: s.CreatedIdentitySerializer})
    def post(self, request: Request, slug: str) -> Response:
        resource = services.access_resource(request.user, slug, services.MANAGE_IDENTITIES)
        data = _valid(s.CreateIdentitySerializer, request)
        with transaction.atomic():
            identity, token = services.create_identity(
                resource, scopes=data.get("scopes"), expires_in_minutes=data.get("expiresInMinutes")
            )
        body: dict[str, Any] = {"identity": s.IdentitySerializer(identity).data}
        if token:
            body["accessToken"] = s.TokenSerializer(
                {"token": token.token, "expiresOn": token.expires_on}
            ).data
        return Response(body, status=201)


class IdentityDetail(APIView):
    @extend_schema(responses=s.IdentitySerializer)
    def get(self, request: Request, slug: str, raw_id: str) -> Response:
        resource = services.access_resource(request.user, slug)
        return Response(s.IdentitySerializer(services.access_identity(resource, raw_id)).data)

    @extend_schema(request=s.IdentityUpdateSerializer, responses=s.IdentitySerializer)
    def patch(self, request: Request, slug: str, raw_id: str) -> Response:
        """Where calls to the identity go: `client` (its calling clients ring) or `application`
        (the resource's application gets IncomingCall: Call Automation)."""
        resource = services.access_resource(request.user, slug, services.MANAGE_IDENTITIES)
        data = _valid(s.IdentityUpdateSerializer, request)
        identity = services.set_incoming_calls(
            services.access_identity(resource, raw_id), data["incoming_calls"]
        )
        return Response(s.IdentitySerializer(identity).data)

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, raw_id: str) -> Response:
        resource = services.access_resource(request.user, slug, services.MANAGE_IDENTITIES)
        services.delete_identity(services.access_identity(resource, raw_id))
        return Response(status=204)


class IdentityToken(APIView):
    @extend_schema(request=s.TokenRequestSerializer, responses=s.TokenSerializer)
    def post(self, request: Request, slug: str, raw_id: str) -> Response:
        resource = services.access_resource(request.user, slug, services.MANAGE_IDENTITIES)
        identity = services.access_identity(resource, raw_id)
        data = _valid(s.TokenRequestSerializer, request)
        token = services.issue_token(identity, data["scopes"], data.get("expiresInMinutes"))
        return Response(
            s.TokenSerializer({"token": token.token, "expiresOn": token.expires_on}).data
        )


class IdentityRevoke(APIView):
    @extend_schema(request=None, responses={204: None})
    def post(self, request: Request, slug: str, raw_id: str) -> Response:
        resource = services.access_resource(request.user, slug, services.MANAGE_IDENTITIES)
        services.revoke_tokens(services.access_identity(resource, raw_id))
        return Response(status=204)
