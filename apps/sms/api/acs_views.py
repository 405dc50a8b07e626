"""The ACS SMS API (azure-communication-sms): send, and opt-out management."""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.auth import HmacAuthentication, IsResourceCaller, request_resource
from apps.core.api import AcsApiView, json_object
from apps.sms import optouts, services

# azure-communication-sms 1.1 sends 2021-03-07; the opt-out API came with later previews.
SMS_API_VERSIONS = ("2021-03-07", "2024-12-10-preview", "2025-01-15-preview")
OPT_OUT_API_VERSIONS = ("2024-12-10-preview", "2025-01-15-preview")


class SmsView(AcsApiView):
    api_versions: tuple[str, ...] = SMS_API_VERSIONS
    quota = "sms"
    authentication_classes = [HmacAuthentication]
    permission_classes = [IsResourceCaller]


class Send(SmsView):
    def post(self, request: Request, slug: str) -> Response:
        send_request = services.check_send_request(json_object(request))
        results = services.send(request_resource(request), send_request)
        return Response({"value": results}, status=202)


class OptOuts(SmsView):
    api_versions = OPT_OUT_API_VERSIONS
    action = ""

    def post(self, request: Request, slug: str) -> Response:
        resource = request_resource(request)
        sender, recipients = optouts.check_request(resource, json_object(request))
        if self.action == "check":
            results = optouts.check(sender, recipients)
        else:
            results = optouts.change(resource, sender, recipients, opt_out=self.action == "add")
        return Response({"value": results})
