"""The ACS SIP routing API (azure-communication-phonenumbers' SipRoutingClient,
@azure/communication-phone-numbers' SipRoutingClient): `GET /sip`, `PATCH /sip`."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.auth import HmacAuthentication, IsResourceCaller, request_resource
from apps.core.api import AcsApiView, json_object
from apps.pstn import services
from apps.pstn.exceptions import SipConfigurationError

# What both SDKs send (Python 1.4 and JavaScript 1.5 pin it).
SIP_ROUTING_API_VERSIONS = ("2023-03-01",)


class SipConfigurationView(AcsApiView):
    api_versions = SIP_ROUTING_API_VERSIONS
    authentication_classes = [HmacAuthentication]
    permission_classes = [IsResourceCaller]

    def get(self, request: Request, slug: str) -> Response:
        return Response(services.configuration(request_resource(request)))

    def patch(self, request: Request, slug: str) -> Response:
        try:
            body = services.patch_configuration(request_resource(request), json_object(request))
        except SipConfigurationError as error:
            # ACS's shape for these: the reason's code in `innererror`.
            return Response(error.body(), status=error.status)
        return Response(body)
