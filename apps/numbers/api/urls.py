"""Numbers routes of the management API, mounted under /api/v1/."""

from __future__ import annotations

from django.urls import path

from apps.numbers.api import views

urlpatterns = [
    path("resources/<slug:slug>/numbers/", views.OwnedNumberList.as_view()),
    path("resources/<slug:slug>/numbers/searches/", views.SearchCreate.as_view()),
    path("resources/<slug:slug>/numbers/searches/<str:search_id>/", views.SearchDetail.as_view()),
    path(
        "resources/<slug:slug>/numbers/searches/<str:search_id>/purchase/",
        views.SearchPurchase.as_view(),
    ),
    path(
        "resources/<slug:slug>/numbers/operations/<str:operation_id>/",
        views.OperationDetail.as_view(),
    ),
    path("resources/<slug:slug>/numbers/<str:number>/", views.OwnedNumberDetail.as_view()),
]
