"""The ACS Identity API (`/r/<slug>/identities`), as azure-communication-identity calls it."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts import services
from apps.accounts.auth import HmacAuthentication, IsResourceCaller, request_resource
from apps.core.api import AcsApiView, json_object, rfc3339
from apps.core.errors import ApiError

IDENTITY_API_VERSIONS = ("2021-03-07", "2022-06-01", "2022-10-01", "2023-10-01")


def token_body(token: services.IssuedToken) -> dict[str, str]:
    """A token as the Identity API answers it (also the token route's, token_route.py)."""
    return {"token": token.token, "expiresOn": rfc3339(token.expires_on)}


class IdentityView(AcsApiView):
    api_versions = IDENTITY_API_VERSIONS
    authentication_classes = [HmacAuthentication]
    permission_classes = [IsResourceCaller]


class IdentityCollection(IdentityView):
    quota = "identities"

    def post(self, request: Request, slug: str) -> Response:
        body = json_object(request)
        with transaction.atomic():
            identity, token = services.create_identity(
                request_resource(request),
                scopes=body.get("createTokenWithScopes"),
                expires_in_minutes=body.get("expiresInMinutes"),
            )
        result: dict[str, Any] = {"identity": {"id": identity.raw_id}}
        if token:
            result["accessToken"] = token_body(token)
        return Response(result, status=201)


class IdentityDetail(IdentityView):
    quota = "identity-deletes"

    def delete(self, request: Request, slug: str, raw_id: str) -> Response:
        services.delete_identity(services.access_identity(request_resource(request), raw_id))
        return Response(status=204)


class IssueAccessToken(IdentityView):
    quota = "tokens"

    def post(self, request: Request, slug: str, raw_id: str) -> Response:
        body = json_object(request)
        token = services.issue_token_for(
            request_resource(request), raw_id, body.get("scopes"), body.get("expiresInMinutes")
        )
        return Response(token_body(token))


class RevokeAccessTokens(IdentityView):
    quota = "identity-deletes"

    def post(self, request: Request, slug: str, raw_id: str) -> Response:
        services.revoke_tokens(services.access_identity(request_resource(request), raw_id))
        return Response(status=204)


class ExchangeTeamsUserToken(IdentityView):
    def post(self, request: Request, slug: str) -> Response:
        raise ApiError(
            "Exchanging a Microsoft Teams user token is not supported: Spool is not connected "
            "to a Microsoft Entra ID tenant.",
            code="TeamsInteropNotSupported",
        )
