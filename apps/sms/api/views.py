"""SMS in the management API: what the console's SMS pages do."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import services as accounts
from apps.sms import handsets, optouts, services
from apps.sms.api import serializers as s
from apps.sms.models import HandsetMessage, OptOut, SmsMessage


class MessageList(generics.ListAPIView[SmsMessage]):
    serializer_class = s.MessageSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("direction", enum=["outbound", "inbound"]),
            OpenApiParameter("status", str),
            OpenApiParameter("number", str, description="Messages from or to this number"),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        query = self.request.query_params
        return services.list_messages(
            resource,
            direction=query.get("direction", ""),
            status=query.get("status", ""),
            number=query.get("number", ""),
        )

    @extend_schema(request=s.SendSerializer, responses={202: dict[str, Any]})
    def post(self, request: Request, slug: str) -> Response:
        """Send: the ACS send request in the management API's words; per-recipient results."""
        resource = accounts.access_resource(request.user, slug, accounts.SEND_SMS)
        data = s.SendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        wanted = data.validated_data
        send_request = services.check_simple_send(
            wanted["sender"],
            wanted["to"],
            wanted["message"],
            delivery_report=wanted["enable_delivery_report"],
            tag=wanted["tag"],
        )
        return Response({"value": services.send(resource, send_request)}, status=202)


class MessageDetail(APIView):
    @extend_schema(responses=s.MessageSerializer)
    def get(self, request: Request, slug: str, message_id: str) -> Response:
        resource = accounts.access_resource(request.user, slug)
        return Response(s.MessageSerializer(services.access_message(resource, message_id)).data)


class OptOutList(generics.ListAPIView[OptOut]):
    serializer_class = s.OptOutSerializer

    def get_queryset(self) -> Any:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        return optouts.list_opt_outs(resource, sender=self.request.query_params.get("sender", ""))

    @extend_schema(request=s.OptOutCreateSerializer, responses={201: s.OptOutSerializer})
    def post(self, request: Request, slug: str) -> Response:
        resource = accounts.access_resource(request.user, slug, accounts.SEND_SMS)
        data = s.OptOutCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        opt_out = optouts.add_opt_out(
            resource,
            sender=data.validated_data["sender"],
            recipient=data.validated_data["recipient"],
            source="console",
        )
        return Response(s.OptOutSerializer(opt_out).data, status=201)


class OptOutDetail(APIView):
    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, slug: str, opt_out_id: int) -> Response:
        resource = accounts.access_resource(request.user, slug, accounts.SEND_SMS)
        optouts.remove_opt_out(resource, opt_out_id)
        return Response(status=204)


class HandsetList(APIView):
    @extend_schema(responses=s.HandsetSerializer(many=True))
    def get(self, request: Request, slug: str) -> Response:
        resource = accounts.access_resource(request.user, slug)
        listed = handsets.list_handsets(resource)
        return Response(s.HandsetSerializer(listed, many=True).data)  # type: ignore[arg-type]


class HandsetMessages(generics.ListAPIView[HandsetMessage]):
    serializer_class = s.HandsetMessageSerializer

    def get_queryset(self) -> Any:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        return handsets.conversation(resource, self.kwargs["handset"])

    @extend_schema(request=s.HandsetReplySerializer, responses={201: s.HandsetMessageSerializer})
    def post(self, request: Request, slug: str, handset: str) -> Response:
        """The handset texts one of the resource's numbers (an inbound SMS)."""
        resource = accounts.access_resource(request.user, slug, accounts.SEND_SMS)
        data = s.HandsetReplySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        sent = handsets.reply(
            resource,
            handset=handset,
            counterpart=data.validated_data["to"],
            text=data.validated_data["message"],
        )
        return Response(s.HandsetMessageSerializer(sent).data, status=201)
