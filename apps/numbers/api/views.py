"""Phone numbers in the management API: what the console's Phone numbers page does."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import services as accounts
from apps.numbers import orders
from apps.numbers.api import serializers as s
from apps.numbers.models import NumberStatus, PhoneNumber


def _operation(operation: Any) -> Response:
    return Response(s.OperationSerializer(operation).data, status=202)


class OwnedNumberList(generics.ListAPIView[PhoneNumber]):
    serializer_class = s.OwnedNumberSerializer

    def get_queryset(self) -> Any:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        return resource.phone_numbers.filter(status=NumberStatus.OWNED).order_by("number")


class OwnedNumberDetail(APIView):
    @extend_schema(responses=s.OwnedNumberSerializer)
    def get(self, request: Request, slug: str, number: str) -> Response:
        resource = accounts.access_resource(request.user, slug)
        return Response(s.OwnedNumberSerializer(orders.access_owned_number(resource, number)).data)

    @extend_schema(request=s.DestinationSerializer, responses=s.OwnedNumberSerializer)
    def patch(self, request: Request, slug: str, number: str) -> Response:
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_NUMBERS)
        data = s.DestinationSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        owned = orders.set_inbound_destination(
            resource, number, data.validated_data["inboundDestination"]
        )
        return Response(s.OwnedNumberSerializer(owned).data)

    @extend_schema(request=None, responses={202: s.OperationSerializer})
    def delete(self, request: Request, slug: str, number: str) -> Response:
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_NUMBERS)
        return _operation(orders.check_release(resource, number))


class SearchCreate(APIView):
    @extend_schema(request=s.SearchRequestSerializer, responses={201: s.SearchSerializer})
    def post(self, request: Request, slug: str) -> Response:
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_NUMBERS)
        body = request.data if isinstance(request.data, dict) else {}
        wanted = orders.check_search_request(str(body.get("country", "")), body)
        operation = orders.do_search(resource, wanted)
        return Response(s.SearchSerializer(operation.search).data, status=201)


class SearchDetail(APIView):
    @extend_schema(responses=s.SearchSerializer)
    def get(self, request: Request, slug: str, search_id: str) -> Response:
        resource = accounts.access_resource(request.user, slug)
        return Response(s.SearchSerializer(orders.access_search(resource, search_id)).data)


class SearchPurchase(APIView):
    @extend_schema(request=None, responses={202: s.OperationSerializer})
    def post(self, request: Request, slug: str, search_id: str) -> Response:
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_NUMBERS)
        return _operation(orders.check_purchase(resource, search_id))


class OperationDetail(APIView):
    @extend_schema(responses=s.OperationSerializer)
    def get(self, request: Request, slug: str, operation_id: str) -> Response:
        resource = accounts.access_resource(request.user, slug)
        return Response(s.OperationSerializer(orders.access_operation(resource, operation_id)).data)
