"""Webhook subscriptions, events and deliveries in the management API: what the console's
Events page does. Readers see everything but the signing secrets; changes need MANAGE_EVENTS."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import services as accounts
from apps.accounts.models import Resource
from apps.events import services
from apps.events.api import serializers as s
from apps.events.models import Event, EventDelivery, EventSubscription


def _valid(serializer_class: type[Any], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def _subscription(request: Request, resource: Resource, subscription: EventSubscription) -> Any:
    show = accounts.can(request.user, resource, accounts.MANAGE_EVENTS)
    return s.SubscriptionSerializer(subscription, context={"show_secret": show}).data


class SubscriptionList(generics.ListAPIView[EventSubscription]):
    serializer_class = s.SubscriptionSerializer

    def get_queryset(self) -> Any:
        self.resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        return services.list_subscriptions(self.resource)

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        context["show_secret"] = accounts.can(
            self.request.user, self.resource, accounts.MANAGE_EVENTS
        )
        return context

    @extend_schema(
        request=s.SubscriptionCreateSerializer, responses={201: s.SubscriptionSerializer}
    )
    def post(self, request: Request, slug: str) -> Response:
        """Create a subscription. It starts `validating`: a worker makes the handshake (Event
        Grid validation event or CloudEvents OPTIONS) and the state becomes `active`,
        `awaitingManualValidation` (the endpoint was sent a validation link) or
        `validationFailed` (see `validation_error`)."""
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_EVENTS)
        data = _valid(s.SubscriptionCreateSerializer, request)
        subscription = services.create_subscription(resource, **data)
        return Response(_subscription(request, resource, subscription), status=201)


class SubscriptionDetail(APIView):
    @extend_schema(responses=s.SubscriptionSerializer)
    def get(self, request: Request, slug: str, subscription_id: str) -> Response:
        resource = accounts.access_resource(request.user, slug)
        subscription = services.access_subscription(resource, subscription_id)
        return Response(_subscription(request, resource, subscription))

    @extend_schema(request=s.SubscriptionUpdateSerializer, responses=s.SubscriptionSerializer)
    def patch(self, request: Request, slug: str, subscription_id: str) -> Response:
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_EVENTS)
        subscription = services.access_subscription(resource, subscription_id)
        data = _valid(s.SubscriptionUpdateSerializer, request)
        with transaction.atomic():  # both or neither
            if "event_types" in data:
                services.update_event_types(subscription, data["event_types"])
            if "enabled" in data:
                services.set_subscription_enabled(subscription, data["enabled"])
        return Response(_subscription(request, resource, subscription))

    @extend_schema(responses={204: None})
    def delete(self, request: Request, slug: str, subscription_id: str) -> Response:
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_EVENTS)
        services.delete_subscription(services.access_subscription(resource, subscription_id))
        return Response(status=204)


class SubscriptionValidate(APIView):
    @extend_schema(request=None, responses={202: s.SubscriptionSerializer})
    def post(self, request: Request, slug: str, subscription_id: str) -> Response:
        """Make the handshake again (state `validating`; a worker sends a new validation
        event). 409 SubscriptionNotActive unless the validation failed or awaits its link."""
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_EVENTS)
        subscription = services.revalidate(services.access_subscription(resource, subscription_id))
        return Response(_subscription(request, resource, subscription), status=202)


class SubscriptionTest(APIView):
    @extend_schema(request=s.SampleEventSerializer, responses={202: s.DeliverySerializer})
    def post(self, request: Request, slug: str, subscription_id: str) -> Response:
        """Send a sample event (subject "/spool/test") to this subscription only: of
        `event_type` (a type it takes; by default the first of its filter, or SMSReceived)."""
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_EVENTS)
        data = _valid(s.SampleEventSerializer, request)
        delivery = services.test_fire(
            services.access_subscription(resource, subscription_id),
            event_type=data.get("event_type") or None,
        )
        delivery.refresh_from_db()
        return Response(s.DeliverySerializer(delivery).data, status=202)


class EventList(generics.ListAPIView[Event]):
    serializer_class = s.EventSerializer

    @extend_schema(parameters=[OpenApiParameter("type", str, description="Only this type")])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        return services.list_events(resource, event_type=self.request.query_params.get("type"))


class DeliveryList(generics.ListAPIView[EventDelivery]):
    serializer_class = s.DeliverySerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("state", str, enum=["pending", "delivered", "deadLettered"]),
            OpenApiParameter("subscription", OpenApiTypes.UUID),
        ]
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        resource = accounts.access_resource(self.request.user, self.kwargs["slug"])
        query = self.request.query_params
        return services.list_deliveries(
            resource, state=query.get("state"), subscription_id=query.get("subscription")
        )


class DeliveryDetail(APIView):
    @extend_schema(responses=s.DeliveryDetailSerializer)
    def get(self, request: Request, slug: str, delivery_id: str) -> Response:
        resource = accounts.access_resource(request.user, slug)
        delivery = services.access_delivery(resource, delivery_id)
        return Response(s.DeliveryDetailSerializer(delivery).data)


class DeliveryRedeliver(APIView):
    @extend_schema(request=None, responses={202: s.DeliverySerializer})
    def post(self, request: Request, slug: str, delivery_id: str) -> Response:
        """Send a delivered or dead-lettered delivery again (409 while it is pending)."""
        resource = accounts.access_resource(request.user, slug, accounts.MANAGE_EVENTS)
        delivery = services.redeliver(services.access_delivery(resource, delivery_id))
        delivery.refresh_from_db()
        return Response(s.DeliverySerializer(delivery).data, status=202)


class ValidateSubscription(APIView):
    """The validation link of an Event Grid handshake: the code is the credential."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(
        parameters=[OpenApiParameter("code", str, required=True)],
        responses=s.ValidationResultSerializer,
    )
    def get(self, request: Request, subscription_id: str) -> Response:
        subscription = services.manually_validate(
            subscription_id, request.query_params.get("code", "")
        )
        return Response(
            {
                "validationResult": "Validated",
                "subscriptionName": subscription.name,
                "state": subscription.state,
            }
        )
