"""Events routes of the management API, mounted under /api/v1/."""

from __future__ import annotations

from django.urls import path

from apps.events.api import views

SUBSCRIPTION = "resources/<slug:slug>/event-subscriptions/<str:subscription_id>/"
DELIVERY = "resources/<slug:slug>/event-deliveries/<str:delivery_id>/"

urlpatterns = [
    path("resources/<slug:slug>/event-subscriptions/", views.SubscriptionList.as_view()),
    path(SUBSCRIPTION, views.SubscriptionDetail.as_view()),
    path(f"{SUBSCRIPTION}test/", views.SubscriptionTest.as_view()),
    path(f"{SUBSCRIPTION}validate/", views.SubscriptionValidate.as_view()),
    path("resources/<slug:slug>/events/", views.EventList.as_view()),
    path("resources/<slug:slug>/event-deliveries/", views.DeliveryList.as_view()),
    path(DELIVERY, views.DeliveryDetail.as_view()),
    path(f"{DELIVERY}redeliver/", views.DeliveryRedeliver.as_view()),
    path("events/validate/<str:subscription_id>", views.ValidateSubscription.as_view()),
]
